#include "baobab/schedule.hpp"

#include <sstream>

#include "baobab/error.hpp"

namespace baobab {

namespace {
constexpr const char* kCollNames[] = {"allreduce", "reduce_scatter", "allgather", "bcast",
                                      "reduce",    "alltoall",       "barrier"};
}

const char* coll_name(Coll c) {
  auto i = static_cast<size_t>(c);
  return i < static_cast<size_t>(Coll::count_) ? kCollNames[i] : "?";
}

Coll coll_from_name(const std::string& name) {
  for (size_t i = 0; i < static_cast<size_t>(Coll::count_); ++i)
    if (name == kCollNames[i]) return static_cast<Coll>(i);
  if (name == "alltoallv") return Coll::alltoall;
  if (name == "allgatherv") return Coll::allgather;
  if (name == "broadcast") return Coll::bcast;
  std::string known;
  for (auto n : kCollNames) known += std::string(known.empty() ? "" : ", ") + n;
  throw InvalidArgument("unknown collective '" + name + "' (known: " + known + ")");
}

namespace {

// One free list per list length (1..kPooled operations), per thread,
// holding at most kPoolBytes: what a large replay frees beyond that goes
// back to the heap. A list freed after its thread's pool is gone (a
// schedule that outlives it, at exit) goes back to the heap too.
constexpr size_t kPoolBytes = size_t{8} << 20;
thread_local bool op_pool_gone = false;
struct OpPool {
  std::vector<void*> free[kPooled + 1];
  size_t bytes = 0;
  ~OpPool() {
    op_pool_gone = true;
    for (auto& f : free)
      for (void* p : f) ::operator delete(p);
  }
};
thread_local OpPool op_pool;

}  // namespace

void* op_pool_take(size_t n) {
  if (op_pool_gone) return ::operator new(n * sizeof(Op));
  auto& f = op_pool.free[n];
  if (f.empty()) return ::operator new(n * sizeof(Op));
  void* p = f.back();
  f.pop_back();
  op_pool.bytes -= n * sizeof(Op);
  return p;
}

void op_pool_give(void* p, size_t n) {
  if (op_pool_gone || op_pool.bytes + n * sizeof(Op) > kPoolBytes) {
    ::operator delete(p);
    return;
  }
  op_pool.free[n].push_back(p);
  op_pool.bytes += n * sizeof(Op);
}

bool Round::has_comm() const {
  for (const auto& op : ops)
    if (op.kind == OpKind::send || op.kind == OpKind::recv) return true;
  return false;
}

uint8_t Schedule::add_scratch(size_t count) {
  if (scratch.size() >= 250) throw Error("schedule needs too many scratch buffers");
  scratch.push_back(count);
  return static_cast<uint8_t>(kScratch + scratch.size() - 1);
}

void Schedule::append(const Schedule& other) {
  const size_t base = scratch.size();
  for (size_t c : other.scratch) scratch.push_back(c);
  auto fix = [base](Ref& r) {
    if (r.buf >= kScratch) r.buf = static_cast<uint8_t>(r.buf + base);
  };
  for (Round r : other.rounds) {
    for (Op& op : r.ops) {
      fix(op.a);
      fix(op.b);
      fix(op.dst);
    }
    rounds.push_back(std::move(r));
  }
}

namespace {

bool overlaps(const Ref& x, size_t nx, const Ref& y, size_t ny) {
  return nx && ny && x.buf == y.buf && x.off < y.off + ny && y.off < x.off + nx;
}
bool covers(const Ref& w, size_t nw, const Ref& r, size_t nr) {
  return w.buf == r.buf && w.off <= r.off && r.off + nr <= w.off + nw;
}

// The direct_reads entry of recv `i` of round `r` (see schedule.hpp).
int32_t direct_read(const Schedule& s, size_t r, size_t i) {
  const Op& rv = s.rounds[r].ops[i];
  const Ref d = rv.dst;
  const size_t n = rv.count;
  if (d.buf < kScratch || n == 0) return -1;
  int32_t reader = -1;
  const auto& ops = s.rounds[r].ops;
  for (size_t j = 0; j < ops.size(); ++j) {  // the round's local operations, in order
    const Op& op = ops[j];
    if (op.kind != OpKind::reduce && op.kind != OpKind::copy) continue;
    const bool ra = overlaps(op.a, op.count, d, n);
    const bool rb = op.kind == OpKind::reduce && overlaps(op.b, op.count, d, n);
    if (reader < 0) {
      if (!ra && !rb) {
        if (overlaps(op.dst, op.count, d, n)) return -1;  // overwritten before it is read
        continue;
      }
      const Ref& x = ra ? op.a : op.b;
      if (op.kind != OpKind::reduce || (ra && rb) || x.off != d.off || op.count != n ||
          overlaps(op.dst, op.count, d, n))
        return -1;
      reader = static_cast<int32_t>(2 * j + (rb ? 1 : 0));
      continue;
    }
    if (ra || rb) return -1;
    if (covers(op.dst, op.count, d, n)) return reader;
  }
  if (reader < 0) return -1;
  for (size_t k = r + 1; k < s.rounds.size(); ++k) {
    const auto& later = s.rounds[k].ops;
    for (const Op& op : later)  // sends read the buffer as the round starts
      if (op.kind == OpKind::send && overlaps(op.a, op.count, d, n)) return -1;
    for (const Op& op : later)
      if (op.kind == OpKind::recv && covers(op.dst, op.count, d, n)) return reader;
    for (const Op& op : later) {
      if (op.kind != OpKind::reduce && op.kind != OpKind::copy) continue;
      if (overlaps(op.a, op.count, d, n) || (op.kind == OpKind::reduce && overlaps(op.b, op.count, d, n))) return -1;
      if (covers(op.dst, op.count, d, n)) return reader;
    }
  }
  return reader;  // scratch: nothing reads it after the schedule
}

}  // namespace

std::vector<std::vector<int32_t>> direct_reads(const Schedule& s) {
  std::vector<std::vector<int32_t>> out(s.rounds.size());
  for (size_t r = 0; r < s.rounds.size(); ++r) {
    out[r].assign(s.rounds[r].ops.size(), -1);
    for (size_t i = 0; i < s.rounds[r].ops.size(); ++i)
      if (s.rounds[r].ops[i].kind == OpKind::recv) out[r][i] = direct_read(s, r, i);
  }
  return out;
}

size_t Schedule::message_count() const {
  size_t n = 0;
  for (const auto& r : rounds)
    for (const auto& op : r.ops) n += op.kind == OpKind::send;
  return n;
}

size_t Schedule::bytes_sent() const {
  size_t n = 0;
  for (const auto& r : rounds)
    for (const auto& op : r.ops)
      if (op.kind == OpKind::send) n += op.count * elem_size;
  return n;
}

std::string Schedule::describe() const {
  auto ref = [](const Ref& r) {
    std::ostringstream o;
    if (r.buf == kIn) o << "in";
    else if (r.buf == kOut) o << "out";
    else o << "s" << (r.buf - kScratch);
    o << "[" << r.off << "]";
    return o.str();
  };
  std::ostringstream o;
  o << algo << ": " << rounds.size() << " rounds\n";
  for (size_t i = 0; i < rounds.size(); ++i) {
    o << "  round " << i << ":";
    for (const auto& op : rounds[i].ops) {
      switch (op.kind) {
        case OpKind::send: o << " send(" << op.peer << ", " << ref(op.a) << ", " << op.count << ")"; break;
        case OpKind::recv: o << " recv(" << op.peer << ", " << ref(op.dst) << ", " << op.count << ")"; break;
        case OpKind::reduce:
          o << " reduce(" << ref(op.dst) << " = " << ref(op.a) << " op " << ref(op.b) << ", " << op.count << ")";
          break;
        case OpKind::copy: o << " copy(" << ref(op.dst) << " = " << ref(op.a) << ", " << op.count << ")"; break;
      }
    }
    o << "\n";
  }
  return o.str();
}

void RoundBuilder::done() {
  if (nc_ == 0 && nl_ == 0) return;
  Round& r = s_.new_round();
  r.ops.reserve(nc_ + comm_more_.size() + nl_ + local_more_.size());
  r.ops.insert(r.ops.end(), comm_.at(0), comm_.at(nc_));
  r.ops.insert(r.ops.end(), comm_more_.begin(), comm_more_.end());
  r.ops.insert(r.ops.end(), local_.at(0), local_.at(nl_));
  r.ops.insert(r.ops.end(), local_more_.begin(), local_more_.end());
  nc_ = nl_ = 0;
  comm_more_.clear();
  local_more_.clear();
}

}  // namespace baobab
