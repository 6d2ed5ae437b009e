"""Checkpoints in a layout-independent form, loadable into any other layout.

Every parameter, and each of its optimizer moments, is stored whole, in its
global shape (model.param_specs: the token embedding without its padding
rows), as one dataset of a baobab.checkpoint file (HDF5, SHA-256 over every
payload, written atomically; asynchronously when the Checkpointer is, each
rank writing its own rows from a background thread): the
parameter `name` as /distributed/p.<name>, its AdamW moments as m.<name> and
v.<name>. Nothing in the file depends on the grid that wrote it.

Saving (collective over the whole job): each tensor is made whole inside its
tensor-parallel group (an all-gather of the blocks, one tensor at a time), and
then every rank of the job contributes an even share of its rows along axis
0, so every rank writes part of every tensor. Replicated state (the step, the
optimizer's step count, the data sampler's position, the model config, the
grid that wrote it, the user's extras) goes under /state.

Loading: each rank reads only the hyperslab of each dataset that its block in
the NEW layout covers (tensor-parallel rank and degree), pads the vocabulary
rows its degree needs, and hands back arrays shaped as model.local_shape. A
checkpoint written at --dp 2 --tp 2 thus loads at --dp 4, at --tp 1 --sp 2
and on one rank. The model config must be the same (a different one is
refused, naming the fields); the layout may change freely.
"""
import os
from collections import namedtuple

import numpy as np

from baobab import InvalidArgument
from baobab.checkpoint import Checkpointer

import model as M

PREFIXES = ("p", "m", "v")

Loaded = namedtuple("Loaded", "params moments extra step config")
Loaded.__doc__ = """What load() returns: this rank's parameter blocks, the AdamW moments shaped
alike (None if the checkpoint has none), the replicated extras, the step, the model config."""


def _rows(n, rank, size):
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def whole(spec, local, tp):
    """The global tensor from this TP group's blocks (tp: baobab Communicator or None)."""
    if spec.axis is None or tp is None or tp.size == 1:
        return M.gather_param(spec, [local]) if spec.axis is not None else local
    parts = tp.allgather(np.ascontiguousarray(local))
    return M.gather_param(spec, list(parts))


MODES = ("async", "async-rank0", "collective")


def open_checkpointer(directory, world, *, keep=2, mode="async"):
    """mode: "async" (every rank writes its rows in the background), "async-rank0"
    (gathered to rank 0, written by its background thread) or "collective"
    (every rank writes its rows before save returns)."""
    if mode not in MODES:
        raise InvalidArgument(f"checkpoint mode must be one of {MODES}, got {mode!r}")
    return Checkpointer(directory, world, keep=keep, prefix="llm", asynchronous=mode != "collective",
                        writers="rank0" if mode == "async-rank0" else "all")


def save(ck, step, cfg, grid, params, moments, state):
    """Writes checkpoint `step` (collective over the job).

    params: name -> this rank's block; moments: {"m": {...}, "v": {...}} shaped
    as params (ZeRO callers gather their shards first), or None; state: the
    replicated extras (a dict of what baobab.checkpoint can store)."""
    specs = M.param_specs(cfg)
    world = grid.world
    dist = {}
    for prefix, tensors in [("p", params)] + ([("m", moments["m"]), ("v", moments["v"])] if moments else []):
        for name, spec in specs.items():
            g = whole(spec, tensors[name], grid.tp)
            lo, hi = _rows(g.shape[0], world.rank, world.size)
            dist[f"{prefix}.{name}"] = g[lo:hi]  # a view: baobab.checkpoint copies what it writes later
    meta = {"config": {f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
            "written_by": {"dp": grid.dp_size, "tp": grid.tp_size, "sp": grid.sp_size},
            "has_moments": bool(moments), "extra": state}
    return ck.save(step, {"llm": meta}, distributed=dist)


def _check_config(stored, cfg):
    diff = [f"{k}: checkpoint {stored[k]!r}, run {getattr(cfg, k)!r}" for k in stored
            if k != "dtype" and getattr(cfg, k) != stored[k]]
    if diff:
        raise InvalidArgument("the checkpoint holds a different model (" + "; ".join(diff) + ")")


def load(ck, cfg, grid, path=None):
    """Loaded(params, moments, extra, step, config) of the newest valid checkpoint
    (or `path`) for THIS rank's blocks in this run's grid; collective. cfg None:
    the model the checkpoint holds."""
    import h5py
    state = ck.load(path, distributed=False)  # the tensors: each rank reads its own blocks below
    if path is None:
        path = ck.path_of(ck.loaded_step)
    meta = state["llm"]
    if cfg is None:
        cfg = M.Config(**meta["config"])
    _check_config(meta["config"], cfg)
    specs = M.param_specs(cfg)
    dtype = cfg.np_dtype
    out = {p: {} for p in PREFIXES}
    err = None
    try:
        with h5py.File(os.fspath(path), "r") as h5:
            for prefix in PREFIXES if meta["has_moments"] else ("p",):
                for name, spec in specs.items():
                    dset = h5[f"/distributed/{prefix}.{name}"]
                    if tuple(dset.shape) != spec.shape:
                        raise InvalidArgument(f"{prefix}.{name} has shape {dset.shape}, the model {spec.shape}")
                    out[prefix][name] = _read_block(dset, spec, grid.tp_rank, grid.tp_size, dtype)
    except Exception as e:  # noqa: BLE001 -- agreed below, so every rank raises
        err = f"{type(e).__name__}: {e}"
    failed = grid.world.allgather(np.array([err is not None], np.int8)).ravel()
    if failed.any():  # every rank raises; a failed rank says why
        ranks = ", ".join(str(r) for r in np.flatnonzero(failed))
        raise InvalidArgument(f"cannot load {path}: " + (err or f"rank(s) {ranks} could not read it"))
    moments = {"m": out["m"], "v": out["v"]} if meta["has_moments"] else None
    return Loaded(out["p"], moments, meta["extra"], ck.loaded_step, cfg)


def _read_block(dset, spec, tp_rank, tp_size, dtype):
    """This TP rank's block of a stored global tensor: only its hyperslab is read."""
    if spec.axis is None:
        return np.asarray(dset[()], dtype=dtype)
    ls = M.local_shape(spec, tp_size)
    n = ls[spec.axis]
    a, b = tp_rank * n, min((tp_rank + 1) * n, spec.shape[spec.axis])
    block = np.zeros(ls, dtype)
    if b > a:
        src = [slice(None)] * len(ls)
        src[spec.axis] = slice(a, b)
        dst = [slice(None)] * len(ls)
        dst[spec.axis] = slice(0, b - a)
        block[tuple(dst)] = dset[tuple(src)]
    return block
