#include "baobab/select.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include "baobab/error.hpp"

namespace baobab {

std::pair<size_t, size_t> segmentation(const Config& cfg, const CollDesc& d) {
  const size_t bytes = d.count * d.elem_size;
  if (bytes <= cfg.segment_bytes || d.elem_size == 0) return {1, d.count};
  size_t seg = std::max<size_t>(1, cfg.segment_bytes / d.elem_size);
  return {(d.count + seg - 1) / seg, seg};
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kFullReplayRanks = 16384;

// How far the schedules of ranks `from` are mapped by generator k of `sym`
// onto the schedules of their images `to`: the same rounds, kinds and counts
// with each peer moved as its rank is (exact), the same but for counts
// (structure), or not (none). Buffers and offsets may differ: the replay
// does not look at them.
enum class Fit : uint8_t { none, structure, exact };

Fit fits(const Schedule& a, const Schedule& b, const Symmetry& sym, int k) {
  if (a.rounds.size() != b.rounds.size() || a.elem_size != b.elem_size) return Fit::none;
  Fit fit = Fit::exact;
  for (size_t r = 0; r < a.rounds.size(); ++r) {
    const auto& x = a.rounds[r].ops;
    const auto& y = b.rounds[r].ops;
    if (x.size() != y.size()) return Fit::none;
    for (size_t j = 0; j < x.size(); ++j) {
      if (x[j].kind != y[j].kind) return Fit::none;
      if ((x[j].kind == OpKind::send || x[j].kind == OpKind::recv) && sym.move(x[j].peer, k) != y[j].peer)
        return Fit::none;
      if (x[j].count != y[j].count) fit = Fit::structure;
    }
  }
  return fit;
}

// The schedules of one candidate that its costing looks at more than once
// (the representatives, ranks 0 and p-1, every rank of a full replay), each
// built once: by element count (the whole call, a segment, the last
// segment) and rank. References stay valid while the cache lives.
class Built {
 public:
  Built(const Algorithm& a, const Topology& t, const CostModel& m, const CollDesc& d) : a_(a), t_(t), m_(m), d_(d) {}
  const Schedule& at(size_t count, int rank) {
    auto [it, fresh] = kept_.try_emplace({count, rank});
    if (fresh) it->second = make(count, rank);
    return it->second;
  }
  // Frees the schedules of `count` elements.
  void drop(size_t count) {
    kept_.erase(kept_.lower_bound({count, 0}), kept_.upper_bound({count, t_.size()}));
  }
  // Built and not kept (the images a symmetry check compares).
  Schedule make(size_t count, int rank) const {
    CollDesc cd = d_;
    cd.count = count;
    return build_schedule(a_, t_, cd, rank, m_);
  }

 private:
  const Algorithm& a_;
  const Topology& t_;
  const CostModel& m_;
  const CollDesc d_;
  std::map<std::pair<size_t, int>, Schedule> kept_;  // nodes: references stay valid
};

// How far the algorithm's schedules keep `sym`: the least Fit of every
// generator mapping each representative's schedule onto its image's, and of
// the wrap-arounds (for a translation, the last block onto the
// representatives; for a rotation, the last node of the first block and
// the first node of the last block). `reps` holds the representatives'
// schedules built so far and is completed as the check goes: a misfit stops
// at the first rank that shows it, having built little. A check at those
// ranks, not a proof for all: tests/test_algorithms_sim.py compares this
// replay with the full one on every algorithm and test topology.
Fit fit_of(const Topology& t, const Symmetry& sym, Built& built, size_t count) {
  const int T = sym.period;
  Fit fit = Fit::exact;
  for (int r = 0; r < T && fit != Fit::none; ++r)
    for (int k = 0; k < sym.generators() && fit != Fit::none; ++k)
      fit = std::min(fit, fits(built.at(count, r), built.make(count, sym.move(r, k)), sym, k));
  auto wrap = [&](int base, int k) {  // the ranks base.. onto their images, the representatives
    for (int r = 0; r < T && fit != Fit::none; ++r)
      fit = std::min(fit, fits(built.make(count, base + r), built.at(count, r), sym, k));
  };
  const bool rotate = sym.kind == Symmetry::Kind::rotate || sym.kind == Symmetry::Kind::rotate_xor;
  if (fit != Fit::none && sym.kind == Symmetry::Kind::translate && t.size() > 2 * T) wrap(t.size() - T, 0);
  if (fit != Fit::none && rotate && sym.block > 2 * T) wrap(sym.block - T, 0);
  if (fit != Fit::none && sym.kind == Symmetry::Kind::rotate && t.size() > 2 * sym.block)
    wrap(t.size() - sym.block, 1);
  return fit;
}

// The estimate of a job too large to replay whole: round by round over the
// first and the last node's ranks, the segments one after another.
double estimate_by_nodes(const Topology& t, const CostModel& m, Built& built, size_t sd, size_t ld, size_t nseg) {
  double estimate = 0;
  for (int node : {t.node_of(0), t.node_of(t.size() - 1)}) {
    const std::vector<int>& ranks = t.node_members(node);
    auto node_time = [&](size_t count) {
      std::vector<const Schedule*> own;
      for (int r : ranks) own.push_back(&built.at(count, r));
      return node_estimate(t, m, own, ranks);
    };
    double e = node_time(sd);
    if (nseg > 1) e = e * static_cast<double>(nseg - 1) + node_time(ld);
    estimate = std::max(estimate, e);
  }
  return estimate;
}

Candidate simulate_one(const Algorithm& a, const Topology& t, const Config& cfg, const CostModel& m,
                       const CollDesc& d, size_t nseg, size_t seg_count, double limit,
                       const std::vector<Symmetry>* syms, Built& built) {
  Candidate c;
  c.name = a.name;
  c.segments = nseg;
  c.seg_count = nseg > 1 ? seg_count : d.count;
  const int p = t.size();
  const size_t sd = nseg > 1 ? seg_count : d.count;  // a segment's elements
  const size_t ld = d.count - (nseg - 1) * seg_count;  // the last segment's
  // The last segment has schedules of its own only where it is shorter.
  const bool ragged = nseg > 1 && ld != sd;
  const bool big = p > cfg.sim_exact_ranks;
  // The operations the simulation would replay per rank, from the first and
  // the last rank's schedules (a leader's is among the largest): for a large
  // job, and for the budget.
  size_t most = 0;
  if (cfg.sim_op_budget || big) {
    for (int r : {0, p - 1}) {
      const Schedule& s0 = built.at(sd, r);
      size_t ops = 0;
      for (const Round& rd : s0.rounds) ops += rd.ops.size();
      most = std::max(most, ops);
      c.rounds = std::max(c.rounds, s0.rounds.size());
    }
  }
  auto events_of = [&](int ranks) { return static_cast<double>(most) * ranks * static_cast<double>(nseg); };
  // One block of ranks stands for all where the schedules keep a symmetry of
  // the job: exactly, or, in a large job, in all but their counts (an
  // estimate, from the first symmetry that fits so). A large job folds by
  // one node where it can (an estimate: Symmetry::share), and does not fold
  // by a block whose replay would still exceed sim_full_ops operations (it
  // is estimated node by node instead). Every symmetry's representatives
  // are ranks 0, 1, ...: their schedules, built once, serve each check in
  // turn and the replay.
  Symmetry use, loose;
  if (syms && cfg.sim_symmetric) {
    for (const Symmetry& sym : *syms) {
      const bool fold = sym.share > 1;
      if (fold && !big) continue;
      if (big && events_of(sym.period) > static_cast<double>(cfg.sim_full_ops)) continue;
      Fit fit = fit_of(t, sym, built, sd);
      if (fit != Fit::none && ragged) fit = std::min(fit, fit_of(t, sym, built, ld));
      if (fit == Fit::exact || (fold && fit != Fit::none)) {
        use = sym;
        use.loose = fold;
        c.estimate = fold;
        break;
      }
      if (fit == Fit::structure && !loose.active() && big) {
        loose = sym;
        loose.loose = true;
      }
    }
    if (!use.active() && loose.active()) {
      use = loose;
      c.estimate = true;
    }
  }
  const int n = use.active() ? use.period : p;
  c.replayed = n;
  c.symmetry = use.kind;
  if (use.active()) {
    const std::string sym = symmetry_name(use.kind);
    if (use.share > 1)
      c.how = "estimate: one node of " + std::to_string(n) + " ranks replayed (" + sym + "), its switch's uplink shared by " +
              std::to_string(use.share) + " alike";
    else if (c.estimate)
      c.how = "estimate: one block of " + std::to_string(n) + " ranks replayed, counts uneven";
    else
      c.how = "one block of " + std::to_string(n) + " ranks replayed: " + sym + " symmetry";
  }
  const bool large = !use.active() && big;
  if (cfg.sim_op_budget || large) {
    const double events = events_of(n);
    // Building every rank's schedule costs O(p) each for the algorithms over
    // the whole communicator: past 16,384 ranks a whole replay is never made.
    if (large && (events > static_cast<double>(cfg.sim_full_ops) || p > kFullReplayRanks)) {
      if (a.bound && a.bound_estimates) {
        // The whole call's chain; cut into segments, each wave of `window`
        // lanes pays a lane's chain, and the whole call's bandwidth holds.
        CollDesc sdesc = d;
        sdesc.count = sd;
        c.predicted = std::max(a.bound(t, d, 0, m, 0), a.bound(t, d, p - 1, m, 0));
        if (nseg > 1) {
          const double lane = std::max(a.bound(t, sdesc, 0, m, 0), a.bound(t, sdesc, p - 1, m, 0));
          const size_t w = static_cast<size_t>(std::max(cfg.window, 1));
          c.predicted = std::max(c.predicted, static_cast<double>((nseg + w - 1) / w) * lane);
        }
        c.how = "estimate: its chain of rounds, the job is too large to replay";
      } else {
        c.predicted = estimate_by_nodes(t, m, built, sd, ld, nseg);
        c.how = "estimate: node by node, the job is too large to replay";
      }
      c.estimate = true;
      c.replayed = 0;
      c.beaten = c.predicted > limit;
      return c;
    }
    if (cfg.sim_op_budget && events > static_cast<double>(cfg.sim_op_budget)) {
      char why[160];
      std::snprintf(why, sizeof why, "not simulated: about %.3g schedule operations, over the budget of %.3g",
                    events, static_cast<double>(cfg.sim_op_budget));
      c.unsupported = why;
      return c;
    }
  }
  std::vector<std::vector<SimLane>> lanes(n);
  for (int r = 0; r < n; ++r) {
    const Schedule& full = built.at(sd, r);
    c.rounds = std::max(c.rounds, full.rounds.size());
    for (size_t s = 0; s < nseg; ++s) {
      const Schedule* sch = (ragged && s == nseg - 1) ? &built.at(ld, r) : &full;
      lanes[r].push_back(SimLane{sch, s * seg_count, s * seg_count});
    }
  }
  SimResult res = simulate(t, m, lanes, nseg > 1 ? cfg.window : 1, nullptr, limit, use);
  c.predicted = res.time;
  c.beaten = res.cut;
  c.bytes_sent = res.max_bytes_sent;
  c.messages = res.max_messages;
  c.error = res.error;
  return c;
}

std::string fmt_time(double s) {
  char b[32];
  if (s < 1e-3) std::snprintf(b, sizeof b, "%.2f us", s * 1e6);
  else if (s < 1) std::snprintf(b, sizeof b, "%.3f ms", s * 1e3);
  else std::snprintf(b, sizeof b, "%.3f s", s);
  return b;
}

std::string fmt_bytes(size_t n) {
  char b[32];
  if (n < 1024) std::snprintf(b, sizeof b, "%zu B", n);
  else if (n < (1u << 20)) std::snprintf(b, sizeof b, "%.1f KiB", n / 1024.0);
  else if (n < (1u << 30)) std::snprintf(b, sizeof b, "%.1f MiB", n / 1048576.0);
  else std::snprintf(b, sizeof b, "%.2f GiB", n / 1073741824.0);
  return b;
}

}  // namespace

Candidate cost_algorithm(const Algorithm& a, const Topology& t, const Config& cfg, const CostModel& m,
                         const CollDesc& d, size_t segments, double limit, const std::vector<Symmetry>* syms) {
  Candidate c;
  c.name = a.name;
  c.unsupported = a.unsupported(t, d);
  if (!c.unsupported.empty()) return c;
  if (a.is_family()) {
    c.unsupported = "a family: its variants are costed";
    return c;
  }
  Built built(a, t, m, d);
  if (a.segmentable && segments > 1) {  // forced: BAOBAB_SEGMENT's segments
    auto [nseg, seg_count] = segmentation(cfg, d);
    if (nseg > 1) return simulate_one(a, t, cfg, m, d, nseg, seg_count, limit, syms, built);
  }
  auto [nseg, seg_count] = segmentation(cfg, d);
  const bool may_pipeline = a.segmentable && segments != 1 && nseg > 1;
  // A call that may run pipelined and whose whole call's bound already
  // loses (the ring's chain at a large size, a leader's reductions) is not
  // replayed whole: it would be cut near its end. The bound is the
  // algorithm's, else that of ranks 0 and p-1 running their schedules
  // alone (finish_lower_bound); their rounds serve the segment count below.
  Candidate best;
  double whole = 0;
  if (may_pipeline && limit < kInf) {
    for (int r : {0, t.size() - 1})
      whole = std::max(whole, a.bound ? a.bound(t, d, r, m, 0) : finish_lower_bound(t, m, built.at(d.count, r), r));
  }
  if (whole > limit) {
    best.name = a.name;
    best.seg_count = d.count;
    best.predicted = whole;
    best.beaten = true;
    for (int r : {0, t.size() - 1}) best.rounds = std::max(best.rounds, built.at(d.count, r).rounds.size());
  } else {
    best = simulate_one(a, t, cfg, m, d, 1, d.count, limit, syms, built);
  }
  if (!may_pipeline) return best;
  built.drop(d.count);  // the whole call's schedules: the segments have their own
  // Every segment pays its schedule's rounds of latency. Where that latency
  // is not small against a segment's transfer (long schedules: many ranks,
  // fast links), segments grow to 4, 16 or 64 times BAOBAB_SEGMENT: the
  // smallest that makes the rounds' latency (x the largest link latency) a
  // tenth of its time on the slowest link, while there are two or more.
  double alpha = 0, beta = 0;
  for (int L = 0; L <= t.levels(); ++L) {
    alpha = std::max(alpha, m.at(L).alpha);
    beta = std::max(beta, m.at(L).beta);
  }
  for (double b : m.node_beta) beta = std::max(beta, b);
  if (m.dev.on) alpha = std::max(alpha, m.dev.latency);  // a round's copies, seen done by the host
  const double latency = static_cast<double>(best.rounds) * alpha;
  auto small = [&](size_t seg_bytes) { return latency <= 0.1 * static_cast<double>(seg_bytes) * beta; };
  if (!small(cfg.segment_bytes) && cfg.segment_bytes <= std::numeric_limits<size_t>::max() / 64) {
    for (size_t f : {4, 16, 64}) {
      const size_t seg_bytes = cfg.segment_bytes * f;
      const size_t sc = std::max<size_t>(1, seg_bytes / d.elem_size);
      const size_t ns = (d.count + sc - 1) / sc;
      if (ns < 2) break;
      nseg = ns;
      seg_count = sc;
      if (small(seg_bytes)) break;
    }
  }
  // The pipelined variant must beat the whole call: over the simulation
  // budget loses to anything, a cut-off replay to a finished one, and a tie
  // keeps the whole call.
  const double lim = best.beaten || !best.unsupported.empty() ? limit : std::min(limit, best.predicted);
  // Before replaying the segments: the time ranks 0 and p-1 keep their CPU
  // or their link busy over all of them. Where that already exceeds the
  // time to beat, the pipelined call cannot win.
  double busy = 0;
  if (lim < kInf) {
    const size_t ld = d.count - (nseg - 1) * seg_count;
    for (int r : {0, t.size() - 1}) {
      const Busy one = busy_time(t, m, built.at(seg_count, r), r);
      const Busy last = ld == seg_count ? one : busy_time(t, m, built.at(ld, r), r);
      const double k = static_cast<double>(nseg - 1);
      busy = std::max({busy, k * one.cpu + last.cpu, k * one.inj + last.inj});
    }
  }
  Candidate piped;
  if (busy > lim) {
    piped.name = a.name;
    piped.segments = nseg;
    piped.seg_count = seg_count;
    piped.predicted = busy;
    piped.beaten = true;
  } else {
    piped = simulate_one(a, t, cfg, m, d, nseg, seg_count, lim, syms, built);
  }
  auto better = [](const Candidate& x, const Candidate& y) {
    if (!x.unsupported.empty()) return false;
    if (!y.unsupported.empty()) return true;
    if (x.beaten) return false;
    if (y.beaten) return true;
    return x.predicted < y.predicted;
  };
  if (better(piped, best)) {
    best = std::move(piped);
  } else if (best.beaten && piped.beaten) {
    // Both lose: the least of their lower bounds is the candidate's.
    best.predicted = std::min(best.predicted, piped.predicted);
  }
  return best;
}

// Every choice between algorithms is made here, the inner algorithm of a
// composition included: each variant of a family (split_rail(ring), ...) is a
// candidate of its own, built and simulated like the flat algorithms.
Plan choose(const Topology& t, const Config& cfg, const CostModel& m, const CollDesc& d, const std::string& forced_in,
            bool cost_all) {
  Plan plan;
  std::string name = forced_in;
  if (name == "auto") name.clear();
  std::string source = "algo=";
  if (name.empty() && !cfg.algo[static_cast<size_t>(d.coll)].empty()) {
    name = cfg.algo[static_cast<size_t>(d.coll)];
    source = "BAOBAB_ALGO";
    if (name == "auto") name.clear();
  }
  const Algorithm* forced = nullptr;
  if (!name.empty()) {
    forced = find_algorithm(d.coll, name);
    if (!forced) {
      std::string known;
      for (const auto& n : algorithm_names(d.coll)) known += (known.empty() ? "" : ", ") + n;
      throw InvalidArgument("unknown " + std::string(coll_name(d.coll)) + " algorithm '" + name + "' (from " +
                            source + "; known: " + known + ", auto)");
    }
    std::string why = forced->unsupported(t, d);
    if (!why.empty())
      throw InvalidArgument(std::string(coll_name(d.coll)) + " algorithm '" + name + "' " + why);
  }
  // A forced algorithm runs pipelined whenever the call is large enough, as
  // BAOBAB_SEGMENT says; it is costed (by explain) the way it runs.
  const auto [nseg, seg] = segmentation(cfg, d);
  auto forced_segments = [&](const Algorithm& a) { return a.segmentable && nseg > 1 ? nseg : size_t{1}; };
  if (forced && !forced->is_family() && !cost_all) {
    plan.algo = forced;
    plan.reason = "forced by " + source;
    plan.segments = forced_segments(*forced);
    plan.seg_count = plan.segments > 1 ? seg : d.count;
    return plan;
  }
  // The algorithms that may be chosen: all when automatic, else the forced one
  // or the forced family's variants. cost_all costs the others too (explain).
  auto eligible = [&](const Algorithm& a) {
    return !forced || &a == forced || (forced->is_family() && a.family == forced->name);
  };
  std::vector<const Algorithm*> of;  // the algorithm of each candidate
  std::vector<size_t> to_cost;       // candidates to replay
  for (const auto& a : algorithms()) {
    if (a.coll != d.coll || a.is_family()) continue;
    const bool may_win = eligible(a);
    if (!cost_all && !may_win) continue;
    of.push_back(&a);
    Candidate c;
    c.name = a.name;
    if (a.consider && &a != forced) c.unsupported = a.consider(t, m);
    if (c.unsupported.empty()) c.unsupported = a.unsupported(t, d);
    if (c.unsupported.empty()) to_cost.push_back(plan.candidates.size());
    plan.candidates.push_back(c);
  }
  auto segments_of = [&](size_t i) { return forced && eligible(*of[i]) ? forced_segments(*of[i]) : size_t{0}; };
  const std::vector<Symmetry> syms =
      cfg.sim_symmetric ? job_symmetries(t, m, t.size() > cfg.sim_exact_ranks) : std::vector<Symmetry>{};
  if (cost_all) {
    for (size_t i : to_cost) plan.candidates[i] = cost_algorithm(*of[i], t, cfg, m, d, segments_of(i), kInf, &syms);
  } else {
    // Only the winner matters: candidates are replayed most promising first,
    // each stopped as soon as it cannot beat the best so far, and one whose
    // lower bound already loses is not replayed at all. A candidate that may
    // run pipelined has no bound (its segments overlap) unless its algorithm
    // gives one for segments (Algorithm::bound); it is still ordered by its
    // unpipelined schedule's bound, a guess that only decides how soon a good
    // lead is found, never what is chosen.
    // The choice is the full replay's: ties go to the earlier candidate, as
    // in the scan below.
    std::vector<double> bound(plan.candidates.size(), 0.0), order(plan.candidates.size(), 0.0);
    const auto [nseg_all, seg_all] = segmentation(cfg, d);
    for (size_t i : to_cost) {
      const Algorithm& a = *of[i];
      const bool pipelined = a.segmentable && nseg_all > 1 && segments_of(i) != 1;
      for (int r : {0, t.size() - 1}) {
        if (a.bound) {
          bound[i] = std::max(bound[i], a.bound(t, d, r, m, pipelined ? seg_all : 0));
          if (pipelined) order[i] = std::max(order[i], a.bound(t, d, r, m, 0));
        } else {
          const double b = finish_lower_bound(t, m, build_schedule(a, t, d, r, m), r);
          order[i] = std::max(order[i], b);
          if (!pipelined) bound[i] = std::max(bound[i], b);
        }
      }
      order[i] = std::max(order[i], bound[i]);
    }
    std::stable_sort(to_cost.begin(), to_cost.end(), [&](size_t x, size_t y) { return order[x] < order[y]; });
    size_t lead = plan.candidates.size();  // the best so far
    double lead_time = std::numeric_limits<double>::infinity();
    for (size_t i : to_cost) {
      Candidate& c = plan.candidates[i];
      if (bound[i] > lead_time || (bound[i] == lead_time && i > lead)) {
        c.beaten = true;
        c.predicted = bound[i];
        continue;
      }
      c = cost_algorithm(*of[i], t, cfg, m, d, segments_of(i), lead_time, &syms);
      if (!c.unsupported.empty() || !c.error.empty() || c.beaten || !eligible(*of[i])) continue;
      if (c.predicted < lead_time || (c.predicted == lead_time && i < lead)) {
        lead = i;
        lead_time = c.predicted;
      }
    }
  }
  const Algorithm* best = nullptr;
  double best_time = 0;
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    const Candidate& c = plan.candidates[i];
    if (!c.unsupported.empty() || !c.error.empty() || c.beaten || !eligible(*of[i])) continue;
    if (!best || c.predicted < best_time) {
      best = of[i];
      best_time = c.predicted;
    }
  }
  if (forced && !forced->is_family()) {
    plan.algo = forced;
    plan.reason = "forced by " + source;
  } else if (forced) {
    if (!best) throw Error("no variant of " + std::string(coll_name(d.coll)) + " algorithm '" + forced->name +
                           "' can run here");
    plan.algo = best;
    plan.reason = "family " + forced->name + " forced by " + source + "; lowest predicted time among its variants";
  } else {
    if (!best) throw Error(std::string("no algorithm can run ") + coll_name(d.coll) + " here");
    plan.algo = best;
    plan.reason = "lowest predicted time";
  }
  for (const auto& c : plan.candidates)
    if (c.name == plan.algo->name) {
      plan.segments = c.segments;
      plan.seg_count = c.segments > 1 ? c.seg_count : d.count;
    }
  return plan;
}

