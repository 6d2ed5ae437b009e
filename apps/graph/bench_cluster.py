"""BFS across hosts: node-aggregated exchange against a flat one, on the
namespace cluster of slurm/testbed/cluster.sh (root; `cluster.sh install`).

    python apps/graph/bench_cluster.py --scale 18 --rate 1gbit [--hosts 2 --per-host 2]

Brings up HOSTS network-namespace hosts joined by RATE links, runs
apps/graph/graph500.py on HOSTS x PER_HOST ranks (MPICH's mpiexec over the
namespace launcher) three times -- the selector's choice (auto), the frontier
and edge exchanges forced node-aggregated (allgather=hier, alltoall=hier,
allreduce=leader) and forced flat (allgather=ring, alltoall=pairwise,
allreduce=recursive_doubling) -- and prints each run's BFS harmonic-mean TEPS,
kernel 1 time and the ratios. Takes the hosts down at the end."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLUSTER = REPO / "slurm" / "testbed" / "cluster.sh"
sys.path.insert(0, str(HERE))

VARIANTS = {
    "auto": "",
    "node-aggregated": "allgather=hier,alltoall=hier,allreduce=leader",
    "flat": "allgather=ring,alltoall=pairwise,allreduce=recursive_doubling",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=18)
    ap.add_argument("--nbfs", type=int, default=16)
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--per-host", type=int, default=2)
    ap.add_argument("--rate", default="1gbit")
    a = ap.parse_args()
    import graph500
    base = Path(os.environ.get("BASE", "/tmp/baobab-testbed-bench"))
    env = dict(os.environ, BASE=str(base))
    subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True)
    subprocess.run([str(CLUSTER), "ns-up", str(a.hosts), a.rate], env=env, check=True, capture_output=True)
    nsrsh = base / "ns" / "nsrsh"
    binp = Path(sys.executable).parent
    spec = ",".join(f"host{i + 1}:{a.per_host}" for i in range(a.hosts))
    n = a.hosts * a.per_host
    results = {}
    try:
        for name, algo in VARIANTS.items():
            envs = f"BAOBAB_ALGO={algo}" if algo else ""
            line = (f"cd {REPO} && PATH={binp}:$PATH {envs} {binp}/mpiexec -launcher ssh -launcher-exec {nsrsh} "
                    f"-hosts {spec} -n {n} {sys.executable} {HERE / 'graph500.py'} --scale {a.scale} "
                    f"--nbfs {a.nbfs} --no-validate --no-sssp --out -")
            p = subprocess.run([str(nsrsh), "host1", line], capture_output=True, text=True, timeout=3600)
            if p.returncode:
                raise SystemExit(f"bench_cluster: {name} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
            st = graph500.parse_block(p.stdout)
            results[name] = st
            print(f"{name:16s} BFS {st['bfs harmonic_mean_TEPS'] / 1e6:8.1f} MTEPS (median "
                  f"{st['bfs median_time'] * 1e3:.2f} ms), kernel 1 {st['construction_time']:.2f} s", flush=True)
    finally:
        subprocess.run([str(CLUSTER), "down"], env=env, capture_output=True)
    agg, flat = results["node-aggregated"], results["flat"]
    print(f"{a.hosts} hosts x {a.per_host} ranks, {a.rate} links, SCALE {a.scale}: node-aggregated / flat BFS TEPS = "
          f"{agg['bfs harmonic_mean_TEPS'] / flat['bfs harmonic_mean_TEPS']:.2f}x; kernel 1 flat / aggregated = "
          f"{flat['construction_time'] / agg['construction_time']:.2f}x; auto / flat = "
          f"{results['auto']['bfs harmonic_mean_TEPS'] / flat['bfs harmonic_mean_TEPS']:.2f}x")


if __name__ == "__main__":
    main()
