"""`baobab info`: what this build and this job look like."""
import platform

import mpi4py
import numpy as np
from mpi4py import MPI

import baobab

from .. import _core


def info(comm=None, file=None):
    comm = comm or baobab.init()
    if comm.rank != 0:
        if comm.size > 1:
            comm.mpi_comm.gather((comm.gpu, comm._gpu_why), root=0)  # rank 0 lists every rank's GPU
        return 0
    out = []
    w = out.append
    lib = _core.mpi_library_version().strip().splitlines()
    w(f"baobab {baobab.__version__} (Python {platform.python_version()}, numpy {np.__version__}, "
      f"mpi4py {mpi4py.__version__})")
    w(f"MPI library : {lib[0] if lib else '?'}")
    w(f"MPI standard: {'.'.join(map(str, MPI.Get_version()))}, thread level "
      f"{ {MPI.THREAD_SINGLE: 'single', MPI.THREAD_FUNNELED: 'funneled', MPI.THREAD_SERIALIZED: 'serialized', MPI.THREAD_MULTIPLE: 'multiple'}.get(MPI.Query_thread(), '?') }")
    w(f"CUDA        : {_core.cuda_status()}")
    gpus = comm.mpi_comm.gather((comm.gpu, comm._gpu_why), root=0) if comm.size > 1 else [(comm.gpu, comm._gpu_why)]
    w(f"GPUs        : {_core.cuda_device_count()} on rank 0's node; " + (
        "; ".join(f"rank {r} -> {'none' if g is None else f'GPU {g}'} ({why})" for r, (g, why) in
                  enumerate(gpus[:8])) + (f"; ... ({len(gpus)} ranks)" if len(gpus) > 8 else "")))
    w("device bufs : " + comm._device_text().removeprefix("device buffers: ").rstrip())
    cfg = comm.config()
    algo = ",".join(f"{k}={v}" for k, v in cfg["algo"].items()) or "auto"
    w(f"config      : timeout={cfg['timeout']:g}s check={'on' if cfg['check'] else 'off'} "
      f"segment={cfg['segment']} window={cfg['window']} algo={algo}")
    tun = cfg["tuning_file"] or "none (model defaults)"
    if cfg["tuning_error"]:
        tun += f" [ignored: {cfg['tuning_error']}]"
    w(f"tuning file : {tun}")
    w("")
    w(comm.topology.describe().rstrip())
    w("")
    w("algorithms (* = hierarchical, | = pipelined in segments):")
    width = max(20, *(len(a["name"]) + 1 for a in baobab.algorithms()))  # split_rail(recursive_doubling)
    for a in baobab.algorithms():
        flags = ("*" if a["hierarchical"] else " ") + ("|" if a["segmentable"] else " ")
        w(f"  {a['collective']:<15} {a['name']:<{width}}{flags} {a['summary']}")
    w("")
    w("choice for a few sizes (float32):")
    sizes = [8, 64 << 10, 1 << 20, 16 << 20]
    colls = [c.name for c in _core.Coll if c is not _core.Coll.barrier]
    chosen = {c: [comm.plan(c, max(s, 4 * comm.size))["algorithm"] for s in sizes] for c in colls}
    col = max(20, *(len(n) + 2 for names in chosen.values() for n in names))
    w(f"  {'collective':<15}" + "".join(f"{_fmt(s):>{col}}" for s in sizes))
    for coll in colls:
        w(f"  {coll:<15}" + "".join(f"{n:>{col}}" for n in chosen[coll]))
    print("\n".join(out), file=file, flush=True)
    return 0


def _fmt(n):
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f:
            return f"{n / f:g} {unit}"
    return f"{n} B"
