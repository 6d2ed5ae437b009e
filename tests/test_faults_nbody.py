"""Faults of the N-body application (apps/nbody), issue 11: an unusable --out
on several ranks, every bad parameter, non-finite runs and their validation,
snapshots that standard readers (yt) select correctly, and softened Plummer
initial conditions at exactly E = -1/4 and Q = 1/2."""
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import h5py  # noqa: E402  (a test dependency)

from conftest import HERE, clean_env, one_error_line, run_mpi  # noqa: E402

APP = HERE.parent / "apps" / "nbody"
sys.path.insert(0, str(APP))

import ics  # noqa: E402

# every run here is small: a run that should have been refused must not take long either
SMALL = ["--n", "16", "--t-end", "0", "--threads", "1", "--no-core", "--quiet"]


def write_ic(path, x, v, m, ids=None, time=0.0, **extra):
    """A minimal GADGET-layout snapshot, written with h5py (as another code would)."""
    n = len(m)
    with h5py.File(path, "w") as f:
        f.create_group("Header").attrs["Time"] = time
        g = f.create_group("PartType1")
        g["Coordinates"] = np.asarray(x, np.float64)
        g["Velocities"] = np.asarray(v, np.float64)
        g["Masses"] = np.asarray(m, np.float64)
        g["ParticleIDs"] = np.arange(n, dtype=np.uint64) if ids is None else np.asarray(ids)
        for k, val in extra.items():
            f["Header"].attrs[k] = val
    return path


def good_ic(n=4):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 3)), 0.1 * rng.normal(size=(n, 3)), np.full(n, 1.0 / n)


# ---- item 7: an unusable --out, on two ranks --------------------------------------------------

def _out_cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory\n")
    return {
        "cannot-create": "/proc/x",                # under a directory where nothing can be made
        "a-file": str(a_file),                     # a file in place of a directory (like /etc/passwd)
        "read-only-dir": "/proc",                  # a directory that exists but takes no files
        "parent-is-a-file": str(a_file / "sub"),   # a path under a parent that cannot be created
        "empty": "",
    }


@pytest.mark.parametrize("case", ["cannot-create", "a-file", "read-only-dir", "parent-is-a-file", "empty"])
def test_unusable_out_is_one_line_on_every_rank(tmp_path, case):
    out = _out_cases(tmp_path)[case]
    # BAOBAB_TIMEOUT stays far above the test's limit: a rank left waiting for the others hangs the test
    p = run_mpi(2, APP / "nbody.py", *SMALL, "--out", out, env={"BAOBAB_TIMEOUT": "600"}, timeout=120,
                expect_rc=2)
    line = one_error_line(p.stdout)
    assert line.startswith("nbody: error: --out") and (repr(out) in line or out in line), line


# ---- item 10: every parameter checked, one line, exit 2 ---------------------------------------

