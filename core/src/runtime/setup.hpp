// Creating and releasing a communicator's MPI resources (setup.cpp): the
// collective set-up with deadlines and the topology discovery it does, and the
// registry of live communicators that MPI_Finalize releases.
#pragma once
#include <mpi.h>

#include <functional>
#include <memory>

#include "state.hpp"

namespace baobab::runtime {

// Fills `s` collectively over `comm`: the data and control communicators,
// rank 0's configuration, the topology (host names, Slurm addresses, shared
// memory domains), the spin policy, the cost model; posts the control
// receive. See Communicator's constructor for the contract.
void setup(CommState& s, MPI_Comm comm, const std::function<Config()>& make_config, double setup_timeout);
// Adds a communicator to the registry (g_mutex held); the first one installs
// the hook that releases them all at MPI_Finalize.
void register_state(const std::shared_ptr<CommState>& s);
// Frees the MPI resources of `s` once (g_mutex held).
void release_mpi(CommState& s);

}  // namespace baobab::runtime
