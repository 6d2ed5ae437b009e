// The schedule executor (executor.cpp): progress of collectives in flight and
// the wait for one of them, with its deadline and stall checks.
#pragma once
#include <memory>

#include "state.hpp"

namespace baobab::runtime {

// Advances an execution as far as it can without blocking; false if the
// communicator failed. Called with g_mutex held.
bool progress_exec(CommState& s, Execution& e);
// Progresses every operation in flight on every communicator (g_mutex held).
void progress_all_locked();
// One poll of a waiting loop: spin, then yield, then sleep briefly (see executor.cpp).
void backoff(int& spins, Clock::time_point since, int spin_limit);
// Waits for an execution (takes g_mutex itself); throws the communicator's
// failure, or fails it with a TimeoutError once `deadline_s` seconds have
// passed since the execution started.
void wait_exec(const std::shared_ptr<CommState>& sp, const std::shared_ptr<Execution>& ep, double deadline_s);

}  // namespace baobab::runtime
