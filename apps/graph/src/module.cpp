// baobab_apps._graph: the graph application's extension module over its
// kernels (graph.hpp). Arrays arrive as C-contiguous numpy arrays of the exact
// dtype (int64 ids, float32 weights, uint64 bitmap words, uint8 marks); the
// Python side (apps/graph/gkernels.py and its callers) makes them so and checks
// what users pass. Sizes are checked here, so that no call reads or writes out
// of bounds; errors are baobab's InvalidArgument.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "app_module.hpp"
#include "baobab/error.hpp"
#include "bind.hpp"
#include "graph.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using baobab::InvalidArgument;
namespace g = baobab::graph;

namespace {

using namespace baobab::graph::bind;

template <class A>
int64_t len(const A& a) {
  return int64_t(a.shape(0));
}

}  // namespace

// Bindings of the other kernel families, each in its own file.
void bind_sssp(nb::module_& m);       // sssp.cpp
void bind_analytics(nb::module_& m);  // analytics.cpp

NB_MODULE(_graph, m) {
  m.doc() = "The graph application's kernels (apps/graph/src); apps/graph/gkernels.py is their Python face.";
  baobab::bindings::register_exceptions();

  m.def(
      "kronecker",
      [](int scale, int64_t edgefactor, double a, double b, double c, uint64_t seed, int64_t first, int64_t count,
         Out<int64_t> src, Out<int64_t> dst, Out<float> w) {
        need(scale >= 1 && scale <= 40, "scale must be in 1..40");
        need(edgefactor >= 1, "edgefactor must be at least 1");
        need(count >= 0 && first >= 0 && first + count <= (edgefactor << scale), "edge range beyond the edge list");
        need(len(src) >= count && len(dst) >= count && (len(w) == 0 || len(w) >= count), "output arrays too short");
        nb::gil_scoped_release rel;
        g::kronecker(scale, edgefactor, a, b, c, seed, first, count, src.data(), dst.data(),
                     len(w) ? w.data() : nullptr);
      },
      "scale"_a, "edgefactor"_a, "a"_a, "b"_a, "c"_a, "seed"_a, "first"_a, "count"_a, "src"_a.noconvert(),
      "dst"_a.noconvert(), "w"_a.noconvert(), "Edges [first, first + count) of the Kronecker edge list (graph.hpp).");
  m.def(
      "permute",
      [](uint64_t key, int64_t n, In<int64_t> x, Out<int64_t> out) {
        need(n >= 1 && len(out) >= len(x), "permute: n >= 1 and an output as long as x");
        for (int64_t i = 0; i < len(x); ++i) need(x.data()[i] >= 0 && x.data()[i] < n, "permute: x outside [0, n)");
        g::permute(key, n, x.data(), len(x), out.data());
      },
      "key"_a, "n"_a, "x"_a.noconvert(), "out"_a.noconvert(), "The keyed random permutation of [0, n) at x.");
  m.def(
      "hash3", [](uint64_t seed, uint64_t stream, uint64_t i) { return g::hash3(seed, stream, i); }, "seed"_a,
      "stream"_a, "i"_a, "The generator's 64-bit hash of (seed, stream, i).");
  m.def(
      "degree_count",
      [](In<int64_t> src, In<int64_t> dst, bool undirected, bool skip_loops, Out<int64_t> deg) {
        need(len(src) == len(dst), "src and dst differ in length");
        const int64_t n = len(deg);
        for (int64_t i = 0; i < len(src); ++i)
          need(src.data()[i] >= 0 && src.data()[i] < n && dst.data()[i] >= 0 && dst.data()[i] < n,
               "an edge names a vertex outside [0, n)");
        nb::gil_scoped_release rel;
        g::degree_count(src.data(), dst.data(), len(src), undirected, skip_loops, n, deg.data());
      },
      "src"_a.noconvert(), "dst"_a.noconvert(), "undirected"_a, "skip_loops"_a, "deg"_a.noconvert(),
      "Adds each edge's endpoints to deg (graph.hpp).");
  m.def(
      "route_entries",
      [](In<int64_t> src, In<int64_t> dst, In<float> w, bool undirected, In<int64_t> bounds, In<uint8_t> is_hub,
         Out<int64_t> counts) {
        const int nranks = int(len(bounds)) - 1;
        need(nranks >= 1 && len(counts) == nranks, "bounds has P + 1 entries, counts P");
        need(len(src) == len(dst) && (len(w) == 0 || len(w) == len(src)), "src, dst, w differ in length");
        const int64_t n = bounds.data()[nranks];
        need(len(is_hub) == 0 || len(is_hub) == n, "is_hub must have n entries");
        std::vector<int64_t> packed;
        {
          nb::gil_scoped_release rel;
          g::route_entries(src.data(), dst.data(), len(w) ? w.data() : nullptr, len(src), undirected, bounds.data(),
                           nranks, len(is_hub) ? is_hub.data() : nullptr, n, packed, counts.data());
        }
        return to_numpy(std::move(packed));
      },
      "src"_a.noconvert(), "dst"_a.noconvert(), "w"_a.noconvert(), "undirected"_a, "bounds"_a.noconvert(),
      "is_hub"_a.noconvert(), "counts"_a.noconvert(),
      "Entries (row, col, weight bits) as int64 triples grouped by destination rank (graph.hpp).");
  m.def(
      "build_rows_packed",
      [](int64_t lo, int64_t nlocal, In<uint8_t> is_hub, In<int64_t> hubs, int64_t n, In<int64_t> packed,
         Out<int64_t> raw) {
        const int64_t nhubs = len(hubs), k = len(packed) / 3;
        need(len(packed) % 3 == 0, "packed entries come in triples");
        need(lo >= 0 && nlocal >= 0 && lo + nlocal <= n, "rows outside [0, n)");
        need(nhubs == 0 || len(is_hub) == n, "is_hub must have n entries when there are hubs");
        need(len(raw) == nlocal + nhubs, "raw needs one entry per row");
        const int64_t* p = packed.data();
        for (int64_t i = 0; i < k; ++i) {
          const int64_t r = p[3 * i], c = p[3 * i + 1];
          need(c >= 0 && c < n, "an entry's column is not a vertex");
          const bool hub = nhubs && is_hub.data()[r >= 0 && r < n ? r : 0] && r >= 0 && r < n;
          need(hub || (r >= lo && r < lo + nlocal), "an entry's row is neither local nor a hub");
        }
        std::vector<int64_t> off, cols;
        std::vector<float> wts;
        {
          nb::gil_scoped_release rel;
          g::build_rows_packed(lo, nlocal, nhubs ? is_hub.data() : nullptr, hubs.data(), nhubs, n, p, k, off, cols,
                               wts, raw.data());
        }
        return std::make_tuple(to_numpy(std::move(off)), to_numpy(std::move(cols)), to_numpy(std::move(wts)));
      },
      "lo"_a, "nlocal"_a, "is_hub"_a.noconvert(), "hubs"_a.noconvert(), "n"_a, "packed"_a.noconvert(),
      "raw"_a.noconvert(), "(offsets, cols, weights) from route_entries' triples (graph.hpp).");
  m.def(
      "transpose",
      [](In<int64_t> off, In<int64_t> cols, In<float> w, int64_t n) {
        const int64_t nrows = len(off) - 1;
        need(nrows >= 0 && len(cols) == off.data()[nrows] && (len(w) == 0 || len(w) == len(cols)),
             "offsets, cols, weights disagree");
        for (int64_t i = 0; i < len(cols); ++i) need(cols.data()[i] >= 0 && cols.data()[i] < n, "col out of range");
        std::vector<int64_t> coff, crow;
        std::vector<float> cw;
        {
          nb::gil_scoped_release rel;
          g::transpose(nrows, off.data(), cols.data(), len(w) ? w.data() : nullptr, n, coff, crow, cw);
        }
        return std::make_tuple(to_numpy(std::move(coff)), to_numpy(std::move(crow)), to_numpy(std::move(cw)));
      },
      "off"_a.noconvert(), "cols"_a.noconvert(), "w"_a.noconvert(), "n"_a,
      "(col offsets, rows, weights): the transpose over n columns (graph.hpp).");
  m.def(
      "bfs_top_down",
      [](In<int64_t> coff, In<int64_t> crow, In<int64_t> frontier, Out<int64_t> parent) {
        const int64_t n = len(coff) - 1;
        for (int64_t i = 0; i < len(frontier); ++i)
          need(frontier.data()[i] >= 0 && frontier.data()[i] < n, "frontier vertex out of range");
        std::vector<int64_t> next;
        int64_t scanned;
        {
          nb::gil_scoped_release rel;
          scanned = g::bfs_top_down(coff.data(), crow.data(), frontier.data(), len(frontier), parent.data(), next);
        }
        return std::make_tuple(to_numpy(std::move(next)), scanned);
      },
      "coff"_a.noconvert(), "crow"_a.noconvert(), "frontier"_a.noconvert(), "parent"_a.noconvert(),
      "Top-down step: (new local rows, entries scanned) (graph.hpp).");
  m.def(
      "bfs_bottom_up",
      [](In<int64_t> off, In<int64_t> cols, In<uint64_t> front, Out<int64_t> parent) {
        const int64_t nrows = len(off) - 1;
        need(len(parent) == nrows, "parent needs one entry per row");
        std::vector<int64_t> next;
        int64_t scanned;
        {
          nb::gil_scoped_release rel;
          scanned = g::bfs_bottom_up(nrows, off.data(), cols.data(), front.data(), parent.data(), next);
        }
        return std::make_tuple(to_numpy(std::move(next)), scanned);
      },
      "off"_a.noconvert(), "cols"_a.noconvert(), "front"_a.noconvert(), "parent"_a.noconvert(),
      "Bottom-up step: (new local rows, entries scanned) (graph.hpp).");
  m.def(
      "ids_to_bitmap",
      [](In<int64_t> ids, int64_t n, Out<uint64_t> bits) {
        need(len(bits) >= (n + 63) / 64, "bitmap too short");
        for (int64_t i = 0; i < len(ids); ++i) need(ids.data()[i] >= 0 && ids.data()[i] < n, "id out of range");
        g::ids_to_bitmap(ids.data(), len(ids), n, bits.data());
      },
      "ids"_a.noconvert(), "n"_a, "bits"_a.noconvert(), "Zeroes bits and sets the ids' bits.");
  m.def(
      "bitmap_to_ids",
      [](In<uint64_t> bits, int64_t n) {
        need(len(bits) >= (n + 63) / 64, "bitmap too short");
        std::vector<int64_t> ids;
        g::bitmap_to_ids(bits.data(), n, ids);
        return to_numpy(std::move(ids));
      },
      "bits"_a.noconvert(), "n"_a, "The ids of the set bits, ascending.");
  m.def(
      "bfs_levels",
      [](In<int64_t> parent, int64_t root, Out<int64_t> level) {
        need(len(level) == len(parent), "level needs one entry per vertex");
        nb::gil_scoped_release rel;
        return g::bfs_levels(parent.data(), len(parent), root, level.data());
      },
      "parent"_a.noconvert(), "root"_a, "level"_a.noconvert(), "Levels of the BFS tree; '' or what is wrong.");
  m.def(
      "bfs_check_edges",
      [](In<int64_t> parent, In<int64_t> level, In<int64_t> src, In<int64_t> dst, Out<uint8_t> tree) {
        need(len(level) == len(parent) && len(tree) == len(parent), "level and tree need one entry per vertex");
        need(len(src) == len(dst), "src and dst differ in length");
        nb::gil_scoped_release rel;
        return g::bfs_check_edges(parent.data(), level.data(), len(parent), src.data(), dst.data(), len(src),
                                  tree.data());
      },
      "parent"_a.noconvert(), "level"_a.noconvert(), "src"_a.noconvert(), "dst"_a.noconvert(), "tree"_a.noconvert(),
      "Graph500 edge checks; marks tree edges; '' or the first violation.");
  bind_sssp(m);
  bind_analytics(m);
}