BAD = {
    # name: (arguments, text the one line must hold)
    "n-1": (["--n", "1"], "--n"),
    "n-negative": (["--n", "-5"], "--n"),
    "n-not-an-int": (["--n", "1e13"], "--n"),
    "n-too-many": (["--n", "10000000000000"], "--n"),
    "seed-negative": (["--seed", "-1"], "--seed"),
    "imf-unknown": (["--imf", "foo"], "--imf"),
    "mmin-zero": (["--imf", "salpeter", "--mmin", "0"], "--mmin"),
    "mmin-nan": (["--imf", "salpeter", "--mmin", "nan"], "--mmin"),
    "mmax-below-mmin": (["--imf", "salpeter", "--mmin", "5", "--mmax", "2"], "--mmax"),
    "mmax-inf": (["--imf", "powerlaw", "--mmax", "inf"], "--mmax"),
    "alpha-nan": (["--imf", "powerlaw", "--alpha", "nan"], "--alpha"),
    "alpha-inf": (["--alpha", "inf"], "--alpha"),
    "imf-overflows": (["--imf", "powerlaw", "--mmin", "1e-300", "--alpha", "3"], "--imf"),
    "e-above-1": (["--ic", "kepler", "--e", "1.5"], "--e"),
    "e-negative": (["--ic", "kepler", "--e", "-0.1"], "--e"),
    "e-nan": (["--ic", "kepler", "--e", "nan"], "--e"),
    "t-end-nan": (["--t-end", "nan"], "--t-end"),
    "t-end-inf": (["--t-end", "inf"], "--t-end"),
    "t-end-negative": (["--t-end", "-1"], "--t-end"),
    "t-end-not-a-multiple": (["--t-end", "0.3"], "--t-end"),
    "dt-out-nan": (["--dt-out", "nan"], "--dt-out"),
    "dt-out-zero": (["--dt-out", "0"], "--dt-out"),
    "dt-out-negative": (["--dt-out", "-0.125"], "--dt-out"),
    "dt-out-not-a-power-of-two": (["--dt-out", "0.1"], "--dt-out"),
    "dt-out-too-small": (["--dt-out", str(2.0 ** -60)], "--dt-out"),
    "dt-out-inf": (["--dt-out", "inf"], "--dt-out"),
    "eta-nan": (["--eta", "nan"], "--eta"),
    "eta-zero": (["--eta", "0"], "--eta"),
    "eta-inf": (["--eta", "inf"], "--eta"),
    "eta-s-nan": (["--eta-s", "nan"], "--eta-s"),
    "eta-s-negative": (["--eta-s", "-1"], "--eta-s"),
    "eps-nan": (["--eps", "nan"], "--eps"),
    "eps-negative": (["--eps", "-0.1"], "--eps"),
    "eps-inf": (["--eps", "inf"], "--eps"),
    "eps-too-large-for-plummer": (["--eps", "2"], "--eps"),
    "threads-negative": (["--threads", "-3"], "--threads"),
    "threads-zero": (["--threads", "0"], "--threads"),
    "threads-absurd": (["--threads", "10000000"], "--threads"),
    "parallel-unknown": (["--parallel", "bogus"], "--parallel"),
    "restart-unknown": (["--restart", "maybe"], "--restart"),
    "keep-zero": (["--keep", "0"], "--keep"),
    "checkpoint-wall-nan": (["--checkpoint-wall", "nan"], "--checkpoint-wall"),
    "checkpoint-wall-negative": (["--checkpoint-wall", "-1"], "--checkpoint-wall"),
    "stop-after-steps-negative": (["--stop-after-steps", "-1"], "--stop-after-steps"),
    "unknown-option": (["--bogus-option"], "--bogus-option"),
    "ic-missing": (["--ic", "{tmp}/missing.h5"], "--ic"),
    "ic-a-directory": (["--ic", "{tmp}"], "--ic"),
    "ic-not-hdf5": (["--ic", "{tmp}/text.h5"], "--ic"),
    "ic-no-particles": (["--ic", "{tmp}/empty.h5"], "--ic"),
    "ic-nan-velocity": (["--ic", "{tmp}/nan_v.h5"], "--ic"),
    "ic-inf-coordinate": (["--ic", "{tmp}/inf_x.h5"], "--ic"),
    "ic-shapes-disagree": (["--ic", "{tmp}/shapes.h5"], "--ic"),
    "ic-one-body": (["--ic", "{tmp}/one.h5"], "--ic"),
    "ic-negative-mass": (["--ic", "{tmp}/neg_m.h5"], "--ic"),
    "ic-duplicate-ids": (["--ic", "{tmp}/dup.h5"], "--ic"),
    "ic-time-nan": (["--ic", "{tmp}/t_nan.h5"], "--ic"),
    "ic-time-off-the-grid": (["--ic", "{tmp}/t_off.h5", "--t-end", "1"], "--dt-out"),
    "ic-after-t-end": (["--ic", "{tmp}/t_late.h5", "--t-end", "0.25"], "--t-end"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every BAD case through nbody.main() in ONE Python process (a subprocess per case
    would cost a second each): its exit code and what it printed on stderr."""
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "text.h5").write_text("not an HDF5 file\n")
    with h5py.File(tmp / "empty.h5", "w") as f:
        f.create_group("Header")
    x, v, m = good_ic()
    write_ic(tmp / "nan_v.h5", x, np.where(np.arange(12).reshape(4, 3) == 5, np.nan, v), m)
    write_ic(tmp / "inf_x.h5", np.where(np.arange(12).reshape(4, 3) == 0, np.inf, x), v, m)
    write_ic(tmp / "shapes.h5", x, v[:3], m)
    write_ic(tmp / "one.h5", x[:1], v[:1], m[:1])
    write_ic(tmp / "neg_m.h5", x, v, -m)
    write_ic(tmp / "dup.h5", x, v, m, ids=np.array([0, 1, 1, 2], np.uint64))
    write_ic(tmp / "t_nan.h5", x, v, m, time=float("nan"))
    write_ic(tmp / "t_off.h5", x, v, m, time=0.1)
    write_ic(tmp / "t_late.h5", x, v, m, time=0.5)
    cases = {name: [a.replace("{tmp}", str(tmp)) for a in args] + ["--out", str(tmp / f"out-{name}")]
             for name, (args, _) in BAD.items()}
    driver = tmp / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import contextlib, io, json, sys, traceback
        sys.path.insert(0, {str(APP)!r})
        import nbody
        small, cases, result = {SMALL!r}, json.loads(sys.argv[1]), {{}}
        for name, args in cases.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                try:
                    rc = nbody.main(small + args)
                except SystemExit as e:
                    rc = e.code
                except BaseException:
                    rc = "exception"
                    traceback.print_exc(file=err)
            result[name] = [rc, err.getvalue()]
        print(json.dumps(result))
        """))
    p = subprocess.run([sys.executable, driver, json.dumps(cases)], capture_output=True, text=True,
                       env=clean_env(), timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(BAD))
