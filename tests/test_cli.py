"""The baobab command line under mpiexec: info, bench (validated, with the MPI
baseline and CSV), tune (writes a tuning file that later runs use), explain."""
import csv
import re
import sys

from conftest import run_mpi

BAOBAB = [sys.executable, "-m", "baobab"]


def cli(n, *args, env=None, timeout=300):
    code = "import sys; from baobab._cli.main import main; sys.exit(main(sys.argv[1:]))\n"
    return run_mpi(n, code, *args, env=env, timeout=timeout).stdout


def test_info_shows_library_topology_and_algorithms():
    out = cli(4, "info", env={"BAOBAB_TOPOLOGY": "groups=3,1"})
    assert "MPI library" in out and "CUDA" in out
    assert "topology: 4 ranks, 2 nodes (BAOBAB_TOPOLOGY=groups=3,1)" in out
    assert "split_rail" in out and "dissemination" in out
    assert out.count("baobab 0.") == 1  # printed once, by rank 0


def test_bench_validates_and_compares_with_mpi(tmp_path):
    path = tmp_path / "bench.csv"
    out = cli(3, "bench", "allreduce", "-b", "8", "-e", "64K", "-f", "16", "--csv", str(path))
    assert "# out of bounds values : 0 OK" in out
    rows = list(csv.DictReader(open(path)))
    assert [int(r["size"]) for r in rows] == [8, 128, 2048, 32768]
    for r in rows:
        assert int(r["wrong"]) == 0 and float(r["time_us"]) > 0 and float(r["mpi_us"]) > 0
        assert abs(float(r["ratio"]) - float(r["mpi_us"]) / float(r["time_us"])) < 1e-6
        assert abs(float(r["busbw"]) - float(r["algbw"]) * 2 * 2 / 3) < 1e-9


def test_bench_every_algorithm_of_every_collective():
    import baobab
    for coll in ("allgather", "reduce_scatter", "bcast", "reduce", "alltoall"):
        out = cli(4, "bench", coll, "-b", "1K", "-e", "64K", "-f", "64", "--algo", "all", "-n", "3",
                  env={"BAOBAB_TOPOLOGY": "nodes=2"})
        assert "# out of bounds values : 0 OK" in out, out
        ran = {line.split()[5].split("/")[0] for line in out.splitlines() if line.strip()[:1].isdigit()}
        assert ran == {a["name"] for a in baobab.algorithms() if a["collective"] == coll}, (coll, ran)


def test_bench_model_column_is_each_algorithm_replayed_in_full(tmp_path):
    """The model column is the prediction of the algorithm that ran, replayed
    to the end as explain does (the runtime's selection cuts off candidates
    that lose, so its own numbers for them are not predictions), and the
    table ends with the model's error against the measured times."""
    path = tmp_path / "all.csv"
    env = {"BAOBAB_TOPOLOGY": "nodes=2"}
    out = cli(4, "bench", "allreduce", "-b", "1M", "-e", "1M", "--algo", "all", "-n", "2", "-w", "1",
              "--no-mpi", "--csv", str(path), env=env)
    m = re.search(r"# model against measured, (\d+) rows: median error ([\d.]+) %, worst ([\d.]+) %", out)
    assert m, out
    rows = list(csv.DictReader(open(path)))
    assert int(m.group(1)) == len(rows) >= 6
    errs = sorted(abs(float(r["model_us"]) - float(r["time_us"])) / float(r["time_us"]) for r in rows)
    assert abs(float(m.group(3)) - errs[-1] * 100) < 0.051, (m.group(3), errs)
    explain = cli(4, "explain", "allreduce", "1M", env=env)
    shown = {}
    for name, value, unit in re.findall(r"^[ *] (\S+)\s+([\d.]+) (us|ms|s)\b", explain, re.M):
        shown[name] = float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    for r in rows:
        name = r["algo"].split("/")[0]
        assert name in shown, (name, explain)
        assert abs(float(r["model_us"]) - shown[name]) <= 1e-3 * shown[name] + 0.01, (r, shown[name])


def test_bench_bfloat16_has_no_mpi_baseline_but_is_validated():
    out = cli(2, "bench", "allreduce", "-b", "1K", "-e", "1K", "-d", "bfloat16", "-o", "max")
    line = next(l for l in out.splitlines() if "bfloat16" in l)
    assert " - " in line and "max" in line
    assert "0 OK" in out


def test_tune_writes_a_file_the_model_then_uses(tmp_path):
    path = tmp_path / "tuning.conf"
    out = cli(4, "tune", "-o", str(path), "--bytes", "256K", "--reps", "5", env={"BAOBAB_TOPOLOGY": "nodes=2"})
    assert f"wrote {path}" in out
    values = {}
    for line in open(path):
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=")
            values[k.strip()] = float(v)
    for key in ("link.0.alpha_us", "link.0.bw_GBps", "link.1.alpha_us", "link.1.bw_GBps", "gamma_GBps", "copy_GBps"):
        assert values[key] > 0, key
    out = cli(2, "explain", "allreduce", "1M", env={"BAOBAB_TUNING": path})
    assert f"(tuning: {path})" in out and "choice:" in out
    # the model prints the tuned intra-node latency with 2 decimals (a value such as 4.905
    # may print as 4.90 after the us -> s -> us round trip, so compare the numbers)
    shown = float(re.search(r"\[intra-node: ([\d.]+) us", out).group(1))
    assert abs(shown - values["link.0.alpha_us"]) <= 0.005 + 1e-9, (shown, values["link.0.alpha_us"], out)


