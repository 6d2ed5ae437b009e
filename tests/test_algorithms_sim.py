"""Every algorithm's schedule, executed on real data by the reference executor
(the simulator with buffers) over many virtual clusters: uneven nodes, ranks of
a node not consecutive, several levels, sizes 0, 1, primes and not divisible by
the rank count, pipelined segments. Results must equal numpy exactly."""
import numpy as np
import pytest

import baobab
from baobab import _core
from baobab.comm import ALLGATHER, ALLREDUCE, ALLTOALL, BARRIER, BCAST, REDUCE, REDUCE_SCATTER, coll_code
from baobab.dtypes import OPS

F64, I32 = _core.DType.float64, _core.DType.int32

TOPOLOGIES = [
    (1, "", None), (2, "", None), (3, "", None), (4, "nodes=2", None), (5, "nodes=2", None),
    (6, "groups=3,1,2", None), (5, "groups=1,4", None), (8, "switch=2,nodes=4", None),
    (8, "rack=2,groups=2,1,3,2", None), (6, "", [0, 1, 0, 1, 0, 1]), (7, "nodes=3", None),
    (9, "groups=4,4,1", None), (6, "", [0, 0, 0, 0, 0, 0]), (4, "nodes=4", None),
]
COUNTS = [0, 1, 7, 13, 64]


def make(size, spec, keys, hosts=None):
    keys = keys if keys is not None else [0] * size
    return _core.make_topology(size, keys, hosts or ["h%d" % k for k in keys], [""] * size, spec)


def topo_id(t):
    size, spec, keys = t
    return f"{size}-{spec or ('rr' if keys and len(set(keys)) > 1 else 'flat')}"


def algos(coll):
    return [a["name"] for a in baobab.algorithms() if a["collective"] == coll]


def supported(t, coll, algo, count, counts, root=0):
    plan = _core.plan_for(t, coll_code(coll), count, 8, root, counts)
    for c in plan["candidates"]:
        if c["name"] == algo:
            return not c["unsupported"]
    raise AssertionError(algo)


def rank_data(p, count, rng, dtype=np.float64):
    return [rng.integers(-4, 5, size=count).astype(dtype) for _ in range(p)]


HIER = {(a["collective"], a["name"]) for a in baobab.algorithms() if a["hierarchical"]}


def family(name):
    """split_rail for split_rail(ring): compositions come as one variant per inner algorithm."""
    return name.split("(")[0]


def best_of(pred, fam):
    """The lowest prediction among a family's variants (pred: name -> seconds)."""
    return min(v for k, v in pred.items() if family(k) == fam)


def refused_on_one_node(t, coll, algo):
    """Hierarchical algorithms refuse a single-node topology, with a clear reason."""
    if (coll, algo) not in HIER or t.as_dict()["groups"][0] != [0] * t.size:
        return False
    with pytest.raises(baobab.InvalidArgument, match="more than one node"):
        _core.simulate(t, coll_code(coll), algo, 1, [1] * t.size if coll in ("allgather", "reduce_scatter")
                       else [1] * t.size * t.size if coll == "alltoall" else [], 0, F64, 0, [], [], {}, 1)
    return True


