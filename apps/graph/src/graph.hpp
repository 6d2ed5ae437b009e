// The graph application's kernels (apps/graph/src, built into the extension
// module baobab_apps._graph). apps/graph/*.py distribute the graph and run the
// level/phase loops over baobab's collectives; these are the per-rank loops.
//
// Conventions.
//  - Vertex ids are global int64 in [0, n).
//  - A rank holds "rows": its owned vertices [lo, hi) as local rows 0..hi-lo-1,
//    then one delegate row per hub (a vertex of very high degree whose edges
//    are split over the ranks: row nlocal + j holds hub j's neighbours that
//    this rank owns). A row lists the row vertex's in-neighbours (undirected:
//    all neighbours), sorted, without duplicates or self-loops.
//  - The transpose ("columns"): for a global vertex u, the local rows whose
//    list contains u -- how a rank finds the rows a frontier vertex reaches.
//  - Bitmaps are uint64 words, bit (v & 63) of word v >> 6.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace baobab::graph {

// ---- the Graph500 Kronecker generator, counter-based ------------------------
// Edge list of 2^scale vertices and m = edgefactor 2^scale edges, as the
// Graph500 specification states it: every edge draws, for each of `scale` bit
// levels, a row bit (1 when U1 > A + B) and then a column bit (1 when
// U2 > C / (1 - (A + B)) after a row 1, U2 > A / (A + B) after a row 0), U1, U2
// uniform on [0, 1); then every
// vertex id goes through one random permutation of [0, n) and the edge list
// through one random permutation of [0, m). The random numbers are functions of
// (seed, stream, index) (a counter-based generator), so output positions
// [first, first + count) are the same on any number of ranks, made without
// communication. Weights: uniform [0, 1) float32 (24 random bits).
void kronecker(int scale, int64_t edgefactor, double a, double b, double c, uint64_t seed, int64_t first,
               int64_t count, int64_t* src, int64_t* dst, float* weight);

// The random permutation of [0, n) used for vertex ids (a keyed Feistel network
// with cycle walking): perm(x) for each x.
void permute(uint64_t key, int64_t n, const int64_t* x, int64_t count, int64_t* out);

// 64-bit hash of (seed, stream, i): the generator's random source, also used
// to sample search keys.
uint64_t hash3(uint64_t seed, uint64_t stream, uint64_t i);

// ---- construction ------------------------------------------------------------
// deg[v] += 1 for each endpoint of each edge (both when undirected, the
// destination only when directed); self-loops skipped when skip_loops.
void degree_count(const int64_t* src, const int64_t* dst, int64_t m, bool undirected, bool skip_loops,
                  int64_t n, int64_t* deg);

// Entries (row, col, weight) of the edges: undirected edge (u, v) gives (u, v)
// and (v, u); directed edge u -> v gives (v, u) (rows hold in-neighbours).
// Each goes to rank dest(row, col): owner(row), or owner(col) when row is a hub
// (is_hub[row] != 0). bounds: P + 1 vertex boundaries. Returns, per rank, the
// entries packed as int64 triples (row, col, float bits of weight), grouped by
// destination rank in rank order; counts[p] = triples for rank p.
void route_entries(const int64_t* src, const int64_t* dst, const float* w, int64_t m, bool undirected,
                   const int64_t* bounds, int nranks, const uint8_t* is_hub, int64_t n, std::vector<int64_t>& packed,
                   int64_t* counts);

// The rows in CSR from the packed triples that route_entries made and the
// all-to-all delivered (global row, col, weight bits): each row's columns
// sorted, duplicates merged (the smallest weight kept), self-loops dropped;
// offsets[nrows + 1]; raw[row] = entries before merging (input multiplicity,
// self-loops included: the Graph500 edge count). Rows in [lo, lo + nlocal) are
// local rows row - lo, a hub's (is_hub[row], hubs sorted) its delegate row
// nlocal + position. Two stable counting sorts (by column, then by row), so a
// row's columns come out sorted without a comparison sort.
void build_rows_packed(int64_t lo, int64_t nlocal, const uint8_t* is_hub, const int64_t* hubs, int64_t nhubs,
                       int64_t n, const int64_t* packed, int64_t k, std::vector<int64_t>& offsets,
                       std::vector<int64_t>& cols, std::vector<float>& weights, int64_t* raw);

// The transpose of the rows over n global columns: coff[n + 1], crow[nnz]
// (local rows, ascending within a column), cw[nnz] their weights.
void transpose(int64_t nrows, const int64_t* off, const int64_t* cols, const float* w, int64_t n,
               std::vector<int64_t>& coff, std::vector<int64_t>& crow, std::vector<float>& cw);

// ---- BFS -------------------------------------------------------------------
// Top-down step: for each u in the frontier (global ids) and each local row r
// that lists u, a row with parent[r] == -1 gets parent u and joins `next`
// (local rows, in discovery order). Returns the number of entries scanned.
int64_t bfs_top_down(const int64_t* coff, const int64_t* crow, const int64_t* frontier, int64_t nf, int64_t* parent,
                     std::vector<int64_t>& next);

// Bottom-up step: each row with parent == -1 scans its list for a vertex in the
// frontier bitmap; the first found becomes its parent, the row joins `next`.
int64_t bfs_bottom_up(int64_t nrows, const int64_t* off, const int64_t* cols, const uint64_t* front, int64_t* parent,
                      std::vector<int64_t>& next);

// Frontier conversions: set bits of ids (the words zeroed first), and the ids
// of the set bits of n bits.
void ids_to_bitmap(const int64_t* ids, int64_t k, int64_t n, uint64_t* bits);
void bitmap_to_ids(const uint64_t* bits, int64_t n, std::vector<int64_t>& ids);

// ---- validation (Graph500 rules) -------------------------------------------
// Levels of the tree given by the global parent array (-1 = unreached) from
// root: level[root] = 0, level[v] = level[parent[v]] + 1; -1 unreached. Returns
// an empty string, or what is wrong (a cycle, a parent that is unreached, the
// root not its own parent, a parent id out of range).
std::string bfs_levels(const int64_t* parent, int64_t n, int64_t root, int64_t* level);

// Checks the edges [0, m) against the levels: both ends reached or both not,
// levels differing by at most one; marks tree[v] = 1 where (parent[v], v) is an
// input edge. Returns the first violation found, or an empty string.
std::string bfs_check_edges(const int64_t* parent, const int64_t* level, int64_t n, const int64_t* src,
                            const int64_t* dst, int64_t m, uint8_t* tree);

}  // namespace baobab::graph
