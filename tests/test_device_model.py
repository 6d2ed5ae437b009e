"""The cost model of collectives on device buffers (CostModel::dev): what the
simulator charges for the copies through pinned memory, CUDA IPC and the
device's own copies and reductions, how it routes each message, and the
plans it chooses. Pure model: no MPI, no GPU."""
import sys
from pathlib import Path

import pytest

import baobab
from baobab import _core
from baobab.comm import ALLREDUCE, BCAST

sys.path.insert(0, str(Path(__file__).parent))
from test_algorithms_sim import make  # noqa: E402

MiB = 1 << 20
# Round numbers so that the analytic times below are easy to follow.
TUNED = {"round_overhead_us": 0, "link.0.alpha_us": 1, "link.0.bw_GBps": 5, "link.1.alpha_us": 2,
         "link.1.bw_GBps": 10, "copy_GBps": 8, "device.latency_us": 7, "device.d2h_GBps": 20,
         "device.h2d_GBps": 25, "device.copy_GBps": 1000, "device.reduce_GBps": 500}


def ov(**more):
    tuned = dict(TUNED)
    tuned.update({k.replace("__", "."): v for k, v in more.items()})
    return {"tuning": "", "tuned": tuned}


def predicted(plan, name=None):
    name = name or plan["algorithm"]
    return next(c["predicted"] for c in plan["candidates"] if c["name"] == name)


def two_hosts():
    return make(2, "", [0, 1], hosts=["a", "b"])


def one_host():
    return make(2, "", [0, 0], hosts=["a", "a"])


def test_staged_message_pays_both_copies_and_their_latency():
    """A 2-rank bcast between hosts: the root copies in -> out on the device
    (a round of its own, seen done a latency later), copies the payload to
    pinned memory, sends it; the receiver copies it onto the device."""
    b = MiB
    p = _core.plan_for(two_hosts(), BCAST, b, 1, 0, [], "binomial", ov(), True, "staged", False)
    want = (b / 1000e9 + 7e-6) + (b / 20e9 + 7e-6) + (b / 10e9 + 2e-6) + (b / 25e9 + 7e-6)
    assert predicted(p) == pytest.approx(want, rel=1e-12)
    host = _core.plan_for(two_hosts(), BCAST, b, 1, 0, [], "binomial", ov(), True)
    assert predicted(host) == pytest.approx(b / 8e9 + b / 10e9 + 2e-6, rel=1e-12)


def test_ipc_message_is_a_descriptor_and_two_device_copies():
    """On one node and host with IPC: the payload is copied into the exported
    buffer, a 128-byte descriptor travels (a CPU copy), the receiver copies
    the payload out of the peer's memory at the slower of the device copy
    and the peer rate."""
    b = MiB
    t = one_host()
    for peer, rate in ((None, 1000e9), (100, 100e9)):
        o = ov() if peer is None else ov(device__peer_GBps=peer)
        p = _core.plan_for(t, BCAST, b, 1, 0, [], "binomial", o, True, "staged", True)
        want = 2 * (b / 1000e9 + 7e-6) + 128 / 5e9 + 1e-6 + b / rate + 7e-6
        assert predicted(p) == pytest.approx(want, rel=1e-12), peer
    # IPC off: staged through pinned memory and a CPU copy between the ranks
    p = _core.plan_for(t, BCAST, b, 1, 0, [], "binomial", ov(), True, "staged", False)
    want = (b / 1000e9 + 7e-6) + (b / 20e9 + 7e-6) + (b / 5e9 + 1e-6) + (b / 25e9 + 7e-6)
    assert predicted(p) == pytest.approx(want, rel=1e-12)


def test_cuda_aware_messages_pay_the_tuned_aware_cost():
    b = MiB
    p = _core.plan_for(two_hosts(), BCAST, b, 1, 0, [], "binomial", ov(device__aware_us=3, device__aware_GBps=4),
                       True, "cuda-aware", False)
    want = (b / 1000e9 + 7e-6) + (b / 4e9 + 2e-6 + 3e-6)
    assert predicted(p) == pytest.approx(want, rel=1e-12)


