// baobab._core: the nanobind module over the C++ core. Arrays arrive as
// nb::ndarray without conversion (a wrong dtype or layout is an error, never a
// silent copy); communicators arrive as Fortran handles from mpi4py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>

#include "baobab/algorithms.hpp"
#include "baobab/attention.hpp"
#include "baobab/communicator.hpp"
#include "baobab/config.hpp"
#include "baobab/cuda.hpp"
#include "baobab/datatype.hpp"
#include "baobab/error.hpp"
#include "baobab/mpi_datatype.hpp"
#include "baobab/p2p.hpp"
#include "baobab/reduce.hpp"
#include "baobab/select.hpp"
#include "baobab/simulate.hpp"
#include "baobab/topology.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using namespace baobab;

namespace {

// ---- errors ------------------------------------------------------------------------
// Each C++ class of the core's exception family raises the Python class of the
// same name in baobab._errors, which carries the Python bases (InvalidArgument
// is also a ValueError, TimeoutError also the builtin TimeoutError). One
// translator per class, registered with the Python class as its payload;
// nanobind tries the newest translator first, so the base class goes first.

void set_error(PyObject* cls, const Error& e) { PyErr_SetString(cls, e.what()); }

void set_error(PyObject* cls, const TimeoutError& e) {
  nb::list missing;
  for (int r : e.missing()) missing.append(r);
  nb::object exc = nb::borrow(cls)(nb::str(e.what()));
  nb::setattr(exc, "op", nb::str(e.op().c_str()));
  nb::setattr(exc, "seq", nb::int_(e.seq()));
  nb::setattr(exc, "missing", missing);
  PyErr_SetObject(cls, exc.ptr());
}

template <class E>
void raise_as(nb::handle errors, const char* name) {
  nb::register_exception_translator(
      [](const std::exception_ptr& p, void* cls) {
        try {
          std::rethrow_exception(p);
        } catch (const E& e) {
          set_error(static_cast<PyObject*>(cls), e);
        }
      },
      nb::getattr(errors, name).release().ptr());  // kept as long as the translator
}

void bind_errors() {
  nb::module_ errors = nb::module_::import_("baobab._errors");
  raise_as<Error>(errors, "Error");
  raise_as<InvalidArgument>(errors, "InvalidArgument");
  raise_as<MismatchError>(errors, "MismatchError");
  raise_as<TimeoutError>(errors, "TimeoutError");
  raise_as<MPIError>(errors, "MPIError");
  raise_as<CUDAError>(errors, "CUDAError");
}

// ---- enumerations -------------------------------------------------------------------
// The core's enumerations as Python enum classes, their members named by the
// core's own name functions (Coll.allreduce, DType.bfloat16, RedOp.max): Python
// copies neither a numbering nor a spelling.
template <class E, class NameOf>
void bind_enum(nb::module_& m, const char* name, const char* doc, NameOf name_of) {
  nb::enum_<E> e(m, name, doc);
  for (int i = 0; i < static_cast<int>(E::count_); ++i) {
    const E v = static_cast<E>(i);
    e.value(std::string_view(name_of(v)).data(), v);  // the names are string literals
  }
}

void bind_enums(nb::module_& m) {
  bind_enum<Coll>(m, "Coll", "A collective operation (baobab::Coll).", coll_name);
  bind_enum<DType>(m, "DType",
                   "An element type (baobab::DType): numpy's dtype names, and byte (opaque, not reducible).",
                   dtype_name);
  bind_enum<RedOp>(m, "RedOp", "A reduction operator (baobab::RedOp).", redop_name);
}

using Array = nb::ndarray<nb::device::cpu>;
using RoArray = nb::ndarray<nb::ro, nb::device::cpu>;

template <class A>
void require_contiguous(const A& a, const char* what) {
  if (a.size() == 0) return;
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect)
      throw InvalidArgument(std::string(what) + " array is not C-contiguous; pass a contiguous copy (numpy.ascontiguousarray)");
    expect *= a.shape(i);
  }
}