def test_bad_parameter_is_one_line_and_exit_2(bad_runs, name):
    rc, err = bad_runs[name]
    needle = BAD[name][1]
    assert rc == 2, (rc, err)
    line = one_error_line(err)
    assert line.startswith("nbody: error: ") and needle in line, line


def test_bad_parameter_from_the_command_line(tmp_path):
    """The script itself (not only main()): one line, exit 2, no traceback, no usage block."""
    p = subprocess.run([sys.executable, APP / "nbody.py", *SMALL, "--eta", "nan", "--out", tmp_path / "o"],
                       capture_output=True, text=True, env=clean_env(), timeout=120)
    assert p.returncode == 2 and "--eta" in one_error_line(p.stderr), p.stderr
    p = subprocess.run([sys.executable, APP / "nbody.py", "--n", "1e13", "--out", tmp_path / "o"],
                       capture_output=True, text=True, env=clean_env(), timeout=120)
    assert p.returncode == 2 and "--n" in one_error_line(p.stderr), p.stderr
    # on two ranks: one line (rank 0's), both ranks out at once
    p = run_mpi(2, APP / "nbody.py", *SMALL, "--threads", "-3", "--out", tmp_path / "o", timeout=120, expect_rc=2)
    assert "--threads" in one_error_line(p.stdout), p.stdout


@pytest.mark.parametrize("var,value", [("BAOBAB_NBODY_SPLIT", "sometimes"), ("BAOBAB_NBODY_ISA", "avx9")])
def test_bad_app_variable_is_one_line_and_exit_2(tmp_path, var, value):
    """The app's own variables (the runtime does not know BAOBAB_NBODY_SPLIT) are
    checked before the run starts: one line naming the variable, exit 2 on every
    rank. (The runtime refuses a bad BAOBAB_NBODY_ISA already, as any *_ISA cap,
    when the communicator is made; the app reports that the same way.)"""
    p = run_mpi(2, APP / "nbody.py", *SMALL, "--out", tmp_path / "o", env={var: value}, timeout=120, expect_rc=2)
    line = one_error_line(p.stdout)
    assert line.startswith("nbody: error: ") and f"{var}='{value}'" in line, line


# ---- item 11: non-finite runs stop, and the validator fails on NaN ----------------------------

def test_nonfinite_energy_stops_every_rank(tmp_path):
    """Two bodies at one place without softening: the potential is infinite. Every rank
    stops at once with one line naming the energy; no snapshot of the state is written."""
    x, v, m = good_ic(6)
    x[4] = x[1]
    ic = write_ic(tmp_path / "coincident.h5", x, v, m)
    out = tmp_path / "run"
    p = run_mpi(2, APP / "nbody.py", "--ic", ic, "--t-end", "0.125", "--threads", "1", "--quiet", "--out", out,
                env={"BAOBAB_TIMEOUT": "600"}, timeout=120, expect_rc=4)
    line = one_error_line(p.stdout)
    assert line.startswith("nbody: error: ") and "energy" in line and "t=0" in line, line
    assert not list(out.glob("snapshot_*.h5"))


