// Timeout diagnosis over the control channel: which ranks have not arrived at
// an operation (asked of every rank when its deadline passes), and which
// ranks called something else there (asked of every rank when an operation
// stalls, and of the late receivers of a sending-only rank after 0.1 s). The
// answers carry each rank's count of operations started and the signature it
// recorded for the operation in question.
#include "diagnosis.hpp"

#include <time.h>

#include <algorithm>
#include <sstream>

#include "control.hpp"

namespace baobab::runtime {

namespace {

double query_grace(const CommState& s) { return std::clamp(0.1 * s.cfg.timeout, 0.05, 2.0); }

}  // namespace

void start_query(CommState& s, Execution& e, const std::set<int>* only) {
  s.diagnosing = true;
  s.diag_seq = e.seq;
  s.diag_start = Clock::now();
  s.answered.assign(s.size, 0);
  s.answer_started.assign(s.size, 0);
  s.answer_text.assign(s.size, "");
  s.answer_hdr.assign(s.size, WireHeader{});
  s.answer_has_hdr.assign(s.size, 0);
  s.answered[s.rank] = 1;
  s.answer_started[s.rank] = s.started;
  if (only)
    for (int r = 0; r < s.size; ++r) s.answered[r] = s.answered[r] || !only->count(r);
  CtrlMsg q;
  q.type = kQuery;
  q.seq = e.seq;
  q.from = s.rank;
  for (int r = 0; r < s.size; ++r)
    if (!s.answered[r]) send_ctrl(s, r, q);
}

std::set<int> late_ackers(const Execution& e) {
  std::set<int> out;
  for (const auto& l : e.lanes)
    for (size_t k = 0; k < l.ack_posted; ++k)
      if (l.ack_reqs[k] != MPI_REQUEST_NULL) out.insert(l.ack_peer[k]);
  return out;
}

bool query_finished(const CommState& s) {
  return std::all_of(s.answered.begin(), s.answered.end(), [](int a) { return a != 0; }) ||
         seconds_since(s.diag_start) > query_grace(s);
}

bool signatures_disagree(CommState& s, Execution& e) {
  for (int r = 0; r < s.size; ++r) {
    if (r == s.rank || !s.answer_has_hdr[r]) continue;
    std::string diff = peer_header_diff(s, r, e.hdr, s.answer_hdr[r]);
    if (!diff.empty()) {
      s.diagnosing = false;
      mismatch(s, e, r, &s.answer_hdr[r], diff + " differs");
      return true;
    }
  }
  return false;
}

[[noreturn]] void timeout(CommState& s, Execution& e, double waited) {
  // Who this rank is waiting for directly.
  std::set<int> direct;
  for (auto& l : e.lanes) {
    if (!l.started || l.done) continue;
    for (size_t i = 0; i < l.posts.size(); ++i) {
      const Posted& p = l.posts[i];
      if (p.kind == Posted::recv || p.kind == Posted::inl_recv || p.kind == Posted::hdr_recv) direct.insert(p.peer);
    }
    for (size_t k = 0; k < l.ack_posted; ++k)
      if (l.ack_reqs[k] != MPI_REQUEST_NULL) direct.insert(l.ack_peer[k]);
  }
  start_query(s, e);
  while (!query_finished(s) && s.fail_kind == kNone) {
    service_control(s);
    struct timespec ts {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  s.diagnosing = false;
  if (s.fail_kind != kNone) throw_failure(s);  // another rank diagnosed first
  if (signatures_disagree(s, e)) throw_failure(s);
  std::vector<int> missing, silent, behind;
  std::ostringstream behind_text;
  for (int r = 0; r < s.size; ++r) {
    if (!s.answered[r]) {
      silent.push_back(r);
      missing.push_back(r);
    } else if (s.answer_started[r] < e.seq) {
      behind.push_back(r);
      missing.push_back(r);
      behind_text << (behind.size() > 1 ? "; " : "") << "rank " << r << " has started " << s.answer_started[r]
                  << " collectives and is " << s.answer_text[r];
    }
  }
  auto list = [](const std::vector<int>& v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + std::to_string(v[i]);
    return o + "]";
  };
  std::ostringstream m;
  m.setf(std::ios::fixed);
  m.precision(2);
  m << coll_name(e.coll) << " #" << e.seq << " did not complete within " << waited << " s (BAOBAB_TIMEOUT="
    << s.cfg.timeout << ") on rank " << s.rank << "; ranks that did not arrive: " << list(missing);
  if (!silent.empty()) m << " (no answer, not inside a baobab call: " << list(silent) << ")";
  if (!behind.empty()) m << " (" << behind_text.str() << ")";
  std::vector<int> dv(direct.begin(), direct.end());
  m << "; this rank was waiting for messages from " << list(dv);
  fail_comm(s, kTimeout, m.str(), e.seq, coll_name(e.coll), missing, true);
  throw_failure(s);
}

}  // namespace baobab::runtime
