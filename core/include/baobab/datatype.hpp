// Non-contiguous data: a type IR, its canonical forms, and packers.
//
// A layout describes which bytes, relative to a buffer pointer, hold the data
// and in which order they are packed. It is built from an MPI derived datatype
// (envelope/contents decoding) or from a strided array view, as a tree of
// streams (count repetitions of a child at a byte stride) over dense byte runs,
// and rewritten to a fixed point until it is, whenever the layout is a regular
// N-d block, a StridedBlock; irregular layouts keep a list of byte runs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace baobab {

// A regular N-d block of bytes. Dimension 0 is one contiguous block of
// counts[0] bytes; dimension d >= 1 repeats everything below it counts[d]
// times, strides[d] bytes apart (strides[0] is unused and 1). Packing visits
// dimension 0 innermost, the last dimension outermost. Strides may be negative
// or zero (a zero stride repeats data: readable, never writable).
struct StridedBlock {
  int64_t start = 0;
  std::vector<int64_t> counts;
  std::vector<int64_t> strides;

  int ndims() const { return static_cast<int>(counts.size()); }
  int64_t size() const;  // bytes of data
  bool operator==(const StridedBlock& o) const {
    return start == o.start && counts == o.counts && strides == o.strides;
  }
};

struct ByteRun {
  int64_t off = 0;
  int64_t len = 0;
  bool operator==(const ByteRun& o) const { return off == o.off && len == o.len; }
};

// The canonical form of a layout.
struct Layout {
  enum class Kind : uint8_t { strided, runs } kind = Kind::strided;
  StridedBlock sb;            // kind == strided
  std::vector<ByteRun> runs;  // kind == runs: in packing order, adjacent runs merged
  int64_t size = 0;           // bytes of data
  int64_t lb = 0, extent = 0; // MPI lower bound and extent: element k of a count starts k*extent later
  int64_t true_lb = 0, true_ub = 0;  // lowest byte touched, one past the highest

  bool operator==(const Layout& o) const;
  std::string describe() const;
  bool contiguous() const;     // one dense run starting at offset 0 (of size bytes)
  bool overlaps() const;       // some byte is visited twice (not writable by unpack)
  int64_t block_bytes() const; // typical contiguous run length (for cost models)
};

// ---- the IR ----------------------------------------------------------------------

struct TypeNode;
using NodePtr = std::shared_ptr<const TypeNode>;

// A node: `count` repetitions of `child` at `offset + k*stride` bytes, or (no
// child) a dense run of `extent` bytes at `offset`, or (kids non-empty) an
// irregular sequence of children, each with its own offset.
struct TypeNode {
  int64_t offset = 0;
  int64_t count = 1, stride = 0;  // stream
  int64_t extent = 0;             // dense leaf
  NodePtr child;
  std::vector<NodePtr> kids;      // irregular

  static NodePtr dense(int64_t offset, int64_t bytes);
  static NodePtr stream(int64_t offset, int64_t count, int64_t stride, NodePtr child);
  static NodePtr seq(std::vector<NodePtr> kids);
  bool is_dense() const { return !child && kids.empty(); }
  bool is_stream() const { return child != nullptr; }
  bool is_seq() const { return !kids.empty(); }
  std::string describe(int indent = 0) const;
};

// The rewrite passes, applied to a fixed point: drop count-1 streams (moving
// their offset down), fold a stream over a dense child whose extent equals the
// stride into one dense run, merge a stream over a stream whose strides compose
// (outer stride = inner count x inner stride), push offsets into children,
// flatten nested sequences and merge adjacent dense runs.
NodePtr simplify(NodePtr n);
// The canonical layout of a simplified tree.
Layout canonical(const NodePtr& n, int64_t lb, int64_t extent);

// A layout from a strided view: `itemsize`-byte elements, shape and byte
// strides in C order (last dimension fastest).
Layout layout_from_strides(int64_t itemsize, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides);
NodePtr tree_from_strides(int64_t itemsize, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides);

// ---- CPU packers -----------------------------------------------------------------

// Packs `count` elements of the layout (element k at k*extent) from src into the
// contiguous dst (size*count bytes). Specialised for 1, 2, 3 and N dimensions,
// with word-sized copies for small aligned blocks; run lists take a generic path.
void pack(const Layout& l, const void* src, void* dst, int64_t count = 1);
void unpack(const Layout& l, const void* src, void* dst, int64_t count = 1);

}  // namespace baobab
