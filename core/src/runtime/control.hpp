// The control channel and failure handling (control.cpp): how a communicator
// fails on this rank, how the other ranks are told, and how what they tell
// this rank is received. Every function here is called with g_mutex held.
#pragma once
#include <string>
#include <vector>

#include "state.hpp"

namespace baobab::runtime {

// Posts the receive of the next control message.
void post_ctrl_recv(CommState& s);
// Sends a control message (a copy is kept until the send completes).
void send_ctrl(CommState& s, int dest, const CtrlMsg& m);
// Completes pending control sends for up to `seconds` (abort notices must get
// out before this rank finalizes or exits).
void flush_ctrl(CommState& s, double seconds);
// Handles every control message that has arrived (answers queries, records
// answers, fails the communicator on an abort notice) and reaps finished sends.
void service_control(CommState& s);

// Cancels an execution's receives; its sends are left to drain().
void cancel_execution(CommState& s, Execution& e);
// Receives and discards what was sent on the data communicator, and waits for
// this rank's orphaned sends, for up to `seconds` (see control.cpp).
void drain(CommState& s, double seconds);
// Marks the communicator failed (the first failure wins); cancels everything
// in flight; with `broadcast`, tells every other rank.
void fail_comm(CommState& s, int32_t kind, const std::string& msg, uint64_t seq, const std::string& op,
               std::vector<int> missing, bool broadcast);
// Throws the exception of the communicator's failure.
[[noreturn]] void throw_failure(const CommState& s);
// Gives up on the communicator: fails it here with Error("rank R gave up
// (reason)") and sends that notice to every other rank; does nothing once the
// communicator has failed or been freed.
void abort_comm(CommState& s, const std::string& reason);
// Fails the communicator with a MismatchError naming both sides (theirs may
// be null: the difference is described by `what` alone).
// header_diff between this rank and `peer`, the IPC bit compared only between
// ranks of one node and host (the only ones it concerns).
std::string peer_header_diff(const CommState& s, int peer, WireHeader mine, WireHeader theirs);
void mismatch(CommState& s, Execution& e, int peer, const WireHeader* theirs, const std::string& what);

}  // namespace baobab::runtime
