"""Step-by-step probe of MPI and device messages on a GPU machine: prints each
step before it runs, so a crash names the step (run with -X faulthandler)."""
import sys


def say(*a):
    print(f"[{rank}]", *a, flush=True)


rank = "?"
steps = sys.argv[1].split(",") if len(sys.argv) > 1 else ["all"]
import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

rank = MPI.COMM_WORLD.rank
say("mpi", MPI.Get_library_version().splitlines()[0], "size", MPI.COMM_WORLD.size)
say("host allreduce", MPI.COMM_WORLD.allreduce(rank))
import cupy  # noqa: E402

say("cupy", cupy.__version__, cupy.cuda.runtime.getDeviceCount())
a = cupy.arange(10, dtype=cupy.float64)
say("device array ok", float(a.sum()))
say("host allreduce after cupy", MPI.COMM_WORLD.allreduce(rank))
import cupyx  # noqa: E402

pinned = cupyx.empty_pinned(80, dtype="uint8")
pinned[:] = rank
say("pinned ok")
peer = (rank + 1) % MPI.COMM_WORLD.size
recvbuf = cupyx.empty_pinned(80, dtype="uint8")
MPI.COMM_WORLD.Sendrecv(pinned, peer, 1, recvbuf, (rank - 1) % MPI.COMM_WORLD.size, 1)
say("mpi4py sendrecv of pinned memory ok", int(recvbuf[0]))
import baobab  # noqa: E402

say("baobab", baobab.cuda_status(), baobab._core.mpi_cuda_aware())
c = baobab.init(timeout=30)
say("baobab.init ok", c.rank, c.size)
x = np.arange(4.0) + rank
say("host baobab allreduce", c.allreduce(x).tolist())
v = cupy.arange(100, dtype=cupy.float64).reshape(10, 10) + rank
p = baobab.pack(v[:, ::2])
cupy.cuda.Device().synchronize()
say("device pack ok", float(p.sum()))
hv = np.arange(100.0).reshape(10, 10) + rank
out = np.zeros((10, 5))
r = c.irecv(out, (rank - 1) % c.size, tag=5)
c.send(hv[:, ::2], peer, tag=5)
r.wait()
say("host strided send/recv ok", float(out.sum()))
dout = cupy.zeros((10, 5))
r = c.irecv(dout, (rank - 1) % c.size, tag=6)
say("device irecv posted")
c.send(v[:, ::2], peer, tag=6)
say("device send done")
r.wait()
say("device strided send/recv ok", float(dout.sum()))
say("ALL OK")