def test_reductions_run_at_the_device_rate():
    """Two ranks on two hosts, recursive doubling: one exchange and one
    reduction each; the device's reduction rate and latency replace the CPU's."""
    n = 4 * MiB
    o = ov(device__aware_us=0)
    dev = _core.plan_for(two_hosts(), ALLREDUCE, n // 4, 4, 0, [], "recursive_doubling", o, True, "cuda-aware",
                         False)
    host = _core.plan_for(two_hosts(), ALLREDUCE, n // 4, 4, 0, [], "recursive_doubling", o, True)
    gamma = {"host": 1 / 4e9, "dev": 1 / 500e9}  # the host's default reduce rate (gamma_GBps not tuned)
    wire = n / 10e9 + 2e-6
    assert predicted(host) == pytest.approx(wire + n * gamma["host"], rel=1e-9)
    assert predicted(dev) == pytest.approx(wire + n * gamma["dev"] + 7e-6, rel=1e-9)


def test_routes_are_chosen_per_message_by_cost():
    """IPC where it costs no more than staging (a crossing at a few KiB with
    these rates); with a CUDA-aware MPI ("auto"), device pointers or staging,
    whichever is cheaper for the size: a slow aware path loses large messages."""
    o = ov()
    route = lambda b, lvl, near, path, ipc, o=o: _core.device_route(b, lvl, near, path, ipc, o)[0]  # noqa: E731
    assert route(8, 0, True, "staged", True) == "staged"
    assert route(MiB, 0, True, "staged", True) == "ipc"
    assert route(MiB, 0, True, "staged", False) == "staged"
    assert route(MiB, 1, False, "staged", True) == "staged"  # IPC needs one node and host
    assert route(MiB, 1, False, "cuda-aware", True) == "direct"
    slow = ov(device__aware_GBps=2, device__aware_us=1)
    assert route(1024, 1, False, "auto", False, slow) == "direct"
    assert route(64 * MiB, 1, False, "auto", False, slow) == "staged"
    # each route's cost is what the model says, and the route is the cheapest allowed
    for b in (1, 3000, 5000, MiB):
        name, costs = _core.device_route(b, 1, False, "auto", False, slow)
        assert costs[name] == min(costs["direct"], costs["staged"])
    # the crossing between staging and IPC, where the two costs meet
    lo, hi = 1, 1 << 20
    while hi - lo > 1:
        mid = (lo + hi) // 2
        (lo, hi) = (mid, hi) if route(mid, 0, True, "staged", True) == "staged" else (lo, mid)
    c = _core.device_route(hi, 0, True, "staged", True, o)[1]
    assert c["ipc"] <= c["staged"]
    c = _core.device_route(lo, 0, True, "staged", True, o)[1]
    assert c["ipc"] > c["staged"]
    assert 512 < hi < 64 << 10


TOPOS = [("flat4", lambda: make(4, "", None)),
         ("2x4", lambda: make(8, "nodes=2", None, hosts=["a"] * 4 + ["b"] * 4)),
         ("4x4", lambda: make(16, "nodes=4", None, hosts=[h for h in "abcd" for _ in range(4)])),
         ("switch", lambda: make(8, "switch=2,nodes=4", None, hosts=[h for h in "abcd" for _ in range(2)]))]


@pytest.mark.parametrize("name, topo", TOPOS, ids=[n for n, _ in TOPOS])
@pytest.mark.parametrize("path, ipc", [("staged", True), ("staged", False), ("auto", True)])
def test_device_selection_prunes_what_the_full_replay_prunes(name, topo, path, ipc):
    """The runtime's selection (cut-off replays, lower bounds) chooses what
    replaying every candidate to the end chooses, under the device model."""
    t = topo()
    for nbytes in (8, 64 << 10, MiB, 16 * MiB):
        quick = _core.plan_for(t, ALLREDUCE, nbytes // 4, 4, 0, [], "", {}, False, path, ipc)
        full = _core.plan_for(t, ALLREDUCE, nbytes // 4, 4, 0, [], "", {}, True, path, ipc)
        assert (quick["algorithm"], quick["segments"]) == (full["algorithm"], full["segments"]), (nbytes, name)
        best = min(c["predicted"] for c in full["candidates"] if not c["unsupported"])
        assert predicted(full) == best


def test_device_model_changes_the_choice_where_copies_dominate():
    """One host, 8 ranks, 1 MiB with IPC: on the host the CPU copies favour
    rabenseifner's halved volume; on the device, copies are cheap and every
    round costs a latency, so the fewer rounds of recursive doubling win.
    Each choice is the best under its own model."""
    t = make(8, "", None)
    host = _core.plan_for(t, ALLREDUCE, MiB // 4, 4, 0, [], "", {}, True)
    dev = _core.plan_for(t, ALLREDUCE, MiB // 4, 4, 0, [], "", {}, True, "staged", True)
    assert host["algorithm"] != dev["algorithm"]
    rounds = {c["name"]: c["rounds"] for c in dev["candidates"] if not c["unsupported"]}
    assert rounds[dev["algorithm"]] < rounds[host["algorithm"]]
    assert predicted(dev) < predicted(dev, host["algorithm"])


def test_device_tuning_keys_move_the_prediction():
    t = two_hosts()
    base = predicted(_core.plan_for(t, BCAST, MiB, 1, 0, [], "binomial", ov(), True, "staged", False))
    faster = predicted(_core.plan_for(t, BCAST, MiB, 1, 0, [], "binomial", ov(device__d2h_GBps=40), True,
                                      "staged", False))
    assert base - faster == pytest.approx(MiB / 20e9 - MiB / 40e9, rel=1e-9)


def test_unknown_device_transport_is_refused():
    with pytest.raises(baobab.InvalidArgument, match="unknown device transport 'sideways'"):
        _core.plan_for(two_hosts(), BCAST, 8, 1, 0, [], "", {}, True, "sideways", False)