namespace {

// How a message between ranks of link level L travels on device buffers, by
// size: one route, or the size from which a second takes over (the routes'
// costs are linear in the size, so they cross once at most).
std::string route_by_size(const CostModel& m, int L, bool near) {
  const size_t top = size_t{1} << 40;
  const DeviceRoute small = m.device_route(1, L, near), large = m.device_route(top, L, near);
  if (small == large) return device_route_name(small);
  size_t lo = 1, hi = top;  // route(lo) == small, route(hi) == large
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    (m.device_route(mid, L, near) == small ? lo : hi) = mid;
  }
  return std::string(device_route_name(small)) + " below " + fmt_bytes(hi) + ", " + device_route_name(large) +
         " from " + fmt_bytes(hi);
}

}  // namespace

std::string explain(const Topology& t, const Config& cfg, const CostModel& m, const CollDesc& d,
                    const std::string& forced) {
  Plan plan = choose(t, cfg, m, d, forced, true);
  std::ostringstream o;
  o << coll_name(d.coll) << " of " << fmt_bytes(d.bytes()) << " on " << t.size() << " ranks, " << t.num_nodes()
    << " nodes";
  for (int L = 1; L < t.levels(); ++L) o << ", " << t.num_groups(L) << " " << t.level_name(L) << " groups";
  o << "\nmodel:";
  for (int L = 0; L <= t.levels(); ++L) {
    const LinkParams& lp = m.at(L);
    std::string name = L == 0 ? "intra-node" : (L < t.levels() ? "intra-" + t.level_name(L) : "top");
    char b[128];
    std::snprintf(b, sizeof b, " [%s: %.2f us, %.2f GB/s]", name.c_str(), lp.alpha * 1e6, 1e-9 / lp.beta);
    o << b;
  }
  char g[96];
  std::snprintf(g, sizeof g, " [reduce %.2f GB/s, copy %.2f GB/s]", 1e-9 / m.gamma, 1e-9 / m.copy);
  o << g << (cfg.tuning_file.empty() ? " (defaults)" : " (tuning: " + cfg.tuning_file + ")") << "\n";
  if (m.dev.on) {
    const DeviceModel& v = m.dev;
    char b[320];
    std::snprintf(b, sizeof b,
                  "device buffers (transport %s, IPC %s): [to host %.1f GB/s, to device %.1f GB/s, device copy "
                  "%.0f GB/s, from a peer %.0f GB/s, device reduce %.0f GB/s, latency %.2f us",
                  device_path_name(v.path), v.ipc ? "on" : "off", 1e-9 / v.d2h, 1e-9 / v.h2d, 1e-9 / v.copy,
                  1e-9 / std::max(v.copy, v.peer), 1e-9 / v.gamma, v.latency * 1e6);
    o << b;
    if (v.path != DevicePath::staged) {
      std::snprintf(b, sizeof b, ", CUDA-aware MPI +%.2f us", v.aware_alpha * 1e6);
      o << b;
      if (v.aware_beta > 0) {
        std::snprintf(b, sizeof b, " at most %.2f GB/s", 1e-9 / v.aware_beta);
        o << b;
      }
    }
    o << "]\nmessages:";
    // Each link level's route; inside a node, for ranks that share a host.
    for (int L = 0; L <= t.levels(); ++L) {
      const std::string name = L == 0 ? "in a node" : (L < t.levels() ? "in a " + t.level_name(L) : "across the top");
      o << (L ? "; " : " ") << name << ": " << route_by_size(m, L, L == 0);
    }
    o << "\n";
  }
  int w = 20;  // the name column: variants such as split_rail(recursive_doubling) are longer
  for (const auto& c : plan.candidates) w = std::max(w, static_cast<int>(c.name.size()));
  char head[192];
  std::snprintf(head, sizeof head, "  %-*s %14s %9s %8s %12s %8s\n", w, "algorithm", "predicted", "segments",
                "rounds", "sent/rank", "msgs");
  o << head;
  for (const auto& c : plan.candidates) {
    char line[512];
    const bool chosen = plan.algo && c.name == plan.algo->name;
    if (!c.unsupported.empty()) {
      std::snprintf(line, sizeof line, "  %-*s %14s   (%s)\n", w, c.name.c_str(), "-", c.unsupported.c_str());
    } else {
      std::string note;
      if (!c.error.empty()) note = "  ERROR: " + c.error;
      else if (!c.how.empty()) note = "  (" + c.how + ")";
      std::snprintf(line, sizeof line, "%s %-*s %14s %9zu %8zu %12s %8zu%s\n", chosen ? "*" : " ", w,
                    c.name.c_str(), fmt_time(c.predicted).c_str(), c.segments, c.rounds,
                    fmt_bytes(c.bytes_sent).c_str(), c.messages, note.c_str());
    }
    o << line;
  }
  o << "choice: " << (plan.algo ? plan.algo->name : "none") << " (" << plan.reason << ")\n";
  return o.str();
}

}  // namespace baobab
