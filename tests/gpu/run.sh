#!/usr/bin/env bash
# One call on a lent GPU machine: build baobab with its CUDA sources, check
# that the module sees the device, check and time the pack kernels, run the GPU
# tests (both message paths: as detected, and staged through pinned memory),
# time device attention, and leave logs under $OUT.
#
# That machine has CUDA, CuPy, nanobind and scikit-build-core but no MPI
# library: carry the PyPI mpich wheel and an mpi4py wheel that loads it. Once,
# here, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   for w in mpich==5.0.2 mpi4py==4.1.2; do python3 -m pip download --no-deps --only-binary=:all: \
#       --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $w; done
# then run `bash tests/gpu/run.sh` with carry [".whl"]. Each step has its own
# time limit so that one hang cannot eat the whole call.
set -uo pipefail
OUT=${OUT:-/tmp/baobab-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=16
nvidia-smi -L || true
nvcc --version | tail -2

source tests/gpu/venv.sh  # /tmp/bvenv: carried MPICH + mpi4py over the image's packages
# BAOBAB_GPU_STEPS=pack,nbody,probe,tests,coll,attention,packpy,host,nbodyapp (default all) picks steps.
STEPS=${BAOBAB_GPU_STEPS:-all}
want() { [ "$STEPS" = all ] || [[ ",$STEPS," == *",$1,"* ]]; }
step() { local limit=$1; shift; echo "=== $* (limit ${limit}s)"; timeout -k 5 "$limit" "$@"; echo "=== rc=$?"; }

SECONDS=0
step 300 python -m pip install -q --no-build-isolation --no-deps . || exit 1
echo "build took ${SECONDS}s"
python - <<'PY' | tee "$OUT/status.txt"
import baobab
from baobab_apps import _nbody  # the N-body app's kernels, built by the same install
print("cuda:", baobab.cuda_status())
print("mpi:", baobab.mpi_library_version().splitlines()[0])
print("cuda-aware:", baobab._core.mpi_cuda_aware())
PY

# Kernel correctness against a CPU reference, and device pack/unpack bandwidth
# against cudaMemcpy device-to-device (target: >= 70% for 2-D/3-D layouts).
if want pack; then
step 120 nvcc -std=c++20 -O3 -arch=native -I core/include core/src/cuda/pack.cu tests/cuda/pack_check.cu \
    -o /tmp/pack_check
step 120 /tmp/pack_check | tee "$OUT/pack_check.txt"
fi
# N-body kernels (one thread per target, j-split): device against the host kernel, batch
# independence, run-to-run identity, rate, and both kernels timed over the number of targets (appended).
if want nbody; then
step 120 nvcc -std=c++20 -O3 -arch=native -I core/include -I apps/nbody/src apps/nbody/src/forces.cu \
    apps/nbody/src/forces.cpp core/src/simd/tiers.cpp apps/nbody/tests/nbody_check.cu -o /tmp/nbody_check
step 60 /tmp/nbody_check | tee -a "$OUT/pack_check.txt"
fi

# MPI with device memory in the process, step by step (a crash names its step);
# MPICH settings are tried in turn and the first that works is kept.
if want probe; then
use_env=""
for e in "" "MPIR_CVAR_ENABLE_GPU=0" "FI_PROVIDER=tcp" "MPIR_CVAR_ENABLE_GPU=0 FI_PROVIDER=tcp"; do
  echo "=== probe with [$e]" | tee -a "$OUT/probe.txt"
  env $e timeout -k 5 40 mpiexec -n 2 python -X faulthandler tests/gpu/probe.py > /tmp/probe_one.txt 2>&1
  echo "=== rc=$?" >> /tmp/probe_one.txt
  cat /tmp/probe_one.txt >> "$OUT/probe.txt"; tail -4 /tmp/probe_one.txt
  if [ "$(grep -c 'ALL OK' /tmp/probe_one.txt)" -ge 2 ]; then use_env=$e; break; fi
done
echo "probe: kept [$use_env]"
[ -n "$use_env" ] && export $use_env
fi

# Device tests: cupy pack/unpack, send/recv and halo exchange between ranks
# (as detected and staged), device attention against the host kernels, device N-body forces,
# the N-body app with --device against host runs (1 and 2 ranks), the j-split kernel on and off.
export PYTHONFAULTHANDLER=1
if want tests; then
step 420 python -m pytest -q -rs tests/test_gpu.py tests/test_gpu_coll.py tests/test_nbody_kernel.py --timeout=150 > "$OUT/pytest_gpu.txt" 2>&1
tail -5 "$OUT/pytest_gpu.txt"
fi

# Collectives on device buffers: the reduction kernel against cupy's x += y, the pinned
# copy rates (the staged path's bound), and baobab bench --device against the mpi4py
# baseline (copy to host, MPI_Allreduce, copy back), 2 ranks on the one GPU: by IPC, staged (IPC off), and as
# two virtual nodes; the 8-byte latency of the host path for comparison.
if want coll; then
step 120 python - <<'PY' | tee "$OUT/coll_gpu.txt"
import time, cupy
from baobab import _core
from baobab.dtypes import code_of
n = 64 << 20  # 256 MiB of float32 each
x, y = cupy.ones(n, cupy.float32), cupy.ones(n, cupy.float32)
def rate(fn, reps=20):
    fn(); cupy.cuda.Device().synchronize(); t0 = time.perf_counter()
    for _ in range(reps): fn()
    cupy.cuda.Device().synchronize(); return 3 * 4 * n * reps / (time.perf_counter() - t0) / 1e12
def ours(): _core.device_reduce(code_of(x.dtype), _core.RedOp.sum, x.data.ptr, x.data.ptr, y.data.ptr, n, 0, False)
def theirs(): x.__iadd__(y)
for _ in range(2):
    a, b = rate(ours), rate(theirs)
    print(f"reduce float32 sum 256 MiB: baobab {a:.2f} TB/s, cupy x += y {b:.2f} TB/s, ratio {a / b:.2f}")
h = cupy.cuda.alloc_pinned_memory(n * 4); d = cupy.empty(n, cupy.float32)
for name, fn in (("H2D", lambda: cupy.cuda.runtime.memcpy(d.data.ptr, h.ptr, 4 * n, 1)),
                 ("D2H", lambda: cupy.cuda.runtime.memcpy(h.ptr, d.data.ptr, 4 * n, 2)),
                 ("D2D", lambda: cupy.cuda.runtime.memcpy(d.data.ptr, y.data.ptr, 4 * n, 3))):
    fn(); t0 = time.perf_counter(); [fn() for _ in range(10)]; cupy.cuda.Device().synchronize()
    print(f"copy {name} 256 MiB: {4 * n * 10 / (time.perf_counter() - t0) / 1e9:.1f} GB/s")
PY
step 200 mpiexec -n 2 baobab bench allreduce --device -b 8 -e 64M -f 8 | tee -a "$OUT/coll_gpu.txt"
step 120 env BAOBAB_DEVICE_IPC=0 mpiexec -n 2 baobab bench allreduce --device -b 4M -e 64M -f 4 | tee -a "$OUT/coll_gpu.txt"
step 120 env BAOBAB_TOPOLOGY=nodes=2 mpiexec -n 2 baobab bench allreduce --device -b 4M -e 64M -f 4 | tee -a "$OUT/coll_gpu.txt"
step 120 mpiexec -n 4 baobab bench allreduce --device -b 8 -e 64M -f 64 | tee -a "$OUT/coll_gpu.txt"
step 60 mpiexec -n 2 baobab bench allreduce -b 8 -e 8 -n 20000 | tee -a "$OUT/coll_gpu.txt"
# The device cost model measured (tune --device: pinned copies, device copies, the kernel, latency),
# then every allreduce algorithm through IPC and staged between two virtual nodes, predicted
# with it against measured: the bench table ends with the model's median and worst error.
step 120 env BAOBAB_TOPOLOGY=nodes=2 mpiexec -n 2 baobab tune --device --pack-bytes 0 --bytes 16M \
    -o "$OUT/tuning_device.conf" | tee -a "$OUT/coll_gpu.txt"
step 150 env BAOBAB_TUNING="$OUT/tuning_device.conf" BAOBAB_TOPOLOGY=nodes=2 mpiexec -n 2 baobab bench allreduce \
    --device -b 1M -e 64M -f 8 --algo all | tee -a "$OUT/coll_gpu.txt"
step 150 env BAOBAB_TUNING="$OUT/tuning_device.conf" mpiexec -n 2 baobab bench allreduce \
    --device -b 1M -e 64M -f 8 --algo all | tee -a "$OUT/coll_gpu.txt"
fi

# Device attention: partial() GFLOP/s against cupy's own float32 matmul in the same run.
if want attention; then
step 120 python - <<'PY' | tee "$OUT/attention_gpu.txt"
import time, cupy
from baobab import attention
a = cupy.random.standard_normal((8192, 8192), dtype=cupy.float32); a @ a; cupy.cuda.Device().synchronize()
t0 = time.perf_counter(); [a @ a for _ in range(5)]; cupy.cuda.Device().synchronize()
mm = 2 * 8192**3 * 5 / (time.perf_counter() - t0) / 1e9
for kv in (4096, 16384):
    q, k, v = (cupy.random.standard_normal((1, 8, kv, 64), dtype=cupy.float32) for _ in range(3))
    attention.partial(q, k, v); cupy.cuda.Device().synchronize()
    t0 = time.perf_counter(); [attention.partial(q, k, v) for _ in range(3)]; cupy.cuda.Device().synchronize()
    gf = 4 * 8 * kv * kv * 64 * 3 / (time.perf_counter() - t0) / 1e9
    print(f"partial kv={kv}: {gf:.0f} GFLOP/s; cupy matmul {mm:.0f} GFLOP/s; {100 * gf / mm:.0f} %")
for kv in (65536, 1 << 20):  # decode: one query token against a long shard
    q = cupy.random.standard_normal((1, 8, 1, 64), dtype=cupy.float32)
    k, v = (cupy.random.standard_normal((1, 8, kv, 64), dtype=cupy.float32) for _ in range(2))
    attention.partial(q, k, v); cupy.cuda.Device().synchronize()
    t0 = time.perf_counter(); [attention.partial(q, k, v) for _ in range(5)]; cupy.cuda.Device().synchronize()
    dt = (time.perf_counter() - t0) / 5
    print(f"decode kv={kv}: {dt * 1e3:.3f} ms, {2 * k.nbytes / dt / 1e9:.0f} GB/s of K+V")
PY
fi

# Python-level device pack of halo faces against cupy's own strided copy.
if want packpy; then
step 120 python - <<'PY' | tee "$OUT/pack_python.txt"
import time, cupy, baobab
f = cupy.random.standard_normal((512, 512, 512))  # 1 GiB float64
for name, idx in [("x-face (8 B blocks)", (slice(None), slice(None), slice(1, 3))),
                  ("y-face (4 KiB blocks)", (slice(None), slice(1, 3), slice(None))),
                  ("sub-cube 256^3", (slice(128, 384), slice(128, 384), slice(128, 384)))]:
    v = f[idx]
    for fn, label in ((baobab.pack, "baobab.pack"), (cupy.ascontiguousarray, "cupy copy")):
        fn(v); cupy.cuda.Device().synchronize()
        t0 = time.perf_counter(); [fn(v) for _ in range(20)]; cupy.cuda.Device().synchronize()
        dt = (time.perf_counter() - t0) / 20
        print(f"{name:24s} {label:12s} {v.nbytes / 2**20:8.1f} MiB {v.nbytes / dt / 1e9:8.1f} GB/s")
    # the kernel call alone (layout and output made once): what the Python layer adds
    from baobab import _core
    from baobab._buffers import interface
    ptr, shape, strides, isz, _ = interface(v)
    lay = _core.layout_from_strides(isz, list(shape), list(strides))
    out = cupy.empty(v.shape, v.dtype)
    for reps in (1, 200):
        cupy.cuda.Device().synchronize(); t0 = time.perf_counter()
        for _ in range(reps):
            _core.cuda_pack_ptr(lay, ptr, out.data.ptr, 1, 0)
        cupy.cuda.Device().synchronize(); dt = (time.perf_counter() - t0) / reps
        print(f"{name:24s} core call x{reps:<4d} {dt * 1e6:8.1f} us {v.nbytes / dt / 1e9:8.1f} GB/s")
PY
fi
# Host multi-rank tests on this machine's MPI (does the stack itself work here?)
if want host; then
step 100 python -m pytest -q -x tests/test_p2p_mpi.py tests/test_attention_mpi.py --timeout=60 > "$OUT/pytest_host.txt" 2>&1
tail -3 "$OUT/pytest_host.txt"
fi
# N-body forces: the CUDA kernel's interactions/s and fraction of the FP64 peak
# (and the host kernel against numpy), appended to attention_gpu.txt.
if want nbody; then
step 90 python apps/nbody/bench.py --n 16384 --numpy-ni 64 --device --device-n 131072 --device-k 1,8,64,512,4096 \
    2>&1 | tee -a "$OUT/attention_gpu.txt"
fi
# The N-body app, forces on the host and on the device (--device), 1 rank, N = 16384 from one
# initial-conditions file, to t = 1/8: wall time, interactions/s of the integration, device/host.
if want nbodyapp; then
nb=/tmp/baobab-nbodyapp; rm -rf $nb; mkdir -p $nb
step 120 python apps/nbody/ics.py plummer --n 16384 --seed 7 -o $nb/ic.h5
for mode in host device; do
  t0=$(date +%s.%N)
  step 180 python apps/nbody/nbody.py --ic $nb/ic.h5 --t-end 0.125 --dt-out 0.125 --no-core --restart no \
      --out $nb/$mode $([ $mode = device ] && echo --device) 2>&1 | tee -a "$OUT/nbody_app.txt"
  echo "$mode $(date +%s.%N) $t0" >> $nb/walls.txt
done
python - "$nb" <<'PY' 2>&1 | tee -a "$OUT/nbody_app.txt"
import sys, h5py
nb = sys.argv[1]
walls = {m: float(b) - float(a) for m, b, a in (l.split() for l in open(f"{nb}/walls.txt"))}
rate, run = {}, {}
for m in ("host", "device"):
    try:
        with h5py.File(f"{nb}/{m}/diagnostics.h5", "r") as f:
            rate[m], run[m], steps = float(f["interactions_per_s"][-1]), float(f["wall"][-1]), int(f["body_steps"][-1])
        print(f"nbodyapp {m:6s}: process wall {walls[m]:7.2f} s, integration+outputs {run[m]:7.2f} s, "
              f"{steps} body steps, {rate[m]:.3e} interactions/s")
    except (OSError, KeyError) as e:
        print(f"nbodyapp {m}: no diagnostics ({e})")
if len(rate) == 2:
    print(f"nbodyapp device/host: {rate['device'] / rate['host']:.1f}x interactions/s, "
          f"{walls['host'] / walls['device']:.1f}x process wall")
PY
fi
ls -la "$OUT"
echo "total ${SECONDS}s"