@pytest.mark.parametrize("check,extra", [("energy", []), ("forces", ["--stop-after-steps", "100000"])])
def test_nonfinite_state_in_mid_run_stops_the_run(tmp_path, check, extra):
    """Finite initial conditions whose arithmetic overflows later: a body flying off at
    1e154 (its kinetic energy is finite, 2.5e307) is 1e154 away at t = 1, where the
    products in its jerk overflow and the state becomes NaN. The run stops there on
    every rank (exit 4, one line), after the good output at t = 0: at the output's
    energy check, or (ranks agreeing every step with --stop-after-steps) at the
    step's check of the forces."""
    x = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    v = np.array([[0.0, 0.0, 0.0], [1e154, 0.0, 0.0]])
    ic = write_ic(tmp_path / "flyaway.h5", x, v, np.array([0.5, 0.5]))
    out = tmp_path / "run"
    p = run_mpi(2, APP / "nbody.py", "--ic", ic, "--t-end", "4", "--dt-out", "1", "--threads", "1", "--quiet",
                "--out", out, *extra, env={"BAOBAB_TIMEOUT": "600"}, timeout=120, expect_rc=4)
    line = one_error_line(p.stdout)
    assert "non-finite" in line and check in line and "t=1.0" in line, line
    assert sorted(s.name for s in out.glob("snapshot_*.h5")) == ["snapshot_0000.h5"]


