"""Run under mpiexec: non-blocking collectives overlap computation, several in
flight at once, waited in different orders on different ranks."""
import sys

import numpy as np

import baobab

comm = baobab.init(timeout=60)
r, p = comm.rank, comm.size
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print(f"rank {r}: FAILED {what}", flush=True)


# Several operations in flight, waited in reverse order on odd ranks.
xs = [np.full(1000 + 37 * i, r + i, np.float64) for i in range(6)]
works = [comm.iallreduce(x) for x in xs]
works.append(comm.iallgather(np.array([r], np.int64)))
works.append(comm.ibcast(np.arange(5.0) if r == 0 else np.zeros(5), root=0))
works.append(comm.ireduce_scatter(np.ones(3 * p)))
works.append(comm.ibarrier())
order = range(len(works)) if r % 2 == 0 else reversed(range(len(works)))
results = {i: works[i].wait(timeout=30) for i in order}
for i in range(6):
    check(np.array_equal(results[i], np.full(1000 + 37 * i, sum(q + i for q in range(p)), np.float64)),
          f"iallreduce {i}")
check(np.array_equal(results[6].reshape(-1), np.arange(p)), "iallgather")
check(np.array_equal(results[7], np.arange(5.0)), "ibcast")
check(np.array_equal(results[8], np.full(3, float(p))), "ireduce_scatter")

# Overlap: a large pipelined allreduce progresses while we compute and poll.
x = np.full(2_000_000, 1.0 + r, np.float32)
w = comm.iallreduce(x, algo="leader" if comm.topology.num_nodes > 1 else None)
polls = 0
acc = 0.0
while not w.test():
    acc += float(np.sum(np.sqrt(np.arange(20000, dtype=np.float64))))  # compute between polls
    polls += 1
y = w.wait()
check(np.all(y == sum(1.0 + q for q in range(p))), "overlapped iallreduce")
check(w.done, "done after wait")
print(f"rank {r}: polls={polls}", flush=True)

# A Work dropped without wait completes before its buffers are released.
for i in range(5):
    comm.iallreduce(np.full(100, r, np.int32))
y = comm.allreduce(np.full(3, 1, np.int32))
check(np.all(y == p), "allreduce after dropped works")

# Per-communicator counters.
s = comm.stats()
check(s["collectives"] > 10, f"stats collectives {s}")
if p > 1:
    check(s["bytes_sent"] > 0 and s["messages_sent"] > 0, f"stats bytes {s}")

total = comm.mpi_comm.allreduce(fails)
if r == 0:
    print("OK nonblocking" if total == 0 else f"FAILED nonblocking {total}", flush=True)
sys.exit(1 if total else 0)
