// The type IR: construction, the rewrite passes, canonical layouts.
//
// After simplify() every offset lives in a dense leaf (streams and sequences
// carry none), so two trees that place the same bytes in the same order are
// structurally identical. The passes (each one local, applied bottom-up until
// nothing changes):
//   empty      a stream of count 0 or over nothing, a dense run of 0 bytes: nothing
//   count1     stream(1, s, c)              -> c
//   push       offsets move from a stream or sequence into its children
//   fold       stream(n, e, dense(o, e))    -> dense(o, n*e)
//   merge      stream(n, m*s, stream(m, s, c)) -> stream(n*m, s, c)
//   flatten    nested sequences become one; adjacent dense runs join
//   regular    a sequence of k copies of one subtree at a constant step d
//              -> stream(k, d, subtree)  (indexed types with regular displacements)
//   single     a sequence of one child      -> the child
#include <algorithm>
#include <functional>
#include <sstream>

#include "baobab/datatype.hpp"
#include "baobab/error.hpp"

namespace baobab {

int64_t StridedBlock::size() const {
  int64_t n = counts.empty() ? 0 : 1;
  for (int64_t c : counts) n *= c;
  return n;
}

NodePtr TypeNode::dense(int64_t offset, int64_t bytes) {
  auto n = std::make_shared<TypeNode>();
  n->offset = offset;
  n->extent = bytes;
  return n;
}

NodePtr TypeNode::stream(int64_t offset, int64_t count, int64_t stride, NodePtr child) {
  auto n = std::make_shared<TypeNode>();
  n->offset = offset;
  n->count = count;
  n->stride = stride;
  n->child = std::move(child);
  return n;
}

NodePtr TypeNode::seq(std::vector<NodePtr> kids) {
  if (kids.empty()) return dense(0, 0);
  auto n = std::make_shared<TypeNode>();
  n->kids = std::move(kids);
  return n;
}

std::string TypeNode::describe(int indent) const {
  std::ostringstream o;
  std::string pad(static_cast<size_t>(indent) * 2, ' ');
  if (is_dense()) {
    o << pad << "dense(off=" << offset << ", bytes=" << extent << ")\n";
  } else if (is_stream()) {
    o << pad << "stream(off=" << offset << ", count=" << count << ", stride=" << stride << ")\n"
      << child->describe(indent + 1);
  } else {
    o << pad << "seq(off=" << offset << ", " << kids.size() << " children)\n";
    for (const auto& k : kids) o << k->describe(indent + 1);
  }
  return o.str();
}

namespace {

bool empty(const NodePtr& n) { return n->is_dense() && n->extent == 0; }

NodePtr shifted(const NodePtr& n, int64_t delta) {
  if (delta == 0) return n;
  auto c = std::make_shared<TypeNode>(*n);
  c->offset += delta;
  return c;
}

// Same structure, and every leaf offset of b is that of a plus one constant.
bool same_shape(const TypeNode& a, const TypeNode& b, int64_t& delta, bool& first) {
  if (a.is_dense() != b.is_dense() || a.is_stream() != b.is_stream() || a.kids.size() != b.kids.size())
    return false;
  if (a.is_dense()) {
    if (a.extent != b.extent) return false;
    const int64_t d = b.offset - a.offset;
    if (first) {
      delta = d;
      first = false;
      return true;
    }
    return d == delta;
  }
  if (a.is_stream()) {
    if (a.count != b.count || a.stride != b.stride || a.offset != b.offset) return false;
    return same_shape(*a.child, *b.child, delta, first);
  }
  if (a.offset != b.offset) return false;
  for (size_t i = 0; i < a.kids.size(); ++i)
    if (!same_shape(*a.kids[i], *b.kids[i], delta, first)) return false;
  return true;
}

NodePtr step(const NodePtr& n, bool& changed);

NodePtr step_stream(const NodePtr& n, bool& changed) {
  NodePtr c = step(n->child, changed);
  if (n->count <= 0 || empty(c)) {
    changed = true;
    return TypeNode::dense(0, 0);
  }
  if (n->offset != 0) {  // push
    changed = true;
    return TypeNode::stream(0, n->count, n->stride, shifted(c, n->offset));
  }
  if (n->count == 1) {  // count1
    changed = true;
    return c;
  }
  if (c->is_dense() && c->extent == n->stride) {  // fold
    changed = true;
    return TypeNode::dense(c->offset, n->count * c->extent);
  }
  if (c->is_stream() && c->offset == 0 && n->stride == c->count * c->stride) {  // merge
    changed = true;
    return TypeNode::stream(0, n->count * c->count, c->stride, c->child);
  }
  if (c != n->child) return TypeNode::stream(0, n->count, n->stride, c);
  return n;
}

NodePtr step_seq(const NodePtr& n, bool& changed) {
  std::vector<NodePtr> kids;
  for (const auto& k0 : n->kids) {
    NodePtr k = step(shifted(k0, n->offset), changed);
    if (n->offset != 0) changed = true;
    if (empty(k)) {
      changed = true;
      continue;
    }
    if (k->is_seq()) {  // flatten
      changed = true;
      for (const auto& g : k->kids) kids.push_back(shifted(g, k->offset));
      continue;
    }
    if (!kids.empty() && kids.back()->is_dense() && k->is_dense() &&
        kids.back()->offset + kids.back()->extent == k->offset) {  // adjacent runs
      changed = true;
      kids.back() = TypeNode::dense(kids.back()->offset, kids.back()->extent + k->extent);
      continue;
    }
    kids.push_back(k);
  }
  if (kids.empty()) {
    changed = true;
    return TypeNode::dense(0, 0);
  }
  if (kids.size() == 1) {  // single
    changed = true;
    return kids[0];
  }
  // regular: every child is the first one shifted by i * d
  int64_t d = 0;
  bool first = true;
  bool regular = same_shape(*kids[0], *kids[1], d, first);
  for (size_t i = 2; regular && i < kids.size(); ++i) {
    int64_t di = 0;
    bool f = true;
    regular = same_shape(*kids[0], *kids[i], di, f) && di == static_cast<int64_t>(i) * d;
  }
  if (regular) {
    changed = true;
    return TypeNode::stream(0, static_cast<int64_t>(kids.size()), d, kids[0]);
  }
  auto out = std::make_shared<TypeNode>();
  out->kids = std::move(kids);
  return out;
}

NodePtr step(const NodePtr& n, bool& changed) {
  if (n->is_dense()) return n;
  if (n->is_stream()) return step_stream(n, changed);
  return step_seq(n, changed);
}

// Visits every dense run of n in packing order, with its absolute offset.
void runs_of(const TypeNode& n, int64_t base, const std::function<void(int64_t, int64_t)>& f) {
  if (n.is_dense()) {
    if (n.extent) f(base + n.offset, n.extent);
  } else if (n.is_stream()) {
    for (int64_t k = 0; k < n.count; ++k) runs_of(*n.child, base + n.offset + k * n.stride, f);
  } else {
    for (const auto& k : n.kids) runs_of(*k, base + n.offset, f);
  }
}

void bounds(Layout& l) {
  l.true_lb = 0;
  l.true_ub = 0;
  bool any = false;
  auto take = [&](int64_t off, int64_t len) {
    if (len <= 0) return;
    if (!any) {
      l.true_lb = off;
      l.true_ub = off + len;
      any = true;
    } else {
      l.true_lb = std::min(l.true_lb, off);
      l.true_ub = std::max(l.true_ub, off + len);
    }
  };
  if (l.kind == Layout::Kind::strided) {
    const auto& sb = l.sb;
    if (sb.size() == 0) return;
    int64_t lo = sb.start, hi = sb.start;
    for (int d = 1; d < sb.ndims(); ++d) {
      const int64_t span = (sb.counts[d] - 1) * sb.strides[d];
      if (span < 0) lo += span;
      else hi += span;
    }
    take(lo, hi - lo + sb.counts[0]);
  } else {
    for (const auto& r : l.runs) take(r.off, r.len);
  }
}

}  // namespace

NodePtr simplify(NodePtr n) {
  for (int guard = 0; guard < 1000; ++guard) {
    bool changed = false;
    n = step(n, changed);
    if (!changed) return n;
  }
  throw Error("datatype simplification did not reach a fixed point");
}

Layout canonical(const NodePtr& n0, int64_t lb, int64_t extent) {
  NodePtr n = simplify(n0);
  Layout l;
  l.lb = lb;
  l.extent = extent;
  // A chain of streams over one dense run is a StridedBlock.
  std::vector<const TypeNode*> chain;
  const TypeNode* cur = n.get();
  while (cur->is_stream()) {
    chain.push_back(cur);
    cur = cur->child.get();
  }
  if (cur->is_dense()) {
    l.kind = Layout::Kind::strided;
    l.sb.start = cur->offset;
    l.sb.counts.push_back(cur->extent);
    l.sb.strides.push_back(1);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      l.sb.counts.push_back((*it)->count);
      l.sb.strides.push_back((*it)->stride);
    }
    l.size = l.sb.size();
    if (cur->extent == 0) {
      l.sb = StridedBlock{0, {0}, {1}};
      l.size = 0;
    }
  } else {
    l.kind = Layout::Kind::runs;
    runs_of(*n, 0, [&](int64_t off, int64_t len) {
      if (!l.runs.empty() && l.runs.back().off + l.runs.back().len == off) l.runs.back().len += len;
      else l.runs.push_back(ByteRun{off, len});
      l.size += len;
    });
  }
  bounds(l);
  return l;
}

