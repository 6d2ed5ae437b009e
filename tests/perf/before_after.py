"""Before/after benchmark of two builds of baobab in one run.

usage: python tests/perf/before_after.py BEFORE_DIR [ROUNDS]

BEFORE_DIR is a directory an older build was installed into with
`pip install --no-deps --target BEFORE_DIR .` (from a checkout of the old
commit); "after" is the build installed in the running environment. Each round
runs `baobab bench <coll> -b 8 -e 8M -f 16` for both builds, alternately (the
order swaps every round), plus an 8-byte allreduce of 20 000 calls; the table
gives per size the medians over the rounds, after/before, the MPI library's
median time, and the minima.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
PY, MX = sys.executable, str(BIN / "mpiexec")
CFGS = [(2, "allreduce"), (2, "bcast"), (2, "reduce"), (2, "allgather"), (2, "reduce_scatter"), (2, "alltoall"),
        (4, "allreduce")]


def bench(env, n, coll, args):
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run([MX, "-n", str(n), PY, "-m", "baobab", "bench", coll] + args, capture_output=True,
                         text=True, env=e, timeout=300, check=True).stdout
    rows = {}
    for line in out.splitlines():
        if line.strip() and not line.startswith("#"):
            f = line.split()
            if int(f[9]) != 0:
                raise SystemExit(f"wrong results: {line}")
            rows[int(f[0])] = (float(f[6]), float(f[10]))
    return rows


def main():
    builds = {"before": {"PYTHONPATH": sys.argv[1]}, "after": {}}
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    res = {}
    for r in range(rounds):
        order = list(builds.items()) if r % 2 == 0 else list(builds.items())[::-1]
        jobs = [(n, c, ["-b", "8", "-e", "8M", "-f", "16"]) for n, c in CFGS]
        jobs.append((2, "allreduce", ["-b", "8", "-e", "8", "-n", "20000", "-d", "float64"]))
        for i, (n, coll, args) in enumerate(jobs):
            name = coll if i < len(CFGS) else "allreduce-8B-20000"
            for b, env in order:
                for size, (t, mpi) in bench(env, n, coll, args).items():
                    res.setdefault((n, name, size, b), []).append(t)
                    res.setdefault((n, name, size, "mpi"), []).append(mpi)
    print(f"{'n':>2} {'collective':>18} {'size':>8} {'before':>9} {'after':>9} {'ratio':>6} {'mpi':>9} "
          f"{'min before':>10} {'min after':>9}")
    for k in sorted({k[:3] for k in res}):
        bf, af = statistics.median(res[k + ("before",)]), statistics.median(res[k + ("after",)])
        print(f"{k[0]:>2} {k[1]:>18} {k[2]:>8} {bf:9.2f} {af:9.2f} {af / bf:6.2f} "
              f"{statistics.median(res[k + ('mpi',)]):9.2f} {min(res[k + ('before',)]):10.2f} "
              f"{min(res[k + ('after',)]):9.2f}")
    Path("before_after.json").write_text(json.dumps({"|".join(map(str, k)): v for k, v in res.items()}))


if __name__ == "__main__":
    main()