def test_explain_forced_by_environment():
    out = cli(2, "explain", "bcast", "64K", env={"BAOBAB_ALGO": "bcast=scatter_allgather"})
    assert "choice: scatter_allgather (forced by BAOBAB_ALGO)" in out


def test_explain_says_which_candidates_were_replayed_as_one_block():
    """Two identical virtual nodes: every candidate that keeps the move from
    one node to the other is replayed for one node's ranks, and says so."""
    out = cli(4, "explain", "allreduce", "1M", env={"BAOBAB_TOPOLOGY": "nodes=2"})
    rows = [line for line in out.splitlines() if "one block of 2 ranks replayed" in line]
    assert rows and any(r.split()[1 if r.startswith("*") else 0] == "ring" for r in rows), out


def test_explain_lists_the_inner_algorithm_of_compositions():
    """split_rail and leader are costed once per inner allreduce, each a row of
    explain; forcing the family picks the row with the lowest prediction."""
    import baobab
    variants = [v for a in baobab.algorithms() for v in a["variants"]]
    assert "split_rail(ring)" in variants and "leader(rabenseifner)" in variants
    env = {"BAOBAB_TOPOLOGY": "nodes=2"}
    out = cli(4, "explain", "allreduce", "4M", env=env)
    rows = {line[2:].split()[0]: line for line in out.splitlines() if line[2:].split()[:1] and "(" in line[2:].split()[0]}
    assert set(variants) <= set(rows), out
    assert "not considered: every node link has the same rate" in rows["split_rail(weighted)"]
    out = cli(4, "explain", "allreduce", "4M", env=dict(env, BAOBAB_ALGO="allreduce=split_rail"))
    choice = re.search(r"choice: (split_rail\(\w+\)) \(family split_rail forced by BAOBAB_ALGO", out)
    assert choice, out
    times = {}
    for line in out.splitlines():
        m = re.match(r"[* ] (split_rail\(\w+\)) +([\d.]+) (us|ms|s) ", line)
        if m:
            times[m.group(1)] = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1}[m.group(3)]
    assert times[choice.group(1)] == min(times.values()), (times, out)  # equal as printed (3 digits)
    out = cli(4, "explain", "allreduce", "4M", env=dict(env, BAOBAB_ALGO="allreduce=leader(ring)"))
    assert "choice: leader(ring) (forced by BAOBAB_ALGO)" in out, out


def test_bench_pack_validates_against_mpi_pack():
    out = cli(1, "bench", "pack", "--blocks", "8,512", "--bytes", "1M")
    rows = [l.split() for l in out.splitlines() if l.strip() and not l.startswith("#")]
    assert [r[0] for r in rows] == ["8", "512"]
    for r in rows:
        assert r[-1] == "yes" and float(r[2]) > 0 and float(r[4]) > 0  # packed correctly; both rates measured


def test_bench_halo_agrees_with_mpi_subarray_types():
    out = cli(4, "bench", "halo", "--size", "24", "--iters", "2")
    line = next(l for l in out.splitlines() if "24^3" in l and not l.startswith("#"))
    assert line.split()[-1] == "yes", out


def test_tune_records_pack_rates(tmp_path):
    path = tmp_path / "t.conf"
    cli(2, "tune", "-o", str(path), "--bytes", "64K", "--reps", "3", "--pack-bytes", "1M")
    text = path.read_text()
    for b in (8, 64, 512, 4096, 32768):
        assert f"pack.ours.{b}_GBps" in text and f"pack.mpi.{b}_GBps" in text


def test_bench_plot_draws_every_algorithm_and_the_mpi_baseline(tmp_path):
    import pytest
    import matplotlib  # noqa: F401  (a test dependency: pip install baobab[test])
    table, png = tmp_path / "ar.csv", tmp_path / "ar.png"
    cli(2, "bench", "allreduce", "-b", "1K", "-e", "64K", "-f", "8", "--algo", "all", "--csv", str(table),
        "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(table)))
    assert {r["requested"] for r in rows} >= {"auto", "ring", "recursive_doubling"}
    from baobab._cli.plot import busbw_plot, read_csv
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    seen = {}
    orig = plt.Axes.plot

    def spy(self, xs, ys, *a, **k):
        seen[k.get("label")] = list(ys)
        return orig(self, xs, ys, *a, **k)
    plt.Axes.plot = spy
    try:
        busbw_plot(read_csv([table]), str(tmp_path / "again.png"))
    finally:
        plt.Axes.plot = orig
    assert "MPI library" in seen and "auto (baobab's choice)" in seen and "ring" in seen, seen
    assert len(seen["ring"]) == 3 and all(v > 0 for v in seen["ring"])
    # the standalone command reads the same table
    out = run_mpi(1, "import sys; from baobab._cli.main import main; sys.exit(main(sys.argv[1:]))\n", "plot", str(table),
                  "-o", str(tmp_path / "cli.png")).stdout
    assert (tmp_path / "cli.png").exists() and "cli.png" in out