NodePtr tree_from_strides(int64_t itemsize, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  if (shape.size() != strides.size()) throw InvalidArgument("shape and strides differ in length");
  NodePtr n = TypeNode::dense(0, itemsize);
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] < 0) throw InvalidArgument("negative dimension in a view's shape");
    n = TypeNode::stream(0, shape[i], strides[i], n);
  }
  return n;
}

Layout layout_from_strides(int64_t itemsize, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  Layout l = canonical(tree_from_strides(itemsize, shape, strides), 0, 0);
  l.lb = l.true_lb;
  l.extent = l.true_ub - l.true_lb;
  return l;
}

bool Layout::operator==(const Layout& o) const {
  if (kind != o.kind || size != o.size || lb != o.lb || extent != o.extent) return false;
  return kind == Kind::strided ? sb == o.sb : runs == o.runs;
}

bool Layout::contiguous() const {
  if (kind == Kind::strided) return sb.ndims() == 1 && sb.start == 0;
  return runs.size() == 1 && runs[0].off == 0;
}

bool Layout::overlaps() const {
  if (kind == Kind::strided) {
    // Sort dimensions by |stride|; each must step past everything below it.
    std::vector<std::pair<int64_t, int64_t>> dims;  // (|stride|, count)
    for (int d = 1; d < sb.ndims(); ++d)
      if (sb.counts[d] > 1) dims.emplace_back(sb.strides[d] < 0 ? -sb.strides[d] : sb.strides[d], sb.counts[d]);
    std::sort(dims.begin(), dims.end());
    int64_t span = sb.counts[0];
    for (auto [s, c] : dims) {
      if (s < span) return true;
      span = s * (c - 1) + span;
    }
    return false;
  }
  std::vector<ByteRun> r = runs;
  std::sort(r.begin(), r.end(), [](const ByteRun& a, const ByteRun& b) { return a.off < b.off; });
  for (size_t i = 1; i < r.size(); ++i)
    if (r[i].off < r[i - 1].off + r[i - 1].len) return true;
  return false;
}

int64_t Layout::block_bytes() const {
  if (kind == Kind::strided) return sb.counts.empty() ? 0 : sb.counts[0];
  return runs.empty() ? 0 : size / static_cast<int64_t>(runs.size());
}

std::string Layout::describe() const {
  std::ostringstream o;
  if (kind == Kind::strided) {
    o << "StridedBlock(start=" << sb.start << ", counts=[";
    for (int d = 0; d < sb.ndims(); ++d) o << (d ? ", " : "") << sb.counts[d];
    o << "], strides=[";
    for (int d = 0; d < sb.ndims(); ++d) o << (d ? ", " : "") << sb.strides[d];
    o << "])";
  } else {
    o << "Runs(" << runs.size() << " runs";
    for (size_t i = 0; i < runs.size() && i < 4; ++i) o << ", " << runs[i].off << "+" << runs[i].len;
    if (runs.size() > 4) o << ", ...";
    o << ")";
  }
  o << " size=" << size << " lb=" << lb << " extent=" << extent;
  return o.str();
}

}  // namespace baobab
