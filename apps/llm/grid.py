"""The process grid: data x sequence x tensor parallel ranks, and one baobab
Communicator per group, created once.

World rank = (dp_rank * sp + sp_rank) * tp + tp_rank: tensor parallelism is
innermost (its all-reduces, four per layer on the critical path, go between
neighbouring ranks, on one node when a node holds tp ranks or more), sequence
parallelism next (the ring passes K/V blocks, overlapped with computation),
data parallelism outermost (one gradient reduction per step, overlappable).

Groups (None where the group is one rank, so a size-1 dimension never
communicates):
  tp    the ranks with the same (dp, sp) coordinates
  sp    the same (dp, tp)
  dp    the same (sp, tp)
  data  the same tp coordinate: dp x sp ranks. The replicated-over-data
        gradients (every parameter, each rank holding its tokens' part) are
        summed over this group; its rank order is dp-major.
"""
from baobab import Communicator, InvalidArgument


class Grid:
    """Coordinates of this rank in a dp x sp x tp grid over `world` (a baobab
    Communicator), and its group communicators."""

    def __init__(self, world, dp=1, tp=1, sp=1):
        for name, v in (("dp", dp), ("tp", tp), ("sp", sp)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise InvalidArgument(f"the {name} degree must be a positive integer, got {v!r}")
        dp, tp, sp = int(dp), int(tp), int(sp)
        if dp * tp * sp != world.size:
            raise InvalidArgument(f"--dp {dp} x --tp {tp} x --sp {sp} = {dp * tp * sp} ranks, but the job has "
                                  f"{world.size}")
        self.world = world
        self.dp_size, self.tp_size, self.sp_size = dp, tp, sp
        r = world.rank
        self.tp_rank = r % tp
        self.sp_rank = (r // tp) % sp
        self.dp_rank = r // (tp * sp)
        self.data_rank = self.dp_rank * sp + self.sp_rank
        self.data_size = dp * sp
        mpi = world.mpi_comm
        opts = dict(getattr(world, "_overrides", {}))
        # Every rank takes part in every split, in this order.
        self.tp = self._group(mpi, self.dp_rank * sp + self.sp_rank, self.tp_rank, tp, opts)
        self.sp = self._group(mpi, self.dp_rank * tp + self.tp_rank, self.sp_rank, sp, opts)
        self.dp = self._group(mpi, self.sp_rank * tp + self.tp_rank, self.dp_rank, dp, opts)
        self.data = self._group(mpi, self.tp_rank, self.data_rank, dp * sp, opts)

    @staticmethod
    def _group(mpi, color, key, size, opts):
        sub = mpi.Split(color, key)
        if size == 1:
            sub.Free()
            return None
        return Communicator(sub, **opts)

    def coords(self):
        return dict(dp=self.dp_rank, sp=self.sp_rank, tp=self.tp_rank)

    def describe(self):
        return f"dp {self.dp_size} x sp {self.sp_size} x tp {self.tp_size} (tp innermost)"
