"""Predicting collectives on clusters that do not fit here: every algorithm's
schedule, the one the executor would run, replayed on a modelled cluster of
`ranks` ranks, `ppn` per node, with the selector's choice marked.

    import baobab
    rows = baobab.simulate("allreduce", ranks=1024, ppn=8, sizes=[1 << 20, 64 << 20], topology="fat-tree")

Topologies (levels above the node; `group` nodes per leaf switch, `pods`
leaves per pod; `taper` > 1 oversubscribes every uplink by that factor):

    flat       one switch joins every node
    two-tier   leaf switches of `group` nodes under a spine
    fat-tree   leaves of `group` nodes, pods of `pods` leaves, a spine above
    rail       rail-optimised: each GPU's NIC on its own rail switch, so a
               node's link carries ppn NICs and nodes meet one hop away
    dragonfly  routers of `group` nodes in groups of `pods` routers; the
               global links between groups tapered by `taper` (default 4)
    any BAOBAB_TOPOLOGY spec ("switch=4,nodes=32") is taken as it is

Links default to published per-GPU rates of an H100/H200-class cluster
(NVLink 4: 450 GB/s per GPU and direction; one 400 Gb/s NDR InfiniBand NIC,
50 GB/s, per GPU), uplinks sized for full bisection divided by `taper`, and
device-speed reductions and copies (2 TB/s). `links={level: (GB/s, us)}`
overrides a level (0: inside a node, 1: a node's link, 2...: the uplink of
the groups one level up), `params={tuning key: value}` any other constant,
and `tuning=PATH` (or True: the default tuning file) starts from measured
parameters instead (`baobab tune`).

The replay builds every rank's schedule, so its cost grows with the rank
count times the schedule's length: a candidate whose replay would exceed
`budget` operations is listed as not simulated rather than left running.
"""
import math

from . import _core
from ._errors import InvalidArgument
from .dtypes import dtype_from_name

SHAPES = ("flat", "two-tier", "fat-tree", "rail", "dragonfly")
NVLINK_GBPS, NIC_GBPS, DEVICE_GBPS = 450.0, 50.0, 2000.0
ALPHA_US = {0: 1.0, 1: 3.0, 2: 4.0, 3: 5.0}


def _bus_factor(coll, p):
    if coll == "allreduce":
        return 2.0 * (p - 1) / p
    if coll in ("reduce_scatter", "allgather", "alltoall"):
        return (p - 1) / p
    return 1.0


def _whole(name, v, least=1):
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise InvalidArgument(f"{name} must be a whole number of at least {least}, got {v!r}")
    return v


def shape(topology, ranks, ppn, group=None, pods=None, taper=None):
    """(BAOBAB_TOPOLOGY spec, {level: (GB/s, us)} defaults, description) of a named shape."""
    ranks, ppn = _whole("ranks", ranks), _whole("ppn", ppn)
    if ranks % ppn:
        raise InvalidArgument(f"ranks ({ranks}) must be a multiple of ppn ({ppn})")
    nodes = ranks // ppn
    node_gbps = ppn * NIC_GBPS
    links = {0: (NVLINK_GBPS, ALPHA_US[0]), 1: (node_gbps, ALPHA_US[1])}
    if topology not in SHAPES:
        if not isinstance(topology, str) or "=" not in topology:
            raise InvalidArgument(f"unknown topology {topology!r}: expected one of {', '.join(SHAPES)} or a "
                                  "BAOBAB_TOPOLOGY spec such as 'switch=4,nodes=32'")
        return topology, links, f"BAOBAB_TOPOLOGY={topology}"
    taper = float(taper if taper is not None else (4.0 if topology == "dragonfly" else 1.0))
    if not (math.isfinite(taper) and taper >= 1):
        raise InvalidArgument(f"taper must be a number of at least 1, got {taper!r}")
    if topology in ("flat", "rail"):
        what = "one switch" if topology == "flat" else f"rail-optimised ({ppn} rails)"
        return f"nodes={nodes}", links, f"{nodes} nodes x {ppn}, {what}"
    group = _whole("group", group if group is not None else min(nodes, 32))
    if nodes % group:
        raise InvalidArgument(f"the {nodes} nodes do not split into groups of {group}: pick --group dividing them")
    leaves = nodes // group
    links[2] = (group * node_gbps / taper, ALPHA_US[2])
    if topology == "two-tier":
        return (f"switch={leaves},nodes={nodes}", links,
                f"{nodes} nodes x {ppn}, {leaves} leaf switches of {group} nodes, taper {taper:g}")
    pods = _whole("pods", pods if pods is not None else min(leaves, 8))
    if leaves % pods:
        raise InvalidArgument(f"the {leaves} leaf groups do not split into groups of {pods}: pick --pods dividing "
                              "them")
    top = "pod" if topology == "fat-tree" else "group"
    links[3] = (pods * group * node_gbps / taper, ALPHA_US[3])
    if topology == "dragonfly":
        links[2] = (group * node_gbps, ALPHA_US[2])  # local links inside a dragonfly group: not tapered
    return (f"{top}={leaves // pods},switch={leaves},nodes={nodes}", links,
            f"{nodes} nodes x {ppn}, {leaves} switches of {group} nodes, {leaves // pods} {top}s of {pods}, "
            f"taper {taper:g}")


