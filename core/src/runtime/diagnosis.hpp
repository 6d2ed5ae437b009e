// Timeout diagnosis (diagnosis.cpp): queries over the control channel that
// find the ranks missing from an operation, or a disagreement that no message
// exposed. Called with g_mutex held.
#pragma once
#include <set>

#include "state.hpp"

namespace baobab::runtime {

// Asks every rank (or only the ranks in `only`) where it is: answers carry its
// count of operations started and the signature it recorded for operation e.seq.
void start_query(CommState& s, Execution& e, const std::set<int>* only = nullptr);
// Ranks whose acknowledgement this execution still waits for.
std::set<int> late_ackers(const Execution& e);
// Every rank asked has answered, or the grace time has passed.
bool query_finished(const CommState& s);
// Ranks that answered with a different signature for the same operation: a
// disagreement no message exposed (a different root, say). Fails the
// communicator with MismatchError and returns true if one is found.
bool signatures_disagree(CommState& s, Execution& e);
// Finds out which ranks have not arrived at operation e.seq, then fails the
// communicator with a TimeoutError that names them (or a MismatchError if the
// ranks are all there but disagree), and throws it.
[[noreturn]] void timeout(CommState& s, Execution& e, double waited);

}  // namespace baobab::runtime