def sim(t, coll, algo, count, counts, root, inputs, outputs, op="sum", dtype=F64, segments=1):
    res = _core.simulate(t, coll_code(coll), algo, count, counts, root, dtype, OPS[op], inputs, outputs,
                         {}, segments)
    assert res["error"] == "", res["error"] + "\n" + res["schedule0"]
    return res


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("allreduce"))
def test_allreduce(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "allreduce", algo):
        return
    p = tp[0]
    rng = np.random.default_rng(p)
    for count in COUNTS:
        for op, reduce in (("sum", np.sum), ("max", np.max), ("prod", np.prod)):
            xs = rank_data(p, count, rng)
            outs = [np.full(count, np.nan) for _ in range(p)]
            for segments in (1, 3):
                sim(t, "allreduce", algo, count, [], 0, xs, outs, op, segments=segments)
                want = reduce(np.stack(xs), axis=0) if p else None
                for r in range(p):
                    np.testing.assert_array_equal(outs[r], want, err_msg=f"rank {r} count {count} op {op}")


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("reduce_scatter"))
def test_reduce_scatter(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "reduce_scatter", algo):
        return
    p = tp[0]
    rng = np.random.default_rng(1)
    for per in ([1] * p, [3] * p, list(rng.integers(0, 5, size=p)), [0] * p):
        per = [int(c) for c in per]
        total = sum(per)
        xs = rank_data(p, total, rng)
        outs = [np.full(c, np.nan) for c in per]
        if not supported(t, "reduce_scatter", algo, 0, per):  # documented restriction: refused clearly
            with pytest.raises(baobab.InvalidArgument, match="power-of-two"):
                sim(t, "reduce_scatter", algo, 0, per, 0, xs, outs)
            return
        sim(t, "reduce_scatter", algo, 0, per, 0, xs, outs)
        full = np.sum(np.stack(xs), axis=0)
        off = np.cumsum([0] + per)
        for r in range(p):
            np.testing.assert_array_equal(outs[r], full[off[r]:off[r + 1]])


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("allgather"))
def test_allgather(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "allgather", algo):
        return
    p = tp[0]
    rng = np.random.default_rng(2)
    for per in ([1] * p, [5] * p, [int(c) for c in rng.integers(0, 4, size=p)], [0] * p):
        xs = [rng.integers(-9, 9, size=c).astype(np.float64) for c in per]
        outs = [np.full(sum(per), np.nan) for _ in range(p)]
        if not supported(t, "allgather", algo, 0, per):  # documented restriction: refused clearly
            with pytest.raises(baobab.InvalidArgument, match="power-of-two"):
                sim(t, "allgather", algo, 0, per, 0, xs, outs)
            return
        sim(t, "allgather", algo, 0, per, 0, xs, outs)
        want = np.concatenate(xs) if p else None
        for r in range(p):
            np.testing.assert_array_equal(outs[r], want)


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("bcast"))
def test_bcast(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "bcast", algo):
        return
    p = tp[0]
    rng = np.random.default_rng(3)
    for count in COUNTS:
        for root in sorted({0, p - 1, p // 2}):
            for segments in (1, 4):
                data = rng.integers(-9, 9, size=count).astype(np.float64)
                xs = [data if r == root else np.zeros(count) for r in range(p)]
                outs = [np.full(count, np.nan) for _ in range(p)]
                sim(t, "bcast", algo, count, [], root, xs, outs, segments=segments)
                for r in range(p):
                    np.testing.assert_array_equal(outs[r], data, err_msg=f"rank {r} root {root} count {count}")


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("reduce"))
def test_reduce(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "reduce", algo):
        return
    p = tp[0]
    rng = np.random.default_rng(4)
    for count in COUNTS:
        for root in sorted({0, p - 1, p // 2}):
            for segments in (1, 3):
                xs = rank_data(p, count, rng)
                outs = [np.full(count, np.nan) for _ in range(p)]
                sim(t, "reduce", algo, count, [], root, xs, outs, segments=segments)
                np.testing.assert_array_equal(outs[root], np.sum(np.stack(xs), axis=0))


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("alltoall"))
def test_alltoall(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "alltoall", algo):
        return
    p = tp[0]
    rng = np.random.default_rng(5)
    for kind in ("equal", "random", "sparse"):
        if kind == "equal":
            m = np.full((p, p), 3)
        elif kind == "random":
            m = rng.integers(0, 5, size=(p, p))
        else:
            m = rng.integers(0, 3, size=(p, p)) * (rng.random((p, p)) < 0.3)
        xs = [rng.integers(-9, 9, size=int(m[s].sum())).astype(np.float64) for s in range(p)]
        outs = [np.full(int(m[:, d].sum()), np.nan) for d in range(p)]
        sim(t, "alltoall", algo, 0, [int(c) for c in m.reshape(-1)], 0, xs, outs)
        for d in range(p):
            parts = []
            for s in range(p):
                off = int(m[s, :d].sum())
                parts.append(xs[s][off:off + int(m[s, d])])
            np.testing.assert_array_equal(outs[d], np.concatenate(parts), err_msg=f"rank {d} ({kind})")


@pytest.mark.parametrize("tp", TOPOLOGIES, ids=topo_id)
@pytest.mark.parametrize("algo", algos("barrier"))
def test_barrier_schedules_match(tp, algo):
    t = make(*tp)
    if refused_on_one_node(t, "barrier", algo):
        return
    res = _core.simulate(t, BARRIER, algo, 0, [], 0, F64, 0, [], [], {}, 1)
    assert res["error"] == ""
    if tp[0] > 1:
        assert res["time"] > 0


def test_integer_ops_are_exact_and_wrap():
    t = make(4, "nodes=2", None)
    xs = [np.array([2**31 - 1, -5, 7, 0], np.int32) for _ in range(4)]
    outs = [np.zeros(4, np.int32) for _ in range(4)]
    _core.simulate(t, ALLREDUCE, "split_rail", 4, [], 0, I32, OPS["sum"], xs, outs, {}, 1)
    want = np.sum(np.stack(xs), axis=0, dtype=np.int32)  # wraps like numpy
    for o in outs:
        np.testing.assert_array_equal(o, want)


def test_unsupported_algorithm_is_refused():
    t = make(3, "", None)
    with pytest.raises(baobab.InvalidArgument, match="power-of-two"):
        _core.simulate(t, REDUCE_SCATTER, "halving", 0, [1, 1, 1], 0, F64, 0, [], [], {}, 1)
    with pytest.raises(baobab.InvalidArgument, match="unknown algorithm"):
        _core.simulate(t, ALLREDUCE, "nope", 3, [], 0, F64, 0, [], [], {}, 1)


def test_model_prefers_hierarchy_across_slow_links():
    """With a slow inter-node link, large allreduce picks a hierarchical algorithm;
    tiny ones a latency-optimal one. (Two real hosts: ranks on one host talk
    through memory whatever the virtual topology says.)"""
    t = make(8, "nodes=2", None, hosts=["a"] * 4 + ["b"] * 4)
    big = _core.plan_for(t, ALLREDUCE, 16 << 20, 4, 0, [])
    assert family(big["algorithm"]) in ("split_rail", "leader"), big
    small = _core.plan_for(t, ALLREDUCE, 2, 4, 0, [])
    pred = {c["name"]: c["predicted"] for c in small["candidates"] if not c["unsupported"]}
    assert pred[small["algorithm"]] == min(pred.values())
    # the simulator's inter-node contention: split-rail sends less over the node link than ring
    pred = {c["name"]: c["predicted"] for c in big["candidates"] if not c["unsupported"]}
    assert best_of(pred, "split_rail") < pred["ring"]


def test_virtual_nodes_on_one_host_are_priced_as_memory_copies():
    """BAOBAB_TOPOLOGY=nodes=2 on a single host: no NIC to share, so the model
    must not credit the hierarchy with relieving one."""
    one_host = make(8, "nodes=2", None)
    two_hosts = make(8, "nodes=2", None, hosts=["a"] * 4 + ["b"] * 4)
    for t in (one_host, two_hosts):
        assert t.as_dict()["groups"][0] == [0] * 4 + [1] * 4
    a = {c["name"]: c["predicted"] for c in _core.plan_for(one_host, ALLREDUCE, 16 << 20, 4, 0, [])["candidates"]
         if not c["unsupported"]}
    b = {c["name"]: c["predicted"] for c in _core.plan_for(two_hosts, ALLREDUCE, 16 << 20, 4, 0, [])["candidates"]
         if not c["unsupported"]}
    assert a != b
    # across real hosts, split-rail's advantage over a flat ring is larger
    assert b["ring"] / best_of(b, "split_rail") > a["ring"] / best_of(a, "split_rail")


def test_rack_uplink_is_shared_by_the_racks_nodes(tmp_path):
    """Two racks of two hosts joined by ONE slow link: every allreduce must move
    the vector across that cut once in each direction, so no candidate can be
    predicted faster than size / uplink bandwidth (the model once let each node
    use the uplink as if it were its own and predicted 0.45-0.8 of measured)."""
    conf = tmp_path / "racks.conf"
    conf.write_text("link.0.alpha_us = 19.5\nlink.0.bw_GBps = 3.24\nlink.1.alpha_us = 15.9\n"
                    "link.1.bw_GBps = 1.46\nlink.2.alpha_us = 16.2\nlink.2.bw_GBps = 0.155\n")
    hosts = [f"host{i // 2 + 1}" for i in range(8)]
    t = _core.make_topology(8, [i // 2 for i in range(8)], hosts, [""] * 8, "rack=2")
    nbytes = 16 << 20
    plan = _core.plan_for(t, ALLREDUCE, nbytes // 4, 4, 0, [], "", {"tuning": str(conf)})
    pred = {c["name"]: c["predicted"] for c in plan["candidates"] if not c["unsupported"]}
    bound = nbytes / 0.155e9
    assert min(pred.values()) >= bound, (pred, bound)
    # and the three-level algorithms, which cross the cut least, stay the choice
    assert family(plan["algorithm"]) in ("split_rail", "leader")
    assert best_of(pred, "split_rail") < pred["ring"] < pred["rabenseifner"]


def test_plan_for_checks_counts():
    t = make(4, "", None)
    with pytest.raises(baobab.InvalidArgument):
        _core.plan_for(t, coll_code("reduce_scatter"), 0, 8, 0, [])
    with pytest.raises(baobab.InvalidArgument):
        _core.plan_for(t, coll_code("alltoall"), 0, 8, 0, [1, 1])


def _uneven_links(tmp_path, rates):
    """A tuning file giving each host its own link rate (GB/s)."""
    conf = tmp_path / "uneven.conf"
    conf.write_text("link.1.alpha_us = 20\nlink.1.bw_GBps = 0.117\n" +
                    "".join(f"host.host{i + 1}.bw_GBps = {r}\n" for i, r in enumerate(rates)))
    return {"tuning": str(conf)}


def test_uneven_host_links_get_blocks_in_proportion(tmp_path):
    """Four hosts, one with a link 4x slower: a ring makes every link carry
    1.5x the vector, so the slow one paces it; the weighted algorithm gives
    that host no block to own, its link carries the vector once, and the
    prediction drops by the 1.5x that allows. With equal links it is not
    even considered (blocks would be even: the ring's traffic)."""
    t = make(4, "", [0, 1, 2, 3], hosts=["host1", "host2", "host3", "host4"])
    count = (16 << 20) // 4
    ov = _uneven_links(tmp_path, [0.117, 0.117, 0.117, 0.117 / 4])
    plan = _core.plan_for(t, ALLREDUCE, count, 4, 0, [], "", ov)
    pred = {c["name"]: c["predicted"] for c in plan["candidates"] if not c["unsupported"]}
    # with one rank per host the hierarchical algorithms reduce to the same
    # weighted blocks between hosts, and tie with it
    assert pred[plan["algorithm"]] <= pred["weighted"] * 1.0001, pred
    assert pred["ring"] / pred["weighted"] > 1.3, pred
    # no allreduce can take less than the slow link carrying the vector once
    assert pred["weighted"] >= count * 4 / (0.117e9 / 4)
    # the slow host owns no block: it reduces nothing and sends only its input
    slow_first = make(4, "", [0, 1, 2, 3], hosts=["host4", "host1", "host2", "host3"])
    res = _core.simulate(slow_first, ALLREDUCE, "weighted", count, [], 0, F64, 0, [], [], ov, 1)
    assert "reduce" not in res["schedule0"] and res["error"] == "", res["schedule0"]
    fast_first = _core.simulate(t, ALLREDUCE, "weighted", count, [], 0, F64, 0, [], [], ov, 1)
    assert "reduce" in fast_first["schedule0"]
    even = _core.plan_for(t, ALLREDUCE, count, 4, 0, [], "", _uneven_links(tmp_path, [0.117] * 4))
    cand = {c["name"]: c for c in even["candidates"]}
    assert "same rate" in cand["weighted"]["unsupported"]


@pytest.mark.parametrize("size,spec,keys", [(4, "", [0, 1, 2, 3]), (8, "nodes=4", None), (7, "groups=2,2,1,2", None),
                                            (8, "rack=2,nodes=4", None)])
def test_uneven_links_data(tmp_path, size, spec, keys):
    """Every allreduce, with blocks weighted by uneven host links (the flat
    weighted algorithm, and the hierarchical ones whose rails use it), gives
    numpy's exact sums, in place and with segments."""
    keys = keys if keys is not None else [0] * size
    t = make(size, spec, keys, hosts=None)
    nodes = t.as_dict()["groups"][0]
    hosts = [f"host{n + 1}" for n in nodes]
    t = make(size, spec, keys, hosts=hosts)
    rates = [0.117 / (1 + 3 * (n % 2)) for n in range(max(nodes) + 1)]
    ov = _uneven_links(tmp_path, rates)
    rng = np.random.default_rng(size)
    for algo in algos("allreduce"):
        if refused_on_one_node(t, "allreduce", algo):
            continue
        for count in (0, 1, 7, 13, 64, 1001):
            xs = rank_data(size, count, rng)
            for segments in (1, 3):
                outs = [np.full(count, np.nan) for _ in range(size)]
                res = _core.simulate(t, ALLREDUCE, algo, count, [], 0, F64, OPS["sum"], xs, outs, ov, segments)
                assert res["error"] == "", (algo, res["error"])
                for r in range(size):
                    np.testing.assert_array_equal(outs[r], np.sum(np.stack(xs), axis=0), err_msg=f"{algo} {count}")


# ---- compositions and their inner algorithm: one selector ---------------------------------

FAMILIES = {a["name"]: a["variants"] for a in baobab.algorithms() if a["variants"]}


def test_compositions_come_as_one_variant_per_inner_algorithm():
    """split_rail and leader embed a flat allreduce; each inner choice is an
    algorithm of its own (built, simulated, forced like any other), and the
    family's entry names its variants."""
    assert set(FAMILIES) == {"split_rail", "leader"}
    inner = ["recursive_doubling", "rabenseifner", "ring", "weighted"]
    by_name = {a["name"]: a for a in baobab.algorithms() if a["collective"] == "allreduce"}
    for fam, variants in FAMILIES.items():
        assert variants == [f"{fam}({i})" for i in inner]
        for v, i in zip(variants, inner):
            assert by_name[v]["family"] == fam and by_name[v]["inner"] == i and by_name[v]["hierarchical"]
    t = make(8, "nodes=2", None)
    plan = _core.plan_for(t, ALLREDUCE, 1 << 18, 4, 0, [])
    cands = {c["name"]: c for c in plan["candidates"]}
    assert "split_rail" not in cands and "leader" not in cands  # families are not candidates, their variants are
    for fam, variants in FAMILIES.items():
        for v in variants:
            if v.endswith("(weighted)"):  # like the flat weighted: costed only where node links differ
                assert "same rate" in cands[v]["unsupported"]
            else:
                assert not cands[v]["unsupported"] and cands[v]["predicted"] > 0 and not cands[v]["error"]


@pytest.mark.parametrize("fam", sorted(FAMILIES))
def test_forcing_a_family_takes_its_variant_the_simulator_ranks_first(fam):
    t = make(8, "switch=2,nodes=4", None)
    for nbytes in (64, 64 << 10, 4 << 20):
        plan = _core.plan_for(t, ALLREDUCE, nbytes // 4, 4, 0, [], fam)
        pred = {c["name"]: c["predicted"] for c in plan["candidates"] if not c["unsupported"]}
        mine = {k: v for k, v in pred.items() if family(k) == fam}
        assert plan["algorithm"] == min(mine, key=mine.get), (nbytes, plan["algorithm"], mine)
        assert plan["reason"].startswith(f"family {fam} forced by algo=")
    # by the environment (BAOBAB_ALGO), and a variant forced exactly
    env = _core.plan_for(t, ALLREDUCE, 1 << 20, 4, 0, [], "", {"algo": f"allreduce={fam}"})
    assert family(env["algorithm"]) == fam and "forced by BAOBAB_ALGO" in env["reason"]
    exact = _core.plan_for(t, ALLREDUCE, 1 << 20, 4, 0, [], "", {"algo": f"allreduce={fam}(ring)"})
    assert exact["algorithm"] == f"{fam}(ring)" and exact["reason"] == "forced by BAOBAB_ALGO"
    with pytest.raises(baobab.InvalidArgument, match=r"unknown allreduce algorithm 'split_rail\(bogus\)'"):
        _core.plan_for(t, ALLREDUCE, 1 << 20, 4, 0, [], "split_rail(bogus)")


def test_inner_algorithm_is_the_simulators_choice_across_a_crossover():
    """No closed-form inner choice is left: on 6 virtual nodes of 2 ranks the
    rails' best allreduce moves from recursive doubling to Rabenseifner to ring
    as the vector grows, and at every size the plan takes the variant the
    simulator ranks first. (At 64 KiB the old alpha-beta-gamma formulas took
    ring for the rails: they cannot see that virtual nodes on one host talk
    through memory; the simulator ranks Rabenseifner first there.)"""
    t = make(12, "nodes=6", None)
    picked = set()
    for nbytes in (8, 8 << 10, 64 << 10, 512 << 10, 4 << 20):
        auto = _core.plan_for(t, ALLREDUCE, nbytes // 4, 4, 0, [])
        pred = {c["name"]: c["predicted"] for c in auto["candidates"] if not c["unsupported"]}
        assert auto["algorithm"] == min(pred, key=pred.get)
        forced = _core.plan_for(t, ALLREDUCE, nbytes // 4, 4, 0, [], "split_rail")
        fp = {c["name"]: c["predicted"] for c in forced["candidates"]
              if not c["unsupported"] and family(c["name"]) == "split_rail"}
        assert forced["algorithm"] == min(fp, key=fp.get)
        picked.add(forced["algorithm"])
    assert {"split_rail(recursive_doubling)", "split_rail(rabenseifner)", "split_rail(ring)"} <= picked, picked


@pytest.mark.parametrize("tp", [(4, "nodes=2", None), (7, "groups=2,2,1,2", None), (8, "rack=2,groups=2,1,3,2", None)],
                         ids=topo_id)
def test_forced_variant_and_family_give_exact_results(tp):
    """Every variant forced by name runs that variant; a family forced by name
    runs the variant the selector picks; both give numpy's exact sums."""
    t = make(*tp)
    p = tp[0]
    rng = np.random.default_rng(7)
    for fam, variants in FAMILIES.items():
        for name in [fam] + variants:
            for count in (0, 5, 1001):
                xs = rank_data(p, count, rng)
                outs = [np.full(count, np.nan) for _ in range(p)]
                res = sim(t, "allreduce", name, count, [], 0, xs, outs, segments=2)
                assert res["algorithm"] == name if name != fam else family(res["algorithm"]) == fam
                for r in range(p):
                    np.testing.assert_array_equal(outs[r], np.sum(np.stack(xs), axis=0), err_msg=f"{name} {count}")


# ---- the selection's pruning ---------------------------------------------------------------

PRUNE_TOPOLOGIES = TOPOLOGIES + [(64, "nodes=8", None), (64, "switch=2,nodes=8", None),
                                 (96, "rack=2,switch=4,nodes=12", None), (40, "groups=8,8,8,8,4,4", None)]
# Model parameters the tests use: the defaults; the namespace testbed's measured two-level rates; four hosts
# whose links differ (one slow).
PRUNE_MODELS = [
    {},
    {"link.0.alpha_us": 19.5, "link.0.bw_GBps": 3.24, "link.1.alpha_us": 15.9, "link.1.bw_GBps": 1.46,
     "link.2.alpha_us": 16.2, "link.2.bw_GBps": 0.155},
    {"link.1.alpha_us": 20, "link.1.bw_GBps": 0.117, "host.h0.bw_GBps": 0.117, "host.h1.bw_GBps": 0.117,
     "host.h2.bw_GBps": 0.117, "host.h3.bw_GBps": 0.029},
]


@pytest.mark.parametrize("topo", PRUNE_TOPOLOGIES, ids=[topo_id(t) for t in PRUNE_TOPOLOGIES])
@pytest.mark.parametrize("model", range(len(PRUNE_MODELS)), ids=["defaults", "testbed", "uneven-hosts"])
def test_pruned_selection_chooses_what_the_full_replay_chooses(topo, model):
    """The runtime's selection stops replaying candidates that can no longer
    win, and replays one block of ranks where the job and the schedules are
    symmetric; for every collective, size and root its choice (algorithm and
    segments) and the winner's predicted time are those of the full replay of
    every rank of every candidate."""
    size, spec, keys = topo
    keys = keys if keys is not None else [0] * size
    nodes = make(size, spec, keys).as_dict()["groups"][0] if spec else keys
    # One host per node (per-host link rates apply; hosts h0..h3 repeat beyond four nodes).
    t = _core.make_topology(size, keys, ["h%d" % (n % 4) if len(set(nodes)) > 1 else "h0" for n in nodes],
                            [""] * size, spec)
    overrides = {"tuning": "", "tuned": PRUNE_MODELS[model]}
    p = t.size
    beaten, symmetric = [0], [0]
    for coll in ("allreduce", "reduce_scatter", "allgather", "bcast", "reduce", "alltoall"):
        for count in (1, 200, 16 << 10, 1 << 20):
            for root in ((0, p - 1) if coll in ("bcast", "reduce") else (0,)):
                c = coll_code(coll)
                per = max(count // p, 1)
                counts = [per] * (p * p if coll == "alltoall" else p) if coll in ("reduce_scatter", "allgather",
                                                                               "alltoall") else []
                n = 0 if counts else count
                full = _core.plan_for(t, c, n, 4, root, counts, "", dict(overrides, sim_symmetric=False), True)
                fast = _core.plan_for(t, c, n, 4, root, counts, "", overrides, False)
                what = f"{coll} count={count} root={root}"
                assert (fast["algorithm"], fast["segments"]) == (full["algorithm"], full["segments"]), what
                won = next(x for x in fast["candidates"] if x["name"] == fast["algorithm"])
                ref = next(x for x in full["candidates"] if x["name"] == full["algorithm"])
                assert won["predicted"] == ref["predicted"] and not won["beaten"], what
                symmetric[0] += 0 < won["replayed"] < p
                beaten[0] += sum(x["beaten"] for x in fast["candidates"])
    assert beaten[0] > 0 or p < 3  # the pruning ran
    if spec in ("nodes=8", "switch=2,nodes=8", "rack=2,switch=4,nodes=12") and model != 2:
        assert symmetric[0] > 0  # and the folding (the uneven-hosts model breaks the symmetry)


def test_large_jobs_fold_uneven_counts_as_an_estimate_close_to_the_full_replay():
    """Above Config::sim_exact_ranks ranks (256), a candidate whose schedules
    keep a symmetry in rounds and peers but not in counts (a vector the ranks
    do not divide evenly) is replayed folded with the representatives'
    counts: marked an estimate, within a few percent of the full replay of
    all 512 ranks, and the choice is the full replay's."""
    p = 512
    t = _core.make_topology(p, [r // 8 for r in range(p)], ["h%d" % (r // 8) for r in range(p)], [""] * p, "")
    c = coll_code("allreduce")
    estimates = 0
    for count in (1, 1000, 250000, 750001):
        full = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": "", "sim_exact_ranks": 1 << 30}, True)
        est = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": ""}, True)
        fast = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": ""}, False)
        assert est["algorithm"] == full["algorithm"] == fast["algorithm"], count
        for a, b in zip(full["candidates"], est["candidates"]):
            if a["unsupported"]:
                continue
            assert not a["estimate"] and a["error"] == b["error"] == "", (count, a, b)
            if b["estimate"]:
                estimates += 1
                assert 0 < b["replayed"] < p
                assert b["predicted"] == pytest.approx(a["predicted"], rel=0.05), (count, a["name"])
            else:
                assert b["predicted"] == a["predicted"], (count, a["name"])
    assert estimates > 0


@pytest.mark.parametrize("size,spec", [(512, "switch=4"), (384, "switch=3")])
@pytest.mark.parametrize("model", [0, 1], ids=["defaults", "testbed"])
def test_large_jobs_under_switches_fold_by_one_node_as_an_estimate_close_to_the_full_replay(size, spec, model):
    """Above Config::sim_exact_ranks ranks, on nodes under switches (three
    link levels), a candidate whose schedules keep a rotation of the nodes
    inside every switch (split_rail's rings), or an exclusive-or move of nodes
    (recursive doubling, rabenseifner; switches a power of two in number), is
    replayed for one node, each message through a switch's uplink priced as
    the last of the switch's nodes' alike: marked an estimate, within 10 % of
    the full replay (exact folds by a whole switch, or every rank) and within
    1 % for most; the choice made on the estimates is the full replay's, or
    costs by the full replay no more than 0.1 % over the full replay's choice
    (near ties), on the default model and on the testbed's slow top link."""
    t = _core.make_topology(size, [r // 8 for r in range(size)], ["h%d" % (r // 8) for r in range(size)],
                            [""] * size, spec)
    c = coll_code("allreduce")
    tuned = PRUNE_MODELS[model]
    kinds, errors = set(), []
    for count in (1, 1000, 250000, 750001):
        full = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": "", "tuned": tuned, "sim_exact_ranks": 1 << 30},
                              True)
        est = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": "", "tuned": tuned}, True)
        fast = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": "", "tuned": tuned}, False)
        assert fast["algorithm"] == est["algorithm"], count
        by_name = {x["name"]: x for x in full["candidates"]}
        best = by_name[full["algorithm"]]["predicted"]
        assert by_name[est["algorithm"]]["predicted"] <= best * 1.001, (count, est["algorithm"], full["algorithm"])
        for a, b in zip(full["candidates"], est["candidates"]):
            if a["unsupported"]:
                continue
            assert a["error"] == b["error"] == "" and not a["estimate"], (count, a, b)
            if b["how"].startswith("estimate: one node"):
                assert b["estimate"] and b["replayed"] == 8, (count, b)
                kinds.add(b["symmetry"])
                errors.append(abs(b["predicted"] / a["predicted"] - 1))
                assert b["predicted"] == pytest.approx(a["predicted"], rel=0.10), (count, a["name"])
    assert errors and sorted(errors)[len(errors) // 2] < 0.01, errors
    assert "rotate" in kinds  # split_rail(ring) everywhere
    if spec == "switch=4":
        assert {"xor", "rotate+xor"} <= kinds  # four switches: the exclusive-or moves too


def test_segments_grow_where_each_segment_pays_many_rounds_of_latency():
    """Every pipelined segment pays its schedule's rounds of latency. On a
    256-rank job with fast links (NVLink and 400 GB/s node links, microsecond
    latencies) the selector pipelines in segments larger than BAOBAB_SEGMENT,
    and that beats the same algorithm in BAOBAB_SEGMENT's segments; with the
    latencies taken away it keeps BAOBAB_SEGMENT's size."""
    p = 256
    t = _core.make_topology(p, [r // 8 for r in range(p)], ["h%d" % (r // 8) for r in range(p)], [""] * p, "")
    c = coll_code("allreduce")
    count = (64 << 20) // 4
    fast = {"link.0.bw_GBps": 450, "link.0.alpha_us": 1, "link.1.bw_GBps": 400, "link.1.alpha_us": 3,
            "gamma_GBps": 2000, "copy_GBps": 2000}
    plan = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": "", "tuned": fast}, False)
    assert plan["segments"] > 1 and plan["segment_count"] * 4 > (1 << 20), plan["segments"]
    won = next(x for x in plan["candidates"] if x["name"] == plan["algorithm"])
    assert won["segment_count"] == plan["segment_count"]
    # the same algorithm forced: BAOBAB_SEGMENT's segments, as a forced algorithm runs
    forced = _core.plan_for(t, c, count, 4, 0, [], plan["algorithm"], {"tuning": "", "tuned": fast}, True)
    base = next(x for x in forced["candidates"] if x["name"] == plan["algorithm"])
    assert base["segments"] == 64 and base["segment_count"] * 4 == 1 << 20
    assert won["predicted"] < base["predicted"], (won["predicted"], base["predicted"])
    no_latency = dict(fast, **{"link.0.alpha_us": 0, "link.1.alpha_us": 0, "round_overhead_us": 0})
    flat = _core.plan_for(t, c, count, 4, 0, [], "", {"tuning": "", "tuned": no_latency}, True)
    same = next(x for x in flat["candidates"] if x["name"] == plan["algorithm"])
    assert same["segments"] == 64 and same["segment_count"] * 4 == 1 << 20, same


def test_large_messages_wait_for_their_receive_rendezvous():
    """Four hosts, one rank each, the fourth host's link 4x slower. In
    rabenseifner's first round rank 1 exchanges half the vector with the slow
    rank 3; its next two rounds (with rank 0) are fast, and its last sends the
    other half to rank 3 again, long before rank 3 gets there. MPI sends such
    a message only once rank 3 has posted the receive, so it cannot queue on
    the slow link ahead of rank 3's own rounds: every round of rank 3 is then
    paced by its link alone, 2 x (S/2 + S/4) of traffic each way. Replayed
    as if sent at once (rendezvous_bytes above every message) the early
    message delays rank 3's middle rounds, and the prediction is a third
    higher than what the testbed measured (3.41-3.66 s at 64 MiB)."""
    t = _core.make_topology(4, [0, 1, 2, 3], ["h0", "h1", "h2", "h3"], [""] * 4, "")
    slow = 0.03
    tuned = {"link.1.bw_GBps": 0.12, "link.1.alpha_us": 20, "host.h3.bw_GBps": slow,
             "gamma_GBps": 3.4, "copy_GBps": 4.3}
    size = 64 << 20
    n = size // 4

    def time(extra):
        ov = {"tuning": "", "tuned": dict(tuned, **extra)}
        res = _core.simulate(t, ALLREDUCE, "rabenseifner", n, [], 0, _core.DType.float32, OPS["sum"], [], [], ov, 1)
        assert res["error"] == ""
        return res["time"]
    rndv, eager = time({}), time({"rendezvous_bytes": 1e18})
    paced = 2 * (size / 2 + size / 4) / (slow * 1e9)  # rank 3's link, every round
    assert paced <= rndv < 1.02 * paced, (rndv, paced)
    assert eager > 1.25 * rndv, (eager, rndv)