// A C-contiguous buffer held through the buffer protocol for one call.
struct Buffer {
  Py_buffer v{};
  Buffer(nb::handle h, bool writable, const char* what) {
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(h.ptr(), &v, flags) != 0) {
      PyErr_Clear();
      throw InvalidArgument(std::string(what) + " must be a C-contiguous" + (writable ? ", writable" : "") +
                            " array");
    }
  }
  ~Buffer() { PyBuffer_Release(&v); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

struct Call {
  CollDesc d;
  DType dtype;
  Reduction red;
  const void* in = nullptr;
  void* out = nullptr;
};

Call make_call(Coll coll, const RoArray& in, const Array& out, DType dtype, RedOp op, size_t count,
               const std::vector<size_t>& counts, int root) {
  Call c;
  c.d.coll = coll;
  c.dtype = dtype;
  c.d.elem_size = dtype_size(c.dtype);
  c.d.count = count;
  c.d.counts = counts;
  c.d.root = root;
  require_contiguous(in, "input");
  require_contiguous(out, "output");
  if (in.itemsize() != c.d.elem_size && in.size() > 0)
    throw InvalidArgument("input items are " + std::to_string(in.itemsize()) + " bytes, dtype " +
                          std::string(dtype_name(c.dtype)) + " needs " + std::to_string(c.d.elem_size));
  if (out.itemsize() != c.d.elem_size && out.size() > 0)
    throw InvalidArgument("output items are " + std::to_string(out.itemsize()) + " bytes, dtype " +
                          std::string(dtype_name(c.dtype)) + " needs " + std::to_string(c.d.elem_size));
  if (c.d.reduces()) c.red = typed_reduction(c.dtype, op);
  c.in = in.data();
  c.out = out.data();
  return c;
}

// The log-sum-exp merge as a reduction of the collective engine.
struct MergeCtx {
  int64_t d;
  bool dbl;
};
void merge_fn(void* dst, const void* a, const void* b, size_t n, const void* ctx) {
  const auto* c = static_cast<const MergeCtx*>(ctx);
  attention::merge_rows(dst, a, b, n, c->d, c->dbl);
}

// tree_decode's collective over `values` packed values (rows of d + 1): the
// merge as its reduction, an allreduce or a reduce to root. Filled in place
// (the reduction points at ctx).
struct MergeCall {
  MergeCtx ctx{};
  Reduction red;
  CollDesc desc;
  MergeCall() = default;
  MergeCall(const MergeCall&) = delete;
  void set(size_t values, int64_t d, bool dbl, std::optional<int> root) {
    if (d < 1 || values % static_cast<size_t>(d + 1) != 0)
      throw InvalidArgument("packed holds " + std::to_string(values) + " values, not rows of d + 1 = " +
                            std::to_string(d + 1));
    ctx = MergeCtx{d, dbl};
    red.fn = merge_fn;
    red.ctx = &ctx;
    red.elem_size = static_cast<size_t>(d + 1) * (dbl ? 8 : 4);
    red.dtype = static_cast<uint8_t>(dbl ? DType::f64 : DType::f32);
    red.op = kLseMergeOp;
    desc.coll = root ? Coll::reduce : Coll::allreduce;
    desc.count = values / static_cast<size_t>(d + 1);
    desc.elem_size = red.elem_size;
    desc.root = root.value_or(0);
  }
};

// Shapes of the attention kernels' arrays, checked: every array C-contiguous,
// one float dtype, q (b, h, q_len, d), k and v (b, h, kv_len, d).
template <class LseArray>
attention::Shape attention_shape(const RoArray& q, const RoArray& k, const RoArray& v,
                                 std::initializer_list<const Array*> outs, const LseArray& lse) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4)
    throw InvalidArgument("attention arrays must be 4-D (batch, heads, length, d)");
  const bool dbl = q.dtype() == nb::dtype<double>();
  if (!dbl && q.dtype() != nb::dtype<float>()) throw InvalidArgument("attention arrays must be float32 or float64");
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype() || lse.dtype() != q.dtype())
    throw InvalidArgument("attention arrays must share one dtype");
  for (size_t i = 0; i < 4; ++i)
    if (k.shape(i) != v.shape(i)) throw InvalidArgument("k and v shapes differ");
  if (q.shape(0) != k.shape(0) || q.shape(1) != k.shape(1) || q.shape(3) != k.shape(3))
    throw InvalidArgument("q and k must agree in batch, heads and d");
  require_contiguous(q, "q");
  require_contiguous(k, "k");
  require_contiguous(v, "v");
  require_contiguous(lse, "lse");
  for (const Array* o : outs) {
    if (o->dtype() != q.dtype() || o->size() != q.size()) throw InvalidArgument("output does not match q");
    require_contiguous(*o, "output");
  }
  attention::Shape s;
  s.bh = static_cast<int64_t>(q.shape(0) * q.shape(1));
  s.q_len = static_cast<int64_t>(q.shape(2));
  s.kv_len = static_cast<int64_t>(k.shape(2));
  s.d = static_cast<int64_t>(q.shape(3));
  if (lse.size() != static_cast<size_t>(s.bh * s.q_len)) throw InvalidArgument("lse does not match q");
  return s;
}

nb::dict topology_dict(const Topology& t) {
  nb::dict d;
  d["size"] = t.size();
  d["levels"] = t.levels();
  nb::list names, groups;
  for (int L = 0; L < t.levels(); ++L) {
    names.append(t.level_name(L));
    nb::list g;
    for (int r = 0; r < t.size(); ++r) g.append(t.group(L, r));
    groups.append(g);
  }
  d["level_names"] = names;
  d["groups"] = groups;
  nb::list hosts, local_rank, local_size;
  for (int r = 0; r < t.size(); ++r) {
    hosts.append(t.host(r));
    local_rank.append(t.local_rank(r));
    local_size.append(t.local_size(r));
  }
  d["hosts"] = hosts;
  d["local_rank"] = local_rank;
  d["local_size"] = local_size;
  d["leaders"] = nb::cast(t.leaders());
  d["source"] = t.source();
  d["describe"] = t.describe();
  return d;
}

nb::dict plan_dict(const Plan& p) {
  nb::dict d;
  d["algorithm"] = p.algo ? p.algo->name : std::string();
  d["segments"] = p.segments;
  d["segment_count"] = p.seg_count;
  d["reason"] = p.reason;
  nb::list cands;
  for (const auto& c : p.candidates) {
    nb::dict cd;
    cd["name"] = c.name;
    cd["unsupported"] = c.unsupported;
    cd["predicted"] = c.predicted;
    cd["segments"] = c.segments;
    cd["segment_count"] = c.seg_count;
    cd["bytes_sent"] = c.bytes_sent;
    cd["messages"] = c.messages;
    cd["rounds"] = c.rounds;
    cd["error"] = c.error;
    cd["beaten"] = c.beaten;
    cd["replayed"] = c.replayed;
    cd["symmetry"] = symmetry_name(c.symmetry);
    cd["estimate"] = c.estimate;
    cd["how"] = c.how;
    cands.append(cd);
  }
  d["candidates"] = cands;
  return d;
}

// A description from the Python side, checked so that no schedule builder sees
// a count list of the wrong length or a root outside the communicator.
CollDesc desc(Coll c, size_t count, size_t elem_size, int root, const std::vector<size_t>& counts, int size) {
  const size_t p = static_cast<size_t>(size);
  if ((c == Coll::reduce_scatter || c == Coll::allgather) && counts.size() != p)
    throw InvalidArgument(std::string(coll_name(c)) + " needs " + std::to_string(p) + " counts, got " +
                          std::to_string(counts.size()));
  if (c == Coll::alltoall && counts.size() != p * p)
    throw InvalidArgument("alltoall needs " + std::to_string(p * p) + " counts, got " + std::to_string(counts.size()));
  if (root < 0 || root >= size) throw InvalidArgument("root " + std::to_string(root) + " outside 0.." + std::to_string(size - 1));
  if (elem_size == 0) throw InvalidArgument("element size must be positive");
  CollDesc d;
  d.coll = c;
  d.count = count;
  d.elem_size = elem_size;
  d.root = root;
  d.counts = counts;
  return d;
}

nb::dict config_dict(const Config& c) {
  nb::dict d;
  d["timeout"] = c.timeout;
  d["check"] = c.check;
  d["topology"] = c.topology;
  d["segment"] = c.segment_bytes;
  d["window"] = c.window;
  d["device_plan"] = c.device_host_plan ? "host" : "device";
  d["tuning_file"] = c.tuning_file;
  d["tuning_error"] = c.tuning_error;
  nb::dict algo;
  for (int i = 0; i < static_cast<int>(Coll::count_); ++i)
    if (!c.algo[i].empty()) algo[coll_name(static_cast<Coll>(i))] = c.algo[i];
  d["algo"] = algo;
  return d;
}

