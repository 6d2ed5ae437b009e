"""The N-body application (apps/nbody): physics checks of the integrator, the
run driver under mpiexec (1, 2 and 4 ranks), its HDF5 snapshots, restarts from
checkpoints (bit for bit), a truncated checkpoint, and configuration errors
(--device without a GPU among them; device runs are tested in test_gpu.py)."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import h5py  # noqa: E402  (a test dependency: pip install baobab[test])

from conftest import HERE, clean_env, mpiexec_path, mpi_flavor  # noqa: E402

APP = HERE.parent / "apps" / "nbody"
sys.path.insert(0, str(APP))

import ics  # noqa: E402
from hermite import Hermite  # noqa: E402


def run_app(n, *args, timeout=600, expect=0):
    cmd = [mpiexec_path(), "-n", str(n)]
    if mpi_flavor() == "openmpi":
        cmd += ["--oversubscribe"]
    cmd += [sys.executable, str(APP / "nbody.py"), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=timeout)
    assert p.returncode == expect, f"{cmd} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p


def snapshot(path):
    with h5py.File(path, "r") as f:
        return {k: np.asarray(f["PartType1"][k]) for k in f["PartType1"]}, dict(f["Header"].attrs)


# ---- integrator physics (in process, one rank) --------------------------------------------------

def test_kepler_orbit_conserves_energy_over_ten_orbits():
    k = ics.kepler(e=0.5)
    h = Hermite(k["x"], k["v"], k["m"], eta=0.0002, dt_max=1.0)
    h.initialize()
    e0 = sum(ics.energies(h.x, h.v, h.m))
    period = k["params"]["period"]
    t_end = 64.0  # 10.2 orbits
    assert t_end > 10 * period
    h.evolve(t_end)
    e1 = sum(ics.energies(h.x, h.v, h.m))
    assert h.synchronized() and h.time == t_end
    assert abs((e1 - e0) / e0) < 1e-9, abs((e1 - e0) / e0)
    # the orbit closes: separation after whole periods is back near apocentre (1 + e)
    sep = np.linalg.norm(h.x[1] - h.x[0])
    assert 0.5 <= sep <= 1.5 + 1e-6


def test_block_steps_are_commensurate_powers_of_two():
    d = ics.plummer(64, seed=3)
    h = Hermite(d["x"], d["v"], d["m"], eta=0.02, dt_max=0.125)
    h.initialize()
    for _ in range(200):
        h.step()
        assert np.all(np.frexp(h.dt)[0] == 0.5)            # powers of two
        assert np.all(np.fmod(h.t, h.dt) == 0.0)            # each body's time is a multiple of its step
        assert np.all(h.dt <= 0.125)
    assert len(np.unique(h.dt)) > 1                         # really hierarchical


def test_plummer_energy_virial_and_momentum():
    d = ics.plummer(1024, seed=1)
    h = Hermite(d["x"], d["v"], d["m"], eta=0.02, dt_max=0.125)
    h.initialize()
    e0 = sum(ics.energies(h.x, h.v, h.m))
    p0 = np.sum(h.m[:, None] * h.v, axis=0)
    assert abs(e0 + 0.25) < 1e-12
    h.evolve(1.0)
    kin, pot = ics.energies(h.x, h.v, h.m)
    assert abs((kin + pot - e0) / e0) < 1e-5
    assert abs(kin / abs(pot) - 0.5) < 0.05
    # individual steps break Newton's third law between bodies at different
    # times: momentum drifts at the integration error, not at round-off
    p1 = np.sum(h.m[:, None] * h.v, axis=0)
    assert np.abs(p1 - p0).max() < 1e-6, p1 - p0


def test_shared_steps_conserve_momentum_to_round_off():
    d = ics.plummer(256, seed=4)
    h = Hermite(d["x"], d["v"], d["m"], eta=0.02, dt_max=0.125, shared=True)
    h.initialize()
    p0 = np.sum(h.m[:, None] * h.v, axis=0)
    l0 = np.sum(h.m[:, None] * np.cross(h.x, h.v), axis=0)
    h.evolve(0.5)
    p1 = np.sum(h.m[:, None] * h.v, axis=0)
    assert h.steps > 50
    assert np.abs(p1 - p0).max() < 1e-14 * h.steps, (p1 - p0, h.steps)
    l1 = np.sum(h.m[:, None] * np.cross(h.x, h.v), axis=0)
    assert np.abs(l1 - l0).max() < 1e-8  # angular momentum: to the integration error


def test_shared_steps_match_block_steps_closely():
    d = ics.plummer(128, seed=5)
    runs = []
    for shared in (False, True):
        h = Hermite(d["x"], d["v"], d["m"], eta=0.01, dt_max=0.0625, shared=shared)
        h.initialize()
        h.evolve(0.25)
        runs.append((h.x.copy(), h.steps, len(np.unique(h.dt))))
    assert runs[1][2] == 1                                  # one step for everybody
    assert np.abs(runs[0][0] - runs[1][0]).max() < 1e-5
    assert runs[1][1] > runs[0][1] / 50                     # shared mode takes its own (smallest) steps


def test_plummer_sample_statistics():
    d = ics.plummer(4096, seed=7)
    r = np.linalg.norm(d["x"], axis=1)
    kin, pot = ics.energies(d["x"], d["v"], d["m"])
    assert abs(kin + pot + 0.25) < 1e-12 and abs(kin / abs(pot) - 0.5) < 1e-12
    # half-mass radius of a Plummer sphere in Hénon units: 0.769 (sampling noise ~3 %)
    assert abs(np.median(r) - 0.769) < 0.05
    assert np.abs(np.sum(d["m"][:, None] * d["v"], axis=0)).max() < 1e-15
    d2 = ics.plummer(4096, seed=7)
    assert np.array_equal(d["x"], d2["x"])                  # seeded: reproducible
    s = ics.plummer(2000, seed=2, imf="salpeter")
    assert abs(s["m"].sum() - 1) < 1e-12 and s["m"].max() / s["m"].min() > 50


# ---- the application under mpiexec ---------------------------------------------------------------

@pytest.mark.parametrize("parallel", ["igather", "jreduce", "ring"])
def test_rank_counts_agree(tmp_path, parallel):
    finals = {}
    for n in (1, 2, 3, 4):
        out = tmp_path / f"{parallel}-{n}"
        run_app(n, "--n", 256, "--t-end", 0.25, "--dt-out", 0.125, "--parallel", parallel, "--threads", 1,
                "--out", out, "--quiet")
        finals[n], _ = snapshot(out / "snapshot_0002.h5")
    for n in (2, 3, 4):
        x1, xn = finals[1]["Coordinates"], finals[n]["Coordinates"]
        if parallel == "igather":  # every body's force summed in the same order: identical bits
            assert np.array_equal(x1, xn), np.abs(x1 - xn).max()
        else:
            assert np.abs(x1 - xn).max() <= 1e-9 * np.abs(x1).max()


def test_snapshot_layout_and_diagnostics(tmp_path):
    out = tmp_path / "run"
    p = run_app(2, "--n", 300, "--t-end", 0.25, "--dt-out", 0.125, "--out", out, "--threads", 1)
    assert "dE/E=" in p.stderr and "int/s" in p.stderr
    snaps = sorted(out.glob("snapshot_*.h5"))
    assert [s.name for s in snaps] == ["snapshot_0000.h5", "snapshot_0001.h5", "snapshot_0002.h5"]
    with h5py.File(snaps[-1], "r") as f:
        hd = f["Header"].attrs
        assert list(hd["NumPart_ThisFile"]) == [0, 300, 0, 0, 0, 0]
        assert list(hd["NumPart_Total"]) == [0, 300, 0, 0, 0, 0]
        assert list(hd["NumPart_Total_HighWord"]) == [0] * 6
        assert list(hd["MassTable"]) == [0.0] * 6
        assert hd["Time"] == 0.25 and hd["NumFilesPerSnapshot"] == 1 and hd["Redshift"] == 0.0
        assert hd["BoxSize"] > 0
        assert "Unit length in cgs (U_L)" in f["Units"].attrs
        assert f["Parameters"].attrs["n"] == 300
        g = f["PartType1"]
        assert g["Coordinates"].shape == (300, 3) and g["Velocities"].shape == (300, 3)
        assert g["Masses"].shape == (300,) and g["Potential"].shape == (300,)
        assert g["ParticleIDs"].dtype == np.uint64
        assert np.array_equal(np.sort(g["ParticleIDs"][:]), np.arange(300))
        assert all(g[k].fletcher32 for k in g)
        assert f.attrs["creator"] == "baobab" and "git_commit" in f.attrs and "created" in f.attrs
        m, pot, x = g["Masses"][:], g["Potential"][:], g["Coordinates"][:]
        # the stored potential is the potential of the stored positions (all bodies synchronised)
        d = x[:, None, :] - x[None, :, :]
        r = np.sqrt((d ** 2).sum(-1))
        np.fill_diagonal(r, np.inf)
        assert np.allclose(pot, -(m[None, :] / r).sum(1), rtol=1e-6)
    with h5py.File(out / "diagnostics.h5", "r") as f:
        assert list(f["time"][:]) == [0.0, 0.125, 0.25]
        assert f["de_rel"][-1] < 1e-5 and f["lagrangian_radii"].shape == (3, 3)
        assert np.all(np.diff(f["lagrangian_radii"][0]) > 0)           # r10 < r50 < r90
        assert f["interactions_per_s"][-1] > 0
    v = subprocess.run([sys.executable, APP / "validate.py", out, "--virial", "0.5"], capture_output=True,
                       text=True)
    assert v.returncode == 0 and "Verification: PASS" in v.stdout, v.stdout
    import matplotlib  # noqa: F401  (a test dependency)
    a = subprocess.run([sys.executable, APP / "analyze.py", out], capture_output=True, text=True)
    assert a.returncode == 0, a.stderr
    for png in ("energy.png", "lagrangian.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_restart_continues_bit_for_bit(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    common = ["--n", 200, "--t-end", 0.375, "--dt-out", 0.125, "--threads", 1, "--quiet"]
    run_app(2, *common, "--out", ref)
    p = run_app(2, *common, "--out", cut, "--stop-after-steps", 150, expect=3)
    ckpts = sorted((cut / "checkpoints").glob("nbody-*.h5"))
    assert ckpts, p.stderr
    run_app(2, *common, "--out", cut)
    for i in range(4):
        a, _ = snapshot(ref / f"snapshot_{i:04d}.h5")
        b, _ = snapshot(cut / f"snapshot_{i:04d}.h5")
        for k in a:
            assert np.array_equal(a[k], b[k]), (i, k)
    with h5py.File(ref / "diagnostics.h5", "r") as f, h5py.File(cut / "diagnostics.h5", "r") as g:
        assert np.array_equal(f["energy"][:], g["energy"][:])


def test_truncated_checkpoint_is_skipped(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    common = ["--n", 150, "--t-end", 0.25, "--dt-out", 0.125, "--threads", 1, "--quiet"]
    run_app(1, *common, "--out", ref)
    run_app(1, *common, "--out", cut, "--stop-after-steps", 120, expect=3)
    newest = sorted((cut / "checkpoints").glob("nbody-*.h5"))[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    p = run_app(1, *common, "--out", cut)
    assert "nbody-" in p.stderr and ("skip" in p.stderr.lower() or "warn" in p.stderr.lower()), p.stderr
    a, _ = snapshot(ref / "snapshot_0002.h5")
    b, _ = snapshot(cut / "snapshot_0002.h5")
    assert np.array_equal(a["Coordinates"], b["Coordinates"])


@pytest.mark.parametrize("args,needle", [
    (["--n", "-5"], "--n must be at least 2"),
    (["--bogus-option"], "unrecognized arguments: --bogus-option"),
    (["--ic", "/nonexistent/ic.h5"], "no such file"),
    (["--dt-out", "0.1"], "--dt-out must be a power of two"),
    (["--t-end", "0.3", "--dt-out", "0.125"], "--t-end must be a non-negative multiple"),
])
def test_bad_configuration_is_a_one_line_error(tmp_path, args, needle):
    p = subprocess.run([sys.executable, APP / "nbody.py", *args, "--out", tmp_path / "x"], capture_output=True,
                       text=True, env=clean_env(), timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_device_without_a_gpu_is_a_one_line_error(tmp_path):
    import device
    try:
        device.probe()
    except device.DeviceUnavailable:
        pass
    else:
        pytest.skip("a CUDA device and cupy are present")
    p = subprocess.run([sys.executable, APP / "nbody.py", "--device", "--n", "64", "--out", tmp_path / "x"],
                       capture_output=True, text=True, env=clean_env(), timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbody: error: --device: "), p.stderr
    assert "no usable CUDA device" in lines[0] or "cupy is missing" in lines[0], p.stderr


def test_unreadable_snapshot_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    p = subprocess.run([sys.executable, APP / "nbody.py", "--ic", bad, "--out", tmp_path / "x"],
                       capture_output=True, text=True, env=clean_env(), timeout=120)
    assert p.returncode == 2 and "cannot read initial conditions" in p.stderr and "Traceback" not in p.stderr, \
        p.stderr


def test_start_from_snapshot_continues_the_run(tmp_path):
    out = tmp_path / "a"
    run_app(1, "--n", 100, "--t-end", 0.125, "--dt-out", 0.125, "--out", out, "--threads", 1, "--quiet")
    out2 = tmp_path / "b"
    run_app(1, "--ic", out / "snapshot_0001.h5", "--t-end", 0.25, "--dt-out", 0.125, "--out", out2,
            "--threads", 1, "--quiet")
    s, hd = snapshot(out2 / "snapshot_0002.h5")
    assert hd["Time"] == 0.25 and len(s["Masses"]) == 100
    first, _ = snapshot(out2 / "snapshot_0001.h5")
    prev, _ = snapshot(out / "snapshot_0001.h5")
    assert np.array_equal(first["Coordinates"], prev["Coordinates"])
