"""baobab.simulate and `baobab simulate`: predictions for modelled clusters
from the schedules the executor runs; the selector's choice among them; the
link and tuning parameters it is given; the replay budget; bad input."""
import csv
import subprocess
import sys

import pytest

import baobab
from baobab import _core, _simulate
from baobab.comm import ALLREDUCE

CLI = [sys.executable, "-m", "baobab", "simulate"]


def run(*args, rc=0):
    p = subprocess.run(CLI + list(map(str, args)), capture_output=True, text=True, timeout=300)
    assert p.returncode == rc, p.stdout + p.stderr
    return p


def test_python_entry_equals_the_selector_on_the_same_modelled_job():
    rows = baobab.simulate("allreduce", ranks=64, ppn=8, sizes=[8, 1 << 20, 16 << 20], topology="two-tier",
                           group=4)
    t = _simulate.make_topology("switch=2,nodes=8", 64, 8)
    for size in (8, 1 << 20, 16 << 20):
        mine = [r for r in rows if r["size"] == size]
        assert sum(r["chosen"] for r in mine) == 1
        overrides = {"tuning": "", "tuned": {
            "link.0.bw_GBps": 450.0, "link.0.alpha_us": 1.0, "link.1.bw_GBps": 400.0, "link.1.alpha_us": 3.0,
            "link.2.bw_GBps": 1600.0, "link.2.alpha_us": 4.0, "gamma_GBps": 2000.0, "copy_GBps": 2000.0}}
        plan = _core.plan_for(t, ALLREDUCE, size // 4, 4, 0, [], "", overrides)
        chosen = next(r for r in mine if r["chosen"])
        assert chosen["algo"] == plan["algorithm"]
        want = {c["name"]: c["predicted"] for c in plan["candidates"] if not c["unsupported"]}
        got = {r["algo"]: r["time_s"] for r in mine if r["time_s"] is not None}
        assert got == want
        for r in mine:
            if r["time_s"]:
                assert r["busbw"] == pytest.approx(size / r["time_s"] / 1e9 * 2 * 63 / 64)


def test_faster_links_give_shorter_predictions_and_the_tuning_file_is_used(tmp_path):
    base = {r["algo"]: r["time_s"] for r in baobab.simulate("allreduce", ranks=32, ppn=4, sizes=[64 << 20],
                                                             topology="flat") if r["time_s"]}
    fast = {r["algo"]: r["time_s"] for r in baobab.simulate("allreduce", ranks=32, ppn=4, sizes=[64 << 20],
                                                             topology="flat", links={1: (2000.0, 3.0)})
            if r["time_s"]}
    assert base["ring"] > 1.5 * fast["ring"]  # the node links carry ring's traffic
    tuning = tmp_path / "tuning.conf"
    tuning.write_text("link.1.bw_GBps = 0.1\nlink.1.alpha_us = 50\n")
    slow = {r["algo"]: r["time_s"] for r in baobab.simulate("allreduce", ranks=32, ppn=4, sizes=[64 << 20],
                                                             topology="flat", tuning=str(tuning)) if r["time_s"]}
    assert slow["ring"] > 100 * base["ring"]


@pytest.mark.parametrize("shape, levels", [("flat", 1), ("rail", 1), ("two-tier", 2), ("fat-tree", 3),
                                           ("dragonfly", 3)])
def test_every_shape_builds_a_topology_of_its_levels(shape, levels):
    spec, links, desc = _simulate.shape(shape, 512, 8, group=4, pods=4)
    t = _simulate.make_topology(spec, 512, 8)
    assert t.levels == levels, (spec, t.levels)  # group levels: nodes, then the switches above
    assert desc and all(v[0] > 0 for v in links.values())
    rows = baobab.simulate("allreduce", ranks=512, ppn=8, sizes=[1 << 20], topology=shape, group=4, pods=4)
    assert sum(r["chosen"] for r in rows) == 1


def test_switches_of_a_number_of_nodes_that_is_not_a_power_of_two_fold():
    # 64 leaf switches of 12 nodes: the fold by one node moves whole switches
    # by xor of their index (12 nodes are not a power of two). This crashed
    # the process (a move out of the job's ranks) before.
    out = run("allreduce", "--ranks", 12 * 8 * 64, "--ppn", 8, "--size", "1M", "--topology", "two-tier",
              "--group", 12).stdout
    chosen = [line for line in out.splitlines() if line.startswith("*")]
    assert len(chosen) == 1, out
    rows = baobab.simulate("allreduce", ranks=12 * 8 * 64, ppn=8, sizes=[1 << 20], topology="two-tier", group=12)
    assert sum(r["chosen"] for r in rows) == 1
    assert all(r["time_s"] > 0 for r in rows if r["time_s"] is not None)


def test_a_replay_over_the_budget_is_listed_not_run():
    rows = baobab.simulate("allreduce", ranks=1024, ppn=8, sizes=[1 << 20], topology="flat", budget=1e4)
    ring = next(r for r in rows if r["algo"] == "ring")
    assert ring["time_s"] is None and "not simulated" in ring["note"] and "budget" in ring["note"]
    assert any(r["chosen"] for r in rows)  # the cheap replays still choose


def test_command_line_table_csv_and_plot(tmp_path):
    table, png = tmp_path / "s.csv", tmp_path / "s.png"
    out = run("allreduce", "--ranks", 64, "--ppn", 8, "-b", "8", "-e", "16M", "-f", "64", "--topology", "two-tier",
              "--group", 4, "--link", "1=25,2.5", "--csv", table, "--plot", png).stdout
    assert "# baobab simulate allreduce: 64 ranks, 8 nodes x 8, 2 leaf switches of 4 nodes" in out
    assert sum(line.startswith("*") for line in out.splitlines()) == 4  # one choice per size: 8, 512, 32K, 2M
    rows = list(csv.DictReader(open(table)))
    assert {r["size"] for r in rows} == {"8", "512", "32768", "2097152"}
    assert png.stat().st_size > 10000


@pytest.mark.parametrize("args, words", [
    (["allreduce", "--ranks", "100", "--ppn", "8"], "multiple of ppn"),
    (["allreduce", "--ranks", "64", "--topology", "torus"], "unknown topology"),
    (["allreduce", "--ranks", "64", "--link", "1=fast"], "--link"),
    (["allreduce", "--ranks", "64", "--size", "1M", "-b", "8"], "not both"),
    (["barrier", "--ranks", "64"], "barrier moves no data"),
    (["allreduce", "--ranks", "64", "--topology", "two-tier", "--group", "3"], "groups of 3"),
    (["allreduce"], "--ranks"),
])
def test_bad_command_lines_are_one_line_exit_2(args, words):
    p = run(*args, rc=2)
    assert words in p.stderr and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
