#!/usr/bin/env bash
# One call on a lent GPU machine: build baobab with its CUDA sources, check
# that the module sees the device, check and time the pack kernels, run the GPU
# tests and the suite, and leave logs under $OUT.
#
# That machine has CUDA, CuPy, mpi4py, nanobind and scikit-build-core but no
# MPI library: carry the PyPI mpich wheel. Once, here, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl mpich==5.0.2
# then run `bash tests/gpu/run.sh` with carry [".whl"].
set -uo pipefail
OUT=${OUT:-/tmp/baobab-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
cd "$(dirname "$0")/../.."
nvidia-smi -L || true
python3 -m venv --system-site-packages /tmp/bvenv
/tmp/bvenv/bin/python -m pip install -q --no-index --no-deps .whl/*.whl
export PATH=/tmp/bvenv/bin:$PATH
time /tmp/bvenv/bin/python -m pip install -q --no-build-isolation --no-deps . || exit 1
python - <<'PY' | tee "$OUT/status.txt"
import baobab
print("cuda:", baobab.cuda_status())
print("mpi:", baobab.mpi_library_version().splitlines()[0])
PY
# Kernel correctness against a CPU reference, and device pack/unpack bandwidth
# against cudaMemcpy device-to-device (target: >= 70% for 2-D/3-D layouts).
nvcc -std=c++20 -O3 -arch=native -I core/include core/src/cuda/pack.cu tests/cuda/pack_check.cu \
    -o /tmp/pack_check && /tmp/pack_check | tee "$OUT/pack_check.txt"
# Device tests (cupy views: pack, unpack, send/recv between ranks), then the suite.
python -m pytest -q -rs tests/test_gpu.py tests/test_datatype.py tests/test_p2p_mpi.py --timeout=600 2>&1 \
    | tail -30 | tee "$OUT/pytest_gpu.txt"
# Device attention: partial() GFLOP/s against cupy's own float32 matmul in the same run.
python - <<'PY' | tee "$OUT/attention_gpu.txt"
import time, cupy, numpy as np
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
PY
python -m pytest -q -rs tests -k "not openmpi" --timeout=600 2>&1 | tail -20 | tee "$OUT/pytest.txt"
ls "$OUT"
