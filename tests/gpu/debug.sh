#!/usr/bin/env bash
# Debugging aid for a lent GPU machine: builds baobab with debug info (same venv
# set-up as run.sh), records the machine's environment, and runs an MPI script
# under cuda-gdb (it debugs host code too) on every rank, printing a backtrace
# where a rank stops on a signal. Usage: bash tests/gpu/debug.sh [SCRIPT] [NP]
set -uo pipefail
OUT=${OUT:-/tmp/baobab-gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/debug.log") 2>&1
cd "$(dirname "$0")/../.."
SCRIPT=${1:-tests/mpi/p2p_halo.py}
NP=${2:-2}
export PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=16
source tests/gpu/venv.sh  # /tmp/bvenv: carried MPICH + mpi4py over the image's packages
{ env | sort; ulimit -a; g++ --version | head -1; python --version; grep -m1 "model name" /proc/cpuinfo;
  grep -m1 flags /proc/cpuinfo; nproc; python -c "import nanobind, numpy; print(nanobind.__version__, numpy.__version__)"; } \
  > "$OUT/machine.txt" 2>&1
timeout 300 python -m pip install -q --no-build-isolation --no-deps -C cmake.build-type=RelWithDebInfo . || exit 1
ldd "$venv_site/baobab/"_core*.so >> "$OUT/machine.txt"
# MPI calls the communicator makes, one by one through mpi4py
timeout 60 mpiexec -n "$NP" python -X faulthandler - <<'PY' 2>&1 | tail -20
from mpi4py import MPI
c = MPI.COMM_WORLD
d = c.Dup(); print(c.rank, "dup ok", flush=True)
s = d.Split_type(MPI.COMM_TYPE_SHARED); print(c.rank, "split_type ok", s.size, flush=True)
print(c.rank, "tag_ub", d.Get_attr(MPI.TAG_UB), MPI.Get_processor_name(), flush=True)
print(c.rank, d.allgather(MPI.Get_processor_name()), flush=True)
import baobab; print(c.rank, "import ok", flush=True)
from baobab import _core; print(c.rank, "config", _core.default_tuning_path(), flush=True)
b = baobab.init(); print(c.rank, "init ok", flush=True)
PY
cat > /tmp/gdbcmds <<'G'
set pagination off
set confirm off
handle SIGUSR1 SIGUSR2 SIGPIPE nostop noprint
run
bt 30
info registers rip
x/6i $pc
quit
G
timeout 240 mpiexec -n "$NP" cuda-gdb -q -batch -x /tmp/gdbcmds --args python "$SCRIPT" > "$OUT/gdb.txt" 2>&1
echo "cuda-gdb rc=$?"
grep -n -A40 "received signal" "$OUT/gdb.txt" | head -120