// An option's value as T, or InvalidArgument naming the option.
template <class T>
T option(const std::string& key, nb::handle v, const char* expected) {
  try {
    return nb::cast<T>(v);
  } catch (const std::exception&) {
    throw InvalidArgument("option " + key + "=" + nb::cast<std::string>(nb::repr(v)) + ": expected " + expected);
  }
}

Config config_with(const nb::dict& overrides) {
  Config c = Config::from_env(!overrides.contains("tuning"));
  for (auto [k, v] : overrides) {
    std::string key = nb::cast<std::string>(k);
    if (key == "timeout") c.timeout = check_timeout("timeout", option<double>(key, v, "seconds (inf: no deadline)"));
    else if (key == "check") c.check = option<bool>(key, v, "True or False");
    else if (key == "topology") c.topology = option<std::string>(key, v, "a BAOBAB_TOPOLOGY string");
    else if (key == "algo") c.set_algos(option<std::string>(key, v, "COLLECTIVE=ALGORITHM,..."));
    else if (key == "segment") c.segment_bytes = option<size_t>(key, v, "a positive number of bytes");
    else if (key == "window") c.window = option<int>(key, v, "a whole number from 1 to 32");
    else if (key == "device_plan") {
      const std::string dp = option<std::string>(key, v, "'device' or 'host'");
      if (dp != "device" && dp != "host") throw InvalidArgument("option device_plan='" + dp + "': expected 'device' or 'host'");
      c.device_host_plan = dp == "host";
    }
    else if (key == "sim_op_budget") c.sim_op_budget = option<size_t>(key, v, "a number of operations");
    else if (key == "sim_symmetric") c.sim_symmetric = option<bool>(key, v, "True or False");
    else if (key == "sim_exact_ranks") c.sim_exact_ranks = option<int>(key, v, "a number of ranks");
    else if (key == "sim_full_ops") c.sim_full_ops = option<size_t>(key, v, "a number of operations");
    else if (key == "tuned") continue;  // below, after the tuning file's
    else if (key == "tuning") {
      c.tuning_file = option<std::string>(key, v, "a tuning file path");
      c.tuned = c.tuning_file.empty() ? decltype(c.tuned){} : read_tuning_file(c.tuning_file);
    } else throw InvalidArgument("unknown communicator option '" + key + "'");
  }
  if (overrides.contains("tuned"))  // tuning keys given directly (baobab simulate --link): after the file's
    for (auto [tk, tv] : nb::cast<nb::dict>(overrides["tuned"]))
      c.tuned.emplace_back(nb::cast<std::string>(tk), nb::cast<double>(tv));
  if (c.window < 1 || c.window > 32) throw InvalidArgument("window must be from 1 to 32");
  if (c.segment_bytes < 1) throw InvalidArgument("segment must be at least 1 byte");
  return c;
}