def test_block_time_that_cannot_advance_stops_the_run(tmp_path):
    """At t = 2^50 a step below 2^-3 is lost to rounding (t + dt == t): the run stops
    with one line (exit 4) instead of stepping in place for ever."""
    x, v, m = good_ic(8)
    ic = write_ic(tmp_path / "late.h5", x, v, m, time=2.0 ** 50)
    p = subprocess.run([sys.executable, APP / "nbody.py", "--ic", ic, "--t-end", str(2.0 ** 50 + 1), "--dt-out",
                        "1", "--threads", "1", "--quiet", "--out", tmp_path / "run"],
                       capture_output=True, text=True, env=clean_env(), timeout=120)
    assert p.returncode == 4 and "no longer advances" in one_error_line(p.stderr), p.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small good run (one rank, no mpiexec): 256 bodies to t = 0.125."""
    out = tmp_path_factory.mktemp("small") / "run"
    p = subprocess.run([sys.executable, APP / "nbody.py", "--n", "256", "--t-end", "0.125", "--threads", "1",
                        "--quiet", "--out", out], capture_output=True, text=True, env=clean_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    return out


def validate(run_dir):
    return subprocess.run([sys.executable, APP / "validate.py", run_dir], capture_output=True, text=True,
                          timeout=120)


def test_validate_passes_a_good_run(small_run):
    v = validate(small_run)
    assert v.returncode == 0 and "Verification: PASS" in v.stdout, v.stdout + v.stderr


@pytest.mark.parametrize("dataset", ["Coordinates", "Velocities", "Potential"])
def test_validate_fails_on_nan_in_a_snapshot(small_run, tmp_path, dataset):
    run = shutil.copytree(small_run, tmp_path / "run")
    with h5py.File(run / "snapshot_0001.h5", "r+") as f:
        d = f["PartType1"][dataset]
        a = d[:]
        a.reshape(-1)[7] = np.nan
        d[...] = a
    v = validate(run)
    assert v.returncode == 1 and "Verification: FAIL" in v.stdout and "non-finite" in v.stdout, v.stdout
    assert dataset in v.stdout and "Traceback" not in v.stderr, v.stdout + v.stderr


@pytest.mark.parametrize("series", ["energy", "de_rel", "virial"])
def test_validate_fails_on_nan_in_the_energy_series(small_run, tmp_path, series):
    run = shutil.copytree(small_run, tmp_path / "run")
    with h5py.File(run / "diagnostics.h5", "r+") as f:
        a = f[series][:]
        a[-1] = np.nan
        f[series][...] = a
    v = validate(run)
    assert v.returncode == 1 and "Verification: FAIL" in v.stdout and series in v.stdout, v.stdout
    assert "Traceback" not in v.stderr, v.stderr


def test_validate_fails_on_coordinates_outside_the_box(small_run, tmp_path):
    run = shutil.copytree(small_run, tmp_path / "run")
    with h5py.File(run / "snapshot_0000.h5", "r+") as f:
        a = f["PartType1/Coordinates"][:]
        a[3, 1] = -1.0
        f["PartType1/Coordinates"][...] = a
    v = validate(run)
    assert v.returncode == 1 and "BoxSize" in v.stdout, v.stdout


# ---- item 16: snapshots that GADGET/SWIFT readers (yt) select correctly ------------------------

def test_yt_region_selection_equals_a_direct_count(small_run):
    import yt  # a test dependency (pip install baobab[test])
    yt.set_log_level(50)
    path = small_run / "snapshot_0001.h5"
    with h5py.File(path, "r") as f:
        x = f["PartType1/Coordinates"][:]
        box = float(f["Header"].attrs["BoxSize"])
        shift = np.asarray(f["Header"].attrs.get("Shift", np.zeros(3)), np.float64)
    n = len(x)
    ds = yt.load(str(path))
    # boxes around the cluster's centre of mass (its origin, at Shift in the file), on and off it
    boxes = [(-1.0, 1.0), (-0.5, 0.3), (-3.0, 0.2), (0.05, 2.5), (-0.2, -0.01)]
    for lo, hi in boxes:
        left, right = shift + lo, shift + hi
        selected = ds.box(ds.arr(left, "code_length"), ds.arr(right, "code_length"))
        n_yt = len(selected["PartType1", "particle_position_x"])
        n_direct = int(np.sum(np.all((x >= left) & (x < right), axis=1)))
        assert 0 < n_direct < n and n_yt == n_direct, (lo, hi, n_yt, n_direct)
    everything = ds.all_data()
    assert len(everything["PartType1", "particle_position_x"]) == n
    assert np.all(x >= 0) and np.all(x < box)              # GADGET/SWIFT: the domain is [0, BoxSize)
    assert np.allclose(ds.domain_left_edge.to_value("code_length"), 0.0)
    assert np.allclose(ds.domain_right_edge.to_value("code_length"), box)


def test_snapshot_positions_come_back_from_the_shift(tmp_path):
    """The app's reader subtracts Header/Shift: positions to within the box's float64
    resolution, and writing what it read gives the same file coordinates again."""
    from snapshot import write_snapshot
    d = ics.plummer(200, seed=9)
    write_snapshot(tmp_path / "a.h5", d["x"], d["v"], d["m"], d["ids"], 0.0)
    back = ics.from_snapshot(tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        box = float(f["Header"].attrs["BoxSize"])
        stored = f["PartType1/Coordinates"][:]
    assert np.abs(back["x"] - d["x"]).max() <= box * 2.0 ** -53
    assert np.array_equal(back["v"], d["v"]) and np.array_equal(back["m"], d["m"])
    write_snapshot(tmp_path / "b.h5", back["x"], back["v"], back["m"], back["ids"], 0.0)
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert np.array_equal(f["PartType1/Coordinates"][:], stored)


# ---- item 17: softened Plummer initial conditions exactly at E = -1/4, Q = 1/2 ----------------

@pytest.mark.parametrize("eps", [0.1, 0.0])
def test_plummer_is_exactly_at_e_and_q_with_the_softened_potential(eps):
    d = ics.plummer(64, seed=1, eps=eps)
    kin, pot = ics.energies(d["x"], d["v"], d["m"], eps)
    assert abs(kin + pot + 0.25) < 1e-14, kin + pot
    assert abs(kin / abs(pot) - 0.5) < 1e-14, kin / abs(pot)


def test_plummer_softening_too_large_for_the_units_is_refused():
    # W = -1/2 needs sum_{i<j} m_i m_j / eps > 1/2 at the least: eps < 1 - sum m^2
    with pytest.raises(ValueError, match="eps"):
        ics.plummer(64, seed=1, eps=1.0)
