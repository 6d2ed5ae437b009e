// Decoding MPI derived datatypes into the type IR, and building MPI datatypes
// from canonical layouts.
#include <mutex>
#include <sstream>
#include <vector>

#include "../runtime/transport.hpp"
#include "baobab/error.hpp"
#include "baobab/mpi_datatype.hpp"

namespace baobab {

namespace {

std::mutex g_mutex;
int g_keyval = MPI_KEYVAL_INVALID;
MPI_Comm g_self = MPI_COMM_NULL;  // MPI_COMM_SELF with errors returned, for MPI_Pack

int delete_info(MPI_Datatype, int, void* attr, void*) {
  delete static_cast<std::shared_ptr<const MpiTypeInfo>*>(attr);
  return MPI_SUCCESS;
}

int copy_info(MPI_Datatype, int, void*, void* in, void* out, int* flag) {
  // MPI_Type_dup: the duplicate has the same layout.
  *static_cast<void**>(out) = new std::shared_ptr<const MpiTypeInfo>(*static_cast<std::shared_ptr<const MpiTypeInfo>*>(in));
  *flag = 1;
  return MPI_SUCCESS;
}

MPI_Comm self_comm() {
  if (g_self == MPI_COMM_NULL) {
    check_mpi(MPI_Comm_dup(MPI_COMM_SELF, &g_self), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(g_self, MPI_ERRORS_RETURN);
  }
  return g_self;
}

const char* combiner_name(int c) {
  switch (c) {
    case MPI_COMBINER_NAMED: return "named";
    case MPI_COMBINER_DUP: return "dup";
    case MPI_COMBINER_CONTIGUOUS: return "contiguous";
    case MPI_COMBINER_VECTOR: return "vector";
    case MPI_COMBINER_HVECTOR: return "hvector";
    case MPI_COMBINER_INDEXED: return "indexed";
    case MPI_COMBINER_HINDEXED: return "hindexed";
    case MPI_COMBINER_INDEXED_BLOCK: return "indexed_block";
    case MPI_COMBINER_HINDEXED_BLOCK: return "hindexed_block";
    case MPI_COMBINER_STRUCT: return "struct";
    case MPI_COMBINER_SUBARRAY: return "subarray";
    case MPI_COMBINER_DARRAY: return "darray";
    case MPI_COMBINER_F90_REAL: return "f90_real";
    case MPI_COMBINER_F90_COMPLEX: return "f90_complex";
    case MPI_COMBINER_F90_INTEGER: return "f90_integer";
    case MPI_COMBINER_RESIZED: return "resized";
    default: return "unknown";
  }
}

struct Fallback {
  std::string reason;
};

int64_t extent_of(MPI_Datatype t) {
  MPI_Count lb = 0, ext = 0;
  check_mpi(MPI_Type_get_extent_x(t, &lb, &ext), "MPI_Type_get_extent_x");
  return ext;
}

// What MPI_Type_get_contents(_c) returns, with the large-count form (MPI 4)
// read into the same accessors as the classic one: p(i) is the i-th integer
// parameter of the constructor in the standard's order, whichever array holds it.
struct Contents {
  int combiner = MPI_COMBINER_NAMED;
  bool large = false;
  std::vector<int> ints;
  std::vector<MPI_Aint> addrs;
  std::vector<MPI_Count> counts;
  std::vector<MPI_Datatype> types;
  ~Contents() {
    for (auto& x : types) {
      int a = 0, b = 0, c = 0, k = 0;
      MPI_Type_get_envelope(x, &a, &b, &c, &k);
      if (k != MPI_COMBINER_NAMED) MPI_Type_free(&x);  // returned derived types are new handles
    }
  }
};

void read_contents(MPI_Datatype t, Contents& c) {
#if MPI_VERSION >= 4
  MPI_Count ni = 0, na = 0, nc = 0, nd = 0;
  check_mpi(MPI_Type_get_envelope_c(t, &ni, &na, &nc, &nd, &c.combiner), "MPI_Type_get_envelope_c");
  if (c.combiner == MPI_COMBINER_NAMED) return;
  c.ints.resize(static_cast<size_t>(ni));
  c.addrs.resize(static_cast<size_t>(na));
  c.counts.resize(static_cast<size_t>(nc));
  c.types.resize(static_cast<size_t>(nd));
  check_mpi(MPI_Type_get_contents_c(t, ni, na, nc, nd, c.ints.data(), c.addrs.data(), c.counts.data(),
                                    c.types.data()),
            "MPI_Type_get_contents_c");
  c.large = nc > 0;
#else
  int ni = 0, na = 0, nd = 0;
  check_mpi(MPI_Type_get_envelope(t, &ni, &na, &nd, &c.combiner), "MPI_Type_get_envelope");
  if (c.combiner == MPI_COMBINER_NAMED) return;
  c.ints.resize(static_cast<size_t>(ni));
  c.addrs.resize(static_cast<size_t>(na));
  c.types.resize(static_cast<size_t>(nd));
  check_mpi(MPI_Type_get_contents(t, ni, na, nd, c.ints.data(), c.addrs.data(), c.types.data()),
            "MPI_Type_get_contents");
#endif
}

// The data positions of one element of t, relative to the buffer pointer.
NodePtr decode(MPI_Datatype t, int depth) {
  if (depth > 64) throw Fallback{"datatype nested more than 64 levels deep"};
  Contents c;
  read_contents(t, c);
  if (c.combiner == MPI_COMBINER_NAMED) {
    MPI_Count size = 0, lb = 0, ext = 0;
    check_mpi(MPI_Type_size_x(t, &size), "MPI_Type_size_x");
    check_mpi(MPI_Type_get_extent_x(t, &lb, &ext), "MPI_Type_get_extent_x");
    if (lb != 0 || ext != size) throw Fallback{"a named type with gaps (a pair type such as MPI_DOUBLE_INT)"};
    return TypeNode::dense(0, size);
  }
  // Classic form: counts in ints, byte displacements in addrs. Large-count
  // form: all of them in counts (ints keep only ndims and order of subarray).
  const bool L = c.large;
  auto I = [&](size_t i) -> int64_t { return L ? static_cast<int64_t>(c.counts[i]) : c.ints[i]; };
  auto A = [&](size_t i, size_t li) -> int64_t { return L ? static_cast<int64_t>(c.counts[li]) : c.addrs[i]; };
  const int comb = c.combiner;
  switch (comb) {
    case MPI_COMBINER_DUP:
    case MPI_COMBINER_RESIZED:  // data positions unchanged; lb/extent are read from t itself
      return decode(c.types[0], depth + 1);
    case MPI_COMBINER_CONTIGUOUS:
      return TypeNode::stream(0, I(0), extent_of(c.types[0]), decode(c.types[0], depth + 1));
    case MPI_COMBINER_VECTOR: {
      const int64_t e = extent_of(c.types[0]);
      return TypeNode::stream(0, I(0), I(2) * e, TypeNode::stream(0, I(1), e, decode(c.types[0], depth + 1)));
    }
    case MPI_COMBINER_HVECTOR: {
      const int64_t e = extent_of(c.types[0]);
      return TypeNode::stream(0, I(0), A(0, 2), TypeNode::stream(0, I(1), e, decode(c.types[0], depth + 1)));
    }
    case MPI_COMBINER_INDEXED:
    case MPI_COMBINER_HINDEXED:
    case MPI_COMBINER_INDEXED_BLOCK:
    case MPI_COMBINER_HINDEXED_BLOCK: {
      const int64_t e = extent_of(c.types[0]);
      const NodePtr child = decode(c.types[0], depth + 1);
      const size_t n = static_cast<size_t>(I(0));
      std::vector<NodePtr> kids;
      for (size_t i = 0; i < n; ++i) {
        int64_t len = 0, off = 0;
        switch (comb) {
          case MPI_COMBINER_INDEXED: len = I(1 + i); off = I(1 + n + i) * e; break;
          case MPI_COMBINER_HINDEXED: len = I(1 + i); off = A(i, 1 + n + i); break;
          case MPI_COMBINER_INDEXED_BLOCK: len = I(1); off = I(2 + i) * e; break;
          default: len = I(1); off = A(i, 2 + i); break;
        }
        kids.push_back(TypeNode::stream(off, len, e, child));
      }
      return TypeNode::seq(std::move(kids));
    }
    case MPI_COMBINER_STRUCT: {
      const size_t n = static_cast<size_t>(I(0));
      std::vector<NodePtr> kids;
      for (size_t i = 0; i < n; ++i)
        kids.push_back(TypeNode::stream(A(i, 1 + n + i), I(1 + i), extent_of(c.types[i]),
                                        decode(c.types[i], depth + 1)));
      return TypeNode::seq(std::move(kids));
    }
    case MPI_COMBINER_SUBARRAY: {
      const size_t n = static_cast<size_t>(c.ints[0]);
      // classic ints: ndims, sizes, subsizes, starts, order; large: ints = {ndims, order}
      auto size_of = [&](size_t d) { return L ? static_cast<int64_t>(c.counts[d]) : c.ints[1 + d]; };
      auto sub_of = [&](size_t d) { return L ? static_cast<int64_t>(c.counts[n + d]) : c.ints[1 + n + d]; };
      auto start_of = [&](size_t d) { return L ? static_cast<int64_t>(c.counts[2 * n + d]) : c.ints[1 + 2 * n + d]; };
      const int order = L ? c.ints[1] : c.ints[1 + 3 * n];
      const int64_t e = extent_of(c.types[0]);
      std::vector<int64_t> stride(n);
      if (order == MPI_ORDER_C) {
        for (size_t k = n; k-- > 0;) stride[k] = k == n - 1 ? e : stride[k + 1] * size_of(k + 1);
      } else {
        for (size_t k = 0; k < n; ++k) stride[k] = k == 0 ? e : stride[k - 1] * size_of(k - 1);
      }
      int64_t off = 0;
      for (size_t k = 0; k < n; ++k) off += start_of(k) * stride[k];
      NodePtr node = decode(c.types[0], depth + 1);
      // innermost dimension first: C order's last, Fortran order's first
      for (size_t k = 0; k < n; ++k) {
        const size_t d = order == MPI_ORDER_C ? n - 1 - k : k;
        node = TypeNode::stream(0, sub_of(d), stride[d], node);
      }
      return TypeNode::stream(off, 1, 0, node);
    }
    default:
      throw Fallback{std::string("the ") + combiner_name(comb) + " constructor is not decoded"};
  }
}

}  // namespace

MpiTypeInfo decode_mpi_type(MPI_Datatype t) {
  std::lock_guard<std::mutex> lock(g_mutex);
  // Uncommitted types are refused by MPI_Pack even for a count of zero.
  {
    int pos = 0;
    char dummy[16];
    int rc = MPI_Pack(dummy, 0, t, dummy, sizeof dummy, &pos, self_comm());
    if (rc != MPI_SUCCESS) {
      int cls = 0;
      MPI_Error_class(rc, &cls);
      throw InvalidArgument(cls == MPI_ERR_TYPE ? "the MPI datatype is not committed (call Commit() first)"
                                                : "the MPI datatype is not usable: " + mpi_error_string(rc));
    }
  }
  if (g_keyval == MPI_KEYVAL_INVALID)
    check_mpi(MPI_Type_create_keyval(copy_info, delete_info, &g_keyval, nullptr), "MPI_Type_create_keyval");
  Contents top;
  read_contents(t, top);
  const bool cacheable = top.combiner != MPI_COMBINER_NAMED;
  if (cacheable) {
    void* attr = nullptr;
    int found = 0;
    check_mpi(MPI_Type_get_attr(t, g_keyval, &attr, &found), "MPI_Type_get_attr");
    if (found) return **static_cast<std::shared_ptr<const MpiTypeInfo>*>(attr);
  }
  auto info = std::make_shared<MpiTypeInfo>();
  MPI_Count size = 0, lb = 0, ext = 0;
  check_mpi(MPI_Type_size_x(t, &size), "MPI_Type_size_x");
  check_mpi(MPI_Type_get_extent_x(t, &lb, &ext), "MPI_Type_get_extent_x");
  info->size = size;
  info->lb = lb;
  info->extent = ext;
  try {
    NodePtr tree = decode(t, 0);
    auto layout = std::make_shared<Layout>(canonical(tree, lb, ext));
    if (layout->size != size) {
      info->fallback = "decoded " + std::to_string(layout->size) + " bytes but MPI_Type_size says " +
                       std::to_string(size);
    } else {
      info->layout = layout;
      info->tree = tree;
    }
  } catch (const Fallback& f) {
    info->fallback = f.reason;
  }
  if (cacheable)
    check_mpi(MPI_Type_set_attr(t, g_keyval, new std::shared_ptr<const MpiTypeInfo>(info)), "MPI_Type_set_attr");
  return *info;
}

void mpi_pack(MPI_Datatype t, const void* src, int64_t count, void* dst, int64_t dst_bytes) {
  int pos = 0;
  check_mpi(MPI_Pack(src, static_cast<int>(count), t, dst, static_cast<int>(dst_bytes), &pos, self_comm()),
            "MPI_Pack");
}

void mpi_unpack(MPI_Datatype t, const void* src, int64_t src_bytes, void* dst, int64_t count) {
  int pos = 0;
  check_mpi(MPI_Unpack(src, static_cast<int>(src_bytes), &pos, dst, static_cast<int>(count), t, self_comm()),
            "MPI_Unpack");
}

MPI_Datatype layout_to_mpi(const Layout& l) {
  MPI_Datatype t = MPI_DATATYPE_NULL, tmp = MPI_DATATYPE_NULL;
  if (l.kind == Layout::Kind::strided) {
    const auto& sb = l.sb;
    check_mpi(MPI_Type_contiguous(static_cast<int>(sb.counts[0]), MPI_BYTE, &t), "MPI_Type_contiguous");
    for (int d = 1; d < sb.ndims(); ++d) {
      if (sb.strides[d] < 0) {
        // Descending addresses as explicit displacements: Open MPI 4.1 folds an
        // hvector whose stride is minus its child's extent into one ascending
        // block (wrong lb, wrong bytes on the wire); hindexed_block is exact.
        std::vector<MPI_Aint> displs(static_cast<size_t>(sb.counts[d]));
        for (int64_t k = 0; k < sb.counts[d]; ++k) displs[static_cast<size_t>(k)] = k * sb.strides[d];
        check_mpi(MPI_Type_create_hindexed_block(static_cast<int>(sb.counts[d]), 1, displs.data(), t, &tmp),
                  "MPI_Type_create_hindexed_block");
      } else {
        check_mpi(MPI_Type_create_hvector(static_cast<int>(sb.counts[d]), 1, sb.strides[d], t, &tmp),
                  "MPI_Type_create_hvector");
      }
      MPI_Type_free(&t);
      t = tmp;
    }
    MPI_Aint disp = sb.start;
    int one = 1;
    check_mpi(MPI_Type_create_struct(1, &one, &disp, &t, &tmp), "MPI_Type_create_struct");
    MPI_Type_free(&t);
    t = tmp;
  } else {
    std::vector<int> lens;
    std::vector<MPI_Aint> offs;
    for (const auto& r : l.runs) {
      lens.push_back(static_cast<int>(r.len));
      offs.push_back(r.off);
    }
    check_mpi(MPI_Type_create_hindexed(static_cast<int>(lens.size()), lens.data(), offs.data(), MPI_BYTE, &t),
              "MPI_Type_create_hindexed");
  }
  check_mpi(MPI_Type_create_resized(t, l.lb, l.extent, &tmp), "MPI_Type_create_resized");
  MPI_Type_free(&t);
  check_mpi(MPI_Type_commit(&tmp), "MPI_Type_commit");
  return tmp;
}

}  // namespace baobab