// The deadline of a communicator's set-up on this rank: the timeout option,
// else this rank's BAOBAB_TIMEOUT (rank 0's configuration reports bad values).
double setup_timeout(const nb::dict& overrides) {
  if (overrides.contains("timeout")) {
    try {
      return check_timeout("timeout", nb::cast<double>(overrides["timeout"]));
    } catch (const std::exception&) {
      return -1;
    }
  }
  return -1;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "baobab core runtime";
  bind_errors();
  bind_enums(m);
  m.attr("ATTENTION_NO_MASK") = attention::kNoMask;  // causal_offset meaning "no causal mask"
  m.def("mpi_library_version", &mpi_library_version);
  m.def("mpi_build", [] { return std::make_pair(mpi_build_family(), mpi_build_version()); });
  m.def("cuda_status", &cuda_status);
  m.def("dtype_size", [](DType t) { return dtype_size(t); });
  m.def("coll_from_name", &coll_from_name, "name"_a,
        "The collective a name means (its own, or alltoallv, allgatherv, broadcast); InvalidArgument if none.");
  m.def("algorithms", [] {
    nb::list out;
    for (const auto& a : algorithms()) {
      nb::dict d;
      d["collective"] = coll_name(a.coll);
      d["name"] = a.name;
      d["summary"] = a.summary;
      d["hierarchical"] = a.hierarchical;
      d["segmentable"] = a.segmentable;
      d["family"] = a.family;      // a composition's variant: its family, and
      d["inner"] = a.inner;        // the flat allreduce it embeds
      d["variants"] = a.variants;  // a family's entry: its variants
      out.append(d);
    }
    return out;
  });

  m.def("reduce_local",
        [](DType dtype, RedOp op, RoArray a, RoArray b, Array out) {
          require_contiguous(a, "a");
          require_contiguous(b, "b");
          require_contiguous(out, "out");
          if (a.size() != b.size() || a.size() != out.size()) throw InvalidArgument("reduce_local: sizes differ");
          if (a.itemsize() != dtype_size(dtype) || b.itemsize() != a.itemsize() || out.itemsize() != a.itemsize())
            throw InvalidArgument("reduce_local: items are not " + std::string(dtype_name(dtype)));
          reduce_kernel(dtype, op)(out.data(), a.data(), b.data(), a.size());
        },
        "dtype"_a, "op"_a, "a"_a.noconvert(), "b"_a.noconvert(), "out"_a.noconvert());

  nb::class_<Topology>(m, "Topology")
      .def_prop_ro("size", &Topology::size)
      .def_prop_ro("levels", &Topology::levels)
      .def("as_dict", &topology_dict)
      .def("link_level", &Topology::link_level)
      .def("describe", &Topology::describe);
  m.def("make_topology", &make_topology, "size"_a, "node_keys"_a, "hosts"_a, "slurm_addr"_a, "spec"_a);

  m.def("config_from_env", [](nb::dict overrides) { return config_dict(config_with(overrides)); },
        "overrides"_a = nb::dict());
  m.def("default_tuning_path", &default_tuning_path);

  // Replays algorithm schedules on a modelled cluster; with inputs, moves real data.
  m.def(
      "simulate",
      [](const Topology& t, Coll coll, const std::string& algo, size_t count, const std::vector<size_t>& counts,
         int root, DType dt, RedOp op, nb::list inputs, nb::list outputs, nb::dict overrides, size_t segments,
         size_t segment_count) {
        Config cfg = config_with(overrides);
        CostModel model = cfg.model(t);
        CollDesc d = desc(coll, count, dtype_size(dt), root, counts, t.size());
        const Algorithm* a = find_algorithm(d.coll, algo);
        if (!a) throw InvalidArgument("unknown algorithm '" + algo + "'");
        std::string why = a->unsupported(t, d);
        if (!why.empty()) throw InvalidArgument(algo + " " + why);
        if (a->is_family()) a = choose(t, cfg, model, d, algo).algo;  // the variant the selector picks
        size_t nseg = 1, seg = d.count;
        if (segments > 1 && a->segmentable) {
          // segment_count: the elements per segment a plan gave (the last
          // segment is shorter); else `segments` equal ones
          seg = segment_count ? segment_count : (d.count + segments - 1) / segments;
          if (seg == 0) seg = 1;
          nseg = (d.count + seg - 1) / seg;
          if (nseg == 0) nseg = 1;
        }
        const int p = t.size();
        std::vector<Schedule> full(p), last(p);
        std::vector<std::vector<SimLane>> lanes(p);
        CollDesc sd = d, ld = d;
        sd.count = nseg > 1 ? seg : d.count;
        ld.count = d.count - (nseg - 1) * seg;
        size_t rounds = 0;
        for (int r = 0; r < p; ++r) {
          full[r] = build_schedule(*a, t, sd, r, model);
          if (nseg > 1) last[r] = build_schedule(*a, t, ld, r, model);
          rounds = std::max(rounds, full[r].rounds.size());
          for (size_t s = 0; s < nseg; ++s)
            lanes[r].push_back(SimLane{(nseg > 1 && s + 1 == nseg) ? &last[r] : &full[r], s * seg, s * seg});
        }
        SimData data;
        const bool with_data = inputs.size() > 0;
        if (with_data) {
          if (static_cast<int>(inputs.size()) != p || static_cast<int>(outputs.size()) != p)
            throw InvalidArgument("simulate: need one input and one output array per rank");
          for (int r = 0; r < p; ++r) {
            RoArray in = nb::cast<RoArray>(inputs[r]);
            Array out = nb::cast<Array>(outputs[r]);
            const char* ip = static_cast<const char*>(in.data());
            data.in.emplace_back(ip, ip + in.nbytes());
            data.out.emplace_back(out.nbytes());
            std::memcpy(data.out.back().data(), out.data(), out.nbytes());
          }
          if (d.reduces()) data.reduction = typed_reduction(dt, op);
        }
        SimResult res;
        {
          nb::gil_scoped_release nogil;
          res = simulate(t, model, lanes, nseg > 1 ? cfg.window : 1, with_data ? &data : nullptr);
        }
        if (with_data)
          for (int r = 0; r < p; ++r) {
            Array out = nb::cast<Array>(outputs[r]);
            std::memcpy(out.data(), data.out[r].data(), out.nbytes());
          }
        nb::dict o;
        o["time"] = res.time;
        o["finish"] = res.finish;
        o["max_bytes_sent"] = res.max_bytes_sent;
        o["max_messages"] = res.max_messages;
        o["total_bytes"] = res.total_bytes;
        o["error"] = res.error;
        o["rounds"] = rounds;
        o["segments"] = nseg;
        o["schedule0"] = full[0].describe();
        o["algorithm"] = a->name;
        return o;
      },
      "topology"_a, "coll"_a, "algo"_a, "count"_a, "counts"_a, "root"_a, "dtype"_a, "op"_a, "inputs"_a,
      "outputs"_a, "overrides"_a = nb::dict(), "segments"_a = 1, "segment_count"_a = 0);

  m.def(
      "plan_for",
      // cost_all: every candidate's full replay (explain); False: the runtime's
      // selection, which stops costing candidates that can no longer win.
      [](const Topology& t, Coll coll, size_t count, size_t elem_size, int root, const std::vector<size_t>& counts,
         const std::string& algo, nb::dict overrides, bool cost_all, const std::string& device, bool ipc) {
        Config cfg = config_with(overrides);
        CollDesc d = desc(coll, count, elem_size, root, counts, t.size());
        CostModel m = cfg.model(t);
        if (!device.empty()) m = m.for_device(device_path_from_name(device), ipc);
        Plan p;
        {
          nb::gil_scoped_release nogil;
          p = choose(t, cfg, m, d, algo, cost_all);
        }
        return plan_dict(p);
      },
      "topology"_a, "coll"_a, "count"_a, "elem_size"_a, "root"_a, "counts"_a, "algo"_a = "",
      "overrides"_a = nb::dict(), "cost_all"_a = true, "device"_a = "", "ipc"_a = false);
  // How the device model routes a message of `bytes` at link level `level`
  // (near: one node and host) with transport `device` (path name) and `ipc`,
  // and what each route costs alone (seconds).
  m.def(
      "device_route",
      [](size_t bytes, int level, bool near, const std::string& device, bool ipc, nb::dict overrides) {
        Config cfg = config_with(overrides);
        const CostModel m = cfg.model(std::max(level, 1)).for_device(device_path_from_name(device), ipc);
        nb::dict costs;
        for (DeviceRoute r : {DeviceRoute::direct, DeviceRoute::staged, DeviceRoute::ipc})
          costs[device_route_name(r)] = m.device_route_cost(r, bytes, level);
        return nb::make_tuple(device_route_name(m.device_route(bytes, level, near)), costs);
      },
      "bytes"_a, "level"_a, "near"_a, "device"_a, "ipc"_a, "overrides"_a = nb::dict());

  // ---- datatypes --------------------------------------------------------------
  nb::class_<Layout>(m, "Layout")
      .def_prop_ro("kind", [](const Layout& l) { return l.kind == Layout::Kind::strided ? "strided" : "runs"; })
      .def_prop_ro("start", [](const Layout& l) { return l.sb.start; })
      .def_prop_ro("counts", [](const Layout& l) { return l.sb.counts; })
      .def_prop_ro("strides", [](const Layout& l) { return l.sb.strides; })
      .def_prop_ro("runs", [](const Layout& l) {
        std::vector<std::pair<int64_t, int64_t>> out;
        for (const auto& r : l.runs) out.emplace_back(r.off, r.len);
        return out;
      })
      .def_ro("size", &Layout::size)
      .def_ro("lb", &Layout::lb)
      .def_ro("extent", &Layout::extent)
      .def_ro("true_lb", &Layout::true_lb)
      .def_ro("true_ub", &Layout::true_ub)
      .def("overlaps", &Layout::overlaps)
      .def("contiguous", &Layout::contiguous)
      .def("block_bytes", &Layout::block_bytes)
      .def("describe", &Layout::describe)
      .def("__eq__", [](const Layout& a, const Layout& b) { return a == b; })
      .def("__repr__", &Layout::describe);

  m.def("layout_from_strides", &layout_from_strides, "itemsize"_a, "shape"_a, "strides"_a);
  m.def("decode_mpi_type", [](intptr_t fhandle) {
    MPI_Datatype t = MPI_Type_f2c(static_cast<MPI_Fint>(fhandle));
    MpiTypeInfo info = decode_mpi_type(t);
    nb::dict d;
    d["layout"] = info.layout ? nb::cast(*info.layout) : nb::none();
    d["tree"] = info.tree ? info.tree->describe() : std::string();
    d["simplified"] = info.tree ? simplify(info.tree)->describe() : std::string();
    d["fallback"] = info.fallback;
    d["size"] = info.size;
    d["lb"] = info.lb;
    d["extent"] = info.extent;
    return d;
  });
  // Raw-pointer packers: the Python layer checks bounds and keeps buffers alive.
  m.def("pack_ptr", [](const Layout& l, uintptr_t src, uintptr_t dst, int64_t count) {
    pack(l, reinterpret_cast<const void*>(src), reinterpret_cast<void*>(dst), count);
  }, "layout"_a, "src"_a, "dst"_a, "count"_a = 1, nb::call_guard<nb::gil_scoped_release>());
  m.def("unpack_ptr", [](const Layout& l, uintptr_t src, uintptr_t dst, int64_t count) {
    unpack(l, reinterpret_cast<const void*>(src), reinterpret_cast<void*>(dst), count);
  }, "layout"_a, "src"_a, "dst"_a, "count"_a = 1, nb::call_guard<nb::gil_scoped_release>());
  m.def("mpi_pack_ptr", [](intptr_t fhandle, uintptr_t src, int64_t count, uintptr_t dst, int64_t dst_bytes) {
    mpi_pack(MPI_Type_f2c(static_cast<MPI_Fint>(fhandle)), reinterpret_cast<const void*>(src), count,
             reinterpret_cast<void*>(dst), dst_bytes);
  }, nb::call_guard<nb::gil_scoped_release>());
  m.def("mpi_unpack_ptr", [](intptr_t fhandle, uintptr_t src, int64_t src_bytes, uintptr_t dst, int64_t count) {
    mpi_unpack(MPI_Type_f2c(static_cast<MPI_Fint>(fhandle)), reinterpret_cast<const void*>(src), src_bytes,
               reinterpret_cast<void*>(dst), count);
  }, nb::call_guard<nb::gil_scoped_release>());

  // ---- CUDA (device pointers as integers; the Python layer checks devices and sizes)
  m.def("cuda_available", &cuda::available);
  m.def("cuda_device_count", &cuda_device_count);
  m.def(
      "device_merge_rows",
      [](uintptr_t dst, uintptr_t a, uintptr_t b, size_t rows, int64_t d, bool dbl, uintptr_t stream) {
        cuda_device_ops().merge_rows(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(a),
                                     reinterpret_cast<const void*>(b), rows, d, dbl, reinterpret_cast<void*>(stream));
      },
      "dst"_a, "a"_a, "b"_a, "rows"_a, "d"_a, "dbl"_a, "stream"_a);
  m.def("emulated_peer_traffic", [] {
    const EmulatedPeerTraffic t = emulated_peer_traffic();
    return std::make_pair(t.copied, t.reduced);
  });
  m.def(
      "device_reduce",
      // dst[i] = a[i] OP b[i] on a device (pointers; queued on `stream`), or on
      // the host emulation: the kernels of the device collectives.
      [](DType dtype, RedOp op, uintptr_t dst, uintptr_t a, uintptr_t b, size_t n, uintptr_t stream, bool emulated) {
        DeviceOps& ops = emulated ? emulated_device_ops() : cuda_device_ops();
        ops.reduce(dtype, op, reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(a),
                   reinterpret_cast<const void*>(b), n, reinterpret_cast<void*>(stream));
      },
      "dtype"_a, "op"_a, "dst"_a, "a"_a, "b"_a, "n"_a, "stream"_a, "emulated"_a);
  m.def(
      "measure_device",
      [](bool emulated, size_t bytes, int reps) {
        DeviceOps& ops = emulated ? emulated_device_ops() : cuda_device_ops();
        DeviceRates r;
        {
          nb::gil_scoped_release nogil;
          r = measure_device(ops, bytes, reps);
        }
        nb::dict d;
        d["d2h_GBps"] = r.d2h / 1e9;
        d["h2d_GBps"] = r.h2d / 1e9;
        d["copy_GBps"] = r.copy / 1e9;
        d["reduce_GBps"] = r.reduce / 1e9;
        d["latency_us"] = r.latency * 1e6;
        return d;
      },
      "emulated"_a, "bytes"_a, "reps"_a);
  m.def("cuda_pointer_device", [](uintptr_t p) { return cuda::pointer_device(reinterpret_cast<const void*>(p)); });
  m.def("cuda_pack_ptr", [](const Layout& l, uintptr_t src, uintptr_t dst, int64_t count, uintptr_t stream) {
    cuda::pack(l, reinterpret_cast<const void*>(src), reinterpret_cast<void*>(dst), count,
               reinterpret_cast<void*>(stream));
  }, nb::call_guard<nb::gil_scoped_release>());
  m.def("cuda_unpack_ptr", [](const Layout& l, uintptr_t src, uintptr_t dst, int64_t count, uintptr_t stream) {
    cuda::unpack(l, reinterpret_cast<const void*>(src), reinterpret_cast<void*>(dst), count,
                 reinterpret_cast<void*>(stream));
  }, nb::call_guard<nb::gil_scoped_release>());
  m.def("cuda_synchronize", [](uintptr_t stream) { cuda::synchronize(reinterpret_cast<void*>(stream)); },
        nb::call_guard<nb::gil_scoped_release>());
  m.def("mpi_cuda_aware", [] {
    bool aware = false;
    std::string why = mpi_cuda_aware_reason(aware);
    return std::make_pair(aware, why);
  });

  // ---- point-to-point -------------------------------------------------------------
  nb::class_<Transfer>(m, "Transfer")
      .def("test", &Transfer::test, nb::call_guard<nb::gil_scoped_release>())
      .def("wait", &Transfer::wait, "timeout"_a, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("packed", &Transfer::packed)
      .def_prop_ro("bytes", &Transfer::bytes);
  nb::class_<PointToPoint>(m, "PointToPoint")
      .def(
          "__init__",
          [](PointToPoint* self, intptr_t fhandle, nb::dict overrides) {
            Config cfg = config_with(overrides);
            MPI_Comm comm = MPI_Comm_f2c(static_cast<MPI_Fint>(fhandle));
            nb::gil_scoped_release nogil;
            new (self) PointToPoint(comm, cfg);
          },
          "fhandle"_a, "overrides"_a = nb::dict())
      .def_prop_ro("rank", &PointToPoint::rank)
      .def_prop_ro("size", &PointToPoint::size)
      .def_prop_ro("timeout", &PointToPoint::timeout)
      .def("will_pack", [](const PointToPoint& p, const Layout& l) { return !l.contiguous() && p.model().pack(l); })
      .def_prop_ro("bytes_sent", &PointToPoint::bytes_sent)
      .def_prop_ro("messages_sent", &PointToPoint::messages_sent)
      .def(
          "isend",
          [](PointToPoint& p, uintptr_t base, const Layout& l, int dest, int tag) {
            return p.isend(reinterpret_cast<const void*>(base), l, dest, tag);
          },
          nb::call_guard<nb::gil_scoped_release>())
      .def(
          "irecv",
          [](PointToPoint& p, uintptr_t base, const Layout& l, int source, int tag) {
            return p.irecv(reinterpret_cast<void*>(base), l, source, tag);
          },
          nb::call_guard<nb::gil_scoped_release>())
      .def("free", &PointToPoint::free, nb::call_guard<nb::gil_scoped_release>());
  m.def("wait_all", &wait_all, "transfers"_a, "timeout"_a, nb::call_guard<nb::gil_scoped_release>());

  // ---- attention ----------------------------------------------------------------------
  // Merges packed rows [out.., lse] of every rank in one collective: an allreduce
  // (root None) or a reduce to root, in place.
  m.def(
      "attention_merge_collective",
      [](Communicator& c, Array packed, int64_t d, std::optional<int> root, const std::string& algo) {
        require_contiguous(packed, "packed");
        const bool dbl = packed.dtype() == nb::dtype<double>();
        if (!dbl && packed.dtype() != nb::dtype<float>()) throw InvalidArgument("packed rows must be float32 or float64");
        MergeCall mc;
        mc.set(packed.size(), d, dbl, root);
        void* p = packed.data();
        nb::gil_scoped_release nogil;
        c.run(mc.desc, p, p, dbl ? DType::f64 : DType::f32, mc.red, algo);
      },
      "comm"_a, "packed"_a.noconvert(), "d"_a, "root"_a.none(), "algo"_a);
  // The same on device rows (a pointer to `values` floats), through the device
  // lanes: the merge runs on the device, no host copy of the rows.
  m.def(
      "attention_merge_collective_device",
      [](Communicator& c, uintptr_t packed, size_t values, bool dbl, int64_t d, std::optional<int> root,
         const std::string& algo, uintptr_t stream, const std::string& path, bool emulated, bool ipc) {
        MergeCall mc;  // the device lanes run the merge with DeviceOps::merge_rows
        mc.set(values, d, dbl, root);
        DeviceCall dc;
        dc.ops = emulated ? &emulated_device_ops() : &cuda_device_ops();
        dc.path = device_path_from_name(path);
        dc.stream = reinterpret_cast<void*>(stream);
        dc.ipc = ipc;
        void* p = reinterpret_cast<void*>(packed);
        nb::gil_scoped_release nogil;
        c.run(mc.desc, p, p, dbl ? DType::f64 : DType::f32, mc.red, algo, &dc);
      },
      "comm"_a, "packed"_a, "values"_a, "dbl"_a, "d"_a, "root"_a.none(), "algo"_a, "stream"_a, "path"_a,
      "emulated"_a, "ipc"_a);
  // Local kernels: q/out [b][h][q_len][d], k/v [b][h][kv_len][d], lse/delta [b][h][q_len].
  m.def(
      "attention_forward",
      [](RoArray q, RoArray k, RoArray v, double scale, int64_t off, Array out, Array lse, int threads) {
        const attention::Shape s = attention_shape(q, k, v, {&out}, lse);
        const bool dbl = q.dtype() == nb::dtype<double>();
        nb::gil_scoped_release nogil;
        if (dbl)
          attention::partial_forward(s, static_cast<const double*>(q.data()), static_cast<const double*>(k.data()),
                                     static_cast<const double*>(v.data()), scale, off,
                                     static_cast<double*>(out.data()), static_cast<double*>(lse.data()), threads);
        else
          attention::partial_forward(s, static_cast<const float*>(q.data()), static_cast<const float*>(k.data()),
                                     static_cast<const float*>(v.data()), static_cast<float>(scale), off,
                                     static_cast<float*>(out.data()), static_cast<float*>(lse.data()), threads);
      },
      "q"_a.noconvert(), "k"_a.noconvert(), "v"_a.noconvert(), "scale"_a, "causal_offset"_a, "out"_a.noconvert(),
      "lse"_a.noconvert(), "threads"_a);
  m.def(
      "attention_backward",
      [](RoArray q, RoArray k, RoArray v, RoArray dout, RoArray lse, RoArray delta, double scale, int64_t off,
         Array dq, Array dk, Array dv, int threads) {
        const attention::Shape s = attention_shape(q, k, v, {&dq}, lse);
        if (dout.size() != q.size() || delta.size() != lse.size() || dk.size() != k.size() || dv.size() != v.size())
          throw InvalidArgument("attention_backward: dout, delta, dk, dv sizes do not fit q, lse, k, v");
        for (const auto* a : {&dout, &delta})
          if (a->dtype() != q.dtype()) throw InvalidArgument("attention_backward: dtypes differ");
        for (const auto* a : {&dk, &dv})
          if (a->dtype() != q.dtype()) throw InvalidArgument("attention_backward: dtypes differ");
        require_contiguous(dout, "dout");
        require_contiguous(delta, "delta");
        require_contiguous(dk, "dk");
        require_contiguous(dv, "dv");
        const bool dbl = q.dtype() == nb::dtype<double>();
        nb::gil_scoped_release nogil;
        if (dbl)
          attention::partial_backward(
              s, static_cast<const double*>(q.data()), static_cast<const double*>(k.data()),
              static_cast<const double*>(v.data()), static_cast<const double*>(dout.data()),
              static_cast<const double*>(lse.data()), static_cast<const double*>(delta.data()), scale, off,
              static_cast<double*>(dq.data()), static_cast<double*>(dk.data()), static_cast<double*>(dv.data()),
              threads);
        else
          attention::partial_backward(
              s, static_cast<const float*>(q.data()), static_cast<const float*>(k.data()),
              static_cast<const float*>(v.data()), static_cast<const float*>(dout.data()),
              static_cast<const float*>(lse.data()), static_cast<const float*>(delta.data()),
              static_cast<float>(scale), off, static_cast<float*>(dq.data()), static_cast<float*>(dk.data()),
              static_cast<float*>(dv.data()), threads);
      },
      "q"_a.noconvert(), "k"_a.noconvert(), "v"_a.noconvert(), "dout"_a.noconvert(), "lse"_a.noconvert(),
      "delta"_a.noconvert(), "scale"_a, "causal_offset"_a, "dq"_a.noconvert(), "dk"_a.noconvert(),
      "dv"_a.noconvert(), "threads"_a);
  m.def(
      "attention_merge_rows",
      [](Array dst, RoArray a, RoArray b, int64_t d) {
        const bool dbl = a.dtype() == nb::dtype<double>();
        if (a.size() != b.size() || a.size() != dst.size() || d < 1 || a.size() % static_cast<size_t>(d + 1))
          throw InvalidArgument("merge_rows: arrays of rows of d + 1 values of one size expected");
        if (a.dtype() != b.dtype() || a.dtype() != dst.dtype()) throw InvalidArgument("merge_rows: dtypes differ");
        require_contiguous(a, "a");
        require_contiguous(b, "b");
        require_contiguous(dst, "dst");
        attention::merge_rows(dst.data(), a.data(), b.data(), a.size() / static_cast<size_t>(d + 1), d, dbl);
      },
      "dst"_a.noconvert(), "a"_a.noconvert(), "b"_a.noconvert(), "d"_a);

  nb::class_<Work>(m, "Work")
      .def("test", &Work::test, nb::call_guard<nb::gil_scoped_release>())
      .def("wait", &Work::wait, "timeout"_a = -1.0, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("done", &Work::done)
      .def_prop_ro("algorithm", &Work::algorithm)
      .def_prop_ro("seq", &Work::seq);

  nb::class_<Communicator>(m, "Communicator")
      .def(
          "__init__",
          [](Communicator* self, intptr_t fhandle, nb::dict overrides) {
            MPI_Comm comm = MPI_Comm_f2c(static_cast<MPI_Fint>(fhandle));
            // Only rank 0 reads the environment and the overrides.
            std::function<Config()> make = [overrides]() {
              nb::gil_scoped_acquire gil;
              return config_with(overrides);
            };
            const double setup = setup_timeout(overrides);
            nb::gil_scoped_release nogil;
            new (self) Communicator(comm, make, setup);
          },
          "fhandle"_a, "overrides"_a = nb::dict())
      .def_prop_ro("rank", &Communicator::rank)
      .def_prop_ro("size", &Communicator::size)
      .def("topology", &Communicator::topology, nb::rv_policy::reference_internal)
      .def("config", [](const Communicator& c) { return config_dict(c.config()); })
      .def("stats", [](const Communicator& c) {
        Stats s = c.stats();
        nb::dict d;
        d["collectives"] = s.collectives;
        d["messages_sent"] = s.messages_sent;
        d["bytes_sent"] = s.bytes_sent;
        return d;
      })
      .def(
          "run",
          [](Communicator& c, Coll coll, RoArray in, Array out, DType dtype, RedOp op, size_t count,
             const std::vector<size_t>& counts, int root, const std::string& algo) {
            Call k = make_call(coll, in, out, dtype, op, count, counts, root);
            nb::gil_scoped_release nogil;
            c.run(k.d, k.in, k.out, k.dtype, k.red, algo);
          },
          "coll"_a, "input"_a.noconvert(), "output"_a.noconvert(), "dtype"_a, "op"_a, "count"_a, "counts"_a,
          "root"_a, "algo"_a)
      .def(
          "allreduce_into",
          // The lean path of the commonest call: the buffers are read through
          // the buffer protocol, C-contiguous (out writable), which costs a
          // fraction of a general ndarray conversion.
          [](Communicator& c, nb::handle in, nb::handle out, DType dtype, RedOp op) {
            Buffer bi(in, false, "input"), bo(out, true, "output");
            CollDesc d;
            d.coll = Coll::allreduce;
            d.elem_size = dtype_size(dtype);
            if (bi.v.itemsize != static_cast<Py_ssize_t>(d.elem_size) || bo.v.len != bi.v.len)
              throw InvalidArgument("allreduce: the input and output must hold the same number of " +
                                    std::string(dtype_name(dtype)) + " items");
            d.count = static_cast<size_t>(bi.v.len) / d.elem_size;
            const Reduction red = typed_reduction(dtype, op);
            nb::gil_scoped_release nogil;
            c.run(d, bi.v.buf, bo.v.buf, dtype, red, std::string());
          },
          "input"_a, "output"_a, "dtype"_a, "op"_a)
      .def(
          "bcast_into",
          // The lean path of a bcast of a C-contiguous buffer (as allreduce_into).
          [](Communicator& c, nb::handle buf, DType dtype, int root) {
            Buffer b(buf, true, "bcast buffer");
            CollDesc d;
            d.coll = Coll::bcast;
            d.elem_size = dtype_size(dtype);
            if (b.v.itemsize != static_cast<Py_ssize_t>(d.elem_size))
              throw InvalidArgument("bcast: the buffer's items are not " + std::string(dtype_name(dtype)));
            d.count = static_cast<size_t>(b.v.len) / d.elem_size;
            d.root = root;
            nb::gil_scoped_release nogil;
            c.run(d, b.v.buf, b.v.buf, dtype, Reduction{}, std::string());
          },
          "buffer"_a, "dtype"_a, "root"_a)
      .def(
          "allgather_into",
          // The lean path of an allgather of C-contiguous buffers (as allreduce_into).
          [](Communicator& c, nb::handle in, nb::handle out, DType dtype) {
            Buffer bi(in, false, "input"), bo(out, true, "output");
            CollDesc d;
            d.coll = Coll::allgather;
            d.elem_size = dtype_size(dtype);
            const size_t p = static_cast<size_t>(c.size());
            if (bi.v.itemsize != static_cast<Py_ssize_t>(d.elem_size) ||
                static_cast<size_t>(bo.v.len) != p * static_cast<size_t>(bi.v.len))
              throw InvalidArgument("allgather: the output must hold size x the input's " +
                                    std::string(dtype_name(dtype)) + " items");
            d.counts.assign(p, static_cast<size_t>(bi.v.len) / d.elem_size);
            nb::gil_scoped_release nogil;
            c.run(d, bi.v.buf, bo.v.buf, dtype, Reduction{}, std::string());
          },
          "input"_a, "output"_a, "dtype"_a)
      .def(
          "start",
          [](Communicator& c, Coll coll, RoArray in, Array out, DType dtype, RedOp op, size_t count,
             const std::vector<size_t>& counts, int root, const std::string& algo) {
            Call k = make_call(coll, in, out, dtype, op, count, counts, root);
            nb::gil_scoped_release nogil;
            return c.start(k.d, k.in, k.out, k.dtype, k.red, algo);
          },
          "coll"_a, "input"_a.noconvert(), "output"_a.noconvert(), "dtype"_a, "op"_a, "count"_a, "counts"_a,
          "root"_a, "algo"_a)
      .def(
          "start_device",
          // A collective on device buffers (pointers), run by the device lanes:
          // `path` 'staged' or 'cuda-aware', `emulated` the host emulation
          // (baobab/device.hpp). Returns a Work, or None when `blocking`.
          [](Communicator& c, Coll coll, uintptr_t in, uintptr_t out, DType dtype, RedOp op, size_t count,
             const std::vector<size_t>& counts, int root, const std::string& algo, uintptr_t stream,
             const std::string& path, bool emulated, bool ipc, bool blocking) -> std::shared_ptr<Work> {
            CollDesc d;
            d.coll = coll;
            d.elem_size = dtype_size(dtype);
            d.count = count;
            d.counts = counts;
            d.root = root;
            Reduction red;
            if (d.reduces()) red = typed_reduction(dtype, op);
            DeviceCall dc;
            dc.ops = emulated ? &emulated_device_ops() : &cuda_device_ops();
            dc.path = device_path_from_name(path);
            dc.stream = reinterpret_cast<void*>(stream);
            dc.ipc = ipc;
            nb::gil_scoped_release nogil;
            if (!blocking) return c.start(d, reinterpret_cast<const void*>(in), reinterpret_cast<void*>(out), dtype,
                                          red, algo, &dc);
            c.run(d, reinterpret_cast<const void*>(in), reinterpret_cast<void*>(out), dtype, red, algo, &dc);
            return nullptr;
          },
          "coll"_a, "input"_a, "output"_a, "dtype"_a, "op"_a, "count"_a, "counts"_a, "root"_a, "algo"_a, "stream"_a,
          "path"_a, "emulated"_a, "ipc"_a, "blocking"_a)
      .def(
          "barrier",
          [](Communicator& c, const std::string& algo) {
            CollDesc d;
            d.coll = Coll::barrier;
            char dummy = 0;
            c.run(d, &dummy, &dummy, DType::byte, Reduction{}, algo);
          },
          "algo"_a = "", nb::call_guard<nb::gil_scoped_release>())
      .def(
          "ibarrier",
          [](Communicator& c, const std::string& algo) {
            CollDesc d;
            d.coll = Coll::barrier;
            static char dummy = 0;
            return c.start(d, &dummy, &dummy, DType::byte, Reduction{}, algo);
          },
          "algo"_a = "", nb::call_guard<nb::gil_scoped_release>())
      .def(
          "plan",
          [](Communicator& c, Coll coll, size_t count, size_t elem_size, int root, const std::vector<size_t>& counts,
             const std::string& algo, bool full, const std::string& device, bool ipc) {
            const CollDesc d = desc(coll, count, elem_size, root, counts, c.size());
            DeviceCall dc;
            if (!device.empty()) {
              dc.path = device_path_from_name(device);
              dc.ipc = ipc;
            }
            const DeviceCall* dp = device.empty() ? nullptr : &dc;
            return plan_dict(full ? c.costs(d, dp) : c.plan(d, algo, dp));
          },
          "coll"_a, "count"_a, "elem_size"_a, "root"_a, "counts"_a, "algo"_a = "", "full"_a = false,
          "device"_a = "", "ipc"_a = false)
      .def(
          "explain",
          [](Communicator& c, Coll coll, size_t count, size_t elem_size, int root, const std::vector<size_t>& counts,
             const std::string& algo, const std::string& device, bool ipc) {
            DeviceCall dc;
            if (!device.empty()) {
              dc.path = device_path_from_name(device);
              dc.ipc = ipc;
            }
            return c.explain(desc(coll, count, elem_size, root, counts, c.size()), algo,
                             device.empty() ? nullptr : &dc);
          },
          "coll"_a, "count"_a, "elem_size"_a, "root"_a, "counts"_a, "algo"_a = "", "device"_a = "", "ipc"_a = false)
      .def("bind_thread", &Communicator::bind_thread)
      .def("abort", &Communicator::abort, "reason"_a, nb::call_guard<nb::gil_scoped_release>())
      .def("free", &Communicator::free, nb::call_guard<nb::gil_scoped_release>());

  m.def("parse_timeout", [](const std::string& name, const std::string& text) { return parse_timeout(name, text); });
  m.def("check_timeout", &check_timeout, "name"_a, "seconds"_a, "zero_ok"_a = false,
        "Seconds of a timeout, checked by the core's one rule; InvalidArgument naming `name` otherwise.");
  m.def("check_environment", &check_environment);
}