def make_topology(spec, ranks, ppn):
    """The core's Topology of a synthetic job: node n holds ranks n*ppn .. n*ppn+ppn-1 on its own host."""
    keys = [r // ppn for r in range(ranks)]
    return _core.make_topology(ranks, keys, [f"node{k}" for k in keys], [""] * ranks, spec)


def simulate(collective, *, ranks, ppn=8, sizes=(1 << 20,), topology="two-tier", group=None, pods=None,
             taper=None, links=None, params=None, algo=None, dtype="float32", root=0, tuning=None,
             budget=2e7, segment=None, window=None):
    """Every algorithm's predicted time for each size (bytes, nccl-tests'
    convention) on the modelled job: a list of dicts (size, algo, time_s,
    algbw, busbw in GB/s, segments, rounds, messages, bytes_sent, chosen,
    note); `algo` limits the list to one algorithm (a family: its variants)."""
    from .comm import coll_code
    coll = coll_code(collective)
    name = coll.name
    if name == "barrier":
        raise InvalidArgument("simulate: barrier moves no data; pick a collective with a size")
    es = dtype_from_name(dtype).itemsize
    spec, base, _ = shape(topology, ranks, ppn, group, pods, taper)
    t = make_topology(spec, ranks, ppn)
    tuned = {}
    if tuning is None or tuning is False:
        for lvl, (gbps, us) in base.items():
            tuned[f"link.{lvl}.bw_GBps"] = gbps
            tuned[f"link.{lvl}.alpha_us"] = us
        tuned["gamma_GBps"] = tuned["copy_GBps"] = DEVICE_GBPS
    for lvl, v in (links or {}).items():
        try:
            gbps, us = v
            lvl = int(lvl)
            gbps, us = float(gbps), float(us)
        except (TypeError, ValueError):
            raise InvalidArgument(f"links: level {lvl!r}: expected (GB/s, microseconds), got {v!r}") from None
        if lvl < 0 or not (gbps > 0 and math.isfinite(gbps)) or not (us >= 0 and math.isfinite(us)):
            raise InvalidArgument(f"links: level {lvl}: needs a level >= 0, GB/s > 0 and microseconds >= 0")
        tuned[f"link.{lvl}.bw_GBps"] = gbps
        tuned[f"link.{lvl}.alpha_us"] = us
    for k, v in (params or {}).items():
        try:
            tuned[str(k)] = float(v)
        except (TypeError, ValueError):
            raise InvalidArgument(f"params: {k} must be a number, got {v!r}") from None
    overrides = {"tuned": tuned, "sim_op_budget": int(budget)}
    if tuning is True:
        overrides["tuning"] = _core.default_tuning_path()
    elif tuning:
        overrides["tuning"] = str(tuning)
    else:
        overrides["tuning"] = ""
    if segment is not None:
        overrides["segment"] = segment
    if window is not None:
        overrides["window"] = window
    rows = []
    p = ranks
    for size in sizes:
        size = _whole("size", size)
        n = max(size // es, 1)
        counts, count = [], n
        if name in ("reduce_scatter", "allgather", "alltoall"):
            per = max(n // p, 1)
            counts = [per] * (p * p if name == "alltoall" else p)
            count = 0
            size = per * p * es
        else:
            size = n * es
        plan = _core.plan_for(t, coll, count, es, int(root), counts, algo or "", overrides)
        for c in plan["candidates"]:
            time_s = c["predicted"]
            ok = not c["unsupported"] and not c["error"]
            algbw = size / time_s / 1e9 if ok and time_s > 0 else None
            rows.append(dict(size=size, algo=c["name"], time_s=time_s if ok else None, algbw=algbw,
                             busbw=None if algbw is None else algbw * _bus_factor(name, p),
                             segments=c["segments"], rounds=c["rounds"], messages=c["messages"],
                             bytes_sent=c["bytes_sent"], chosen=c["name"] == plan["algorithm"] and ok,
                             replayed=c["replayed"],
                             note=c["unsupported"] or c["error"] or c["how"]))
    return rows

