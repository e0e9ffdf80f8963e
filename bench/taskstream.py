"""What Dask's task stream says about a run: which task ran where and when, per stage and pool.

Task keys are `<stage>-<hash>` (bespoke_dask.graph), so a key names its stage; a stage names the
pool whose resource its task holds (None for the light scan steps and drawings, which run on
any worker's spare thread). Times are unix seconds (the workers' clocks: one machine here).
"""

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

from distributed import Client

from bespoke_dask import graph

STAGES = {
    stage.name: stage
    for stage in (graph.FRAGMENT, graph.TARGETS, graph.SCAN_START, graph.SCAN_ADVANCE, graph.QC, graph.QC_RESTART,
                  graph.CHARGES, graph.OPTIMIZE, graph.DRAW)
}


@dataclass(frozen=True)
class Task:
    """One run of one task on a worker (its compute interval only)."""

    key: str
    worker: str
    start: float
    stop: float

    @property
    def stage(self) -> str:
        return self.key.rsplit("-", 1)[0]

    @property
    def pool(self) -> str | None:
        stage = STAGES.get(self.stage)
        return None if stage is None else stage.pool

    @property
    def duration(self) -> float:
        return self.stop - self.start


def record(client: Client) -> float:
    """Make sure the scheduler records its task stream from now on; returns the time (s)."""
    client.get_task_stream(count=1)  # registers the scheduler's TaskStreamPlugin if missing
    return client.run_on_scheduler(_now)


def tasks(client: Client, since: float) -> list[Task]:
    """Every task computed since `since` (unix s), in order of start."""
    runs = []
    for entry in client.get_task_stream(start=since):
        for startstop in entry["startstops"]:
            if startstop["action"] == "compute" and startstop["start"] >= since:
                runs.append(Task(str(entry["key"]), entry["worker"], startstop["start"], startstop["stop"]))
    return sorted(runs, key=lambda task: task.start)


def count(runs: list[Task], stage: str) -> int:
    return sum(task.stage == stage for task in runs)


def slots(client: Client) -> dict[str, int]:
    """Tasks each pool runs at once: the sum of its resource over the workers."""
    total: dict[str, int] = defaultdict(int)
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        for pool, amount in worker.get("resources", {}).items():
            total[pool] += int(amount)
    return dict(total)


def busy(runs: list[Task]) -> dict[str, float]:
    """Task time (s) per pool, light tasks under None."""
    time: dict[str | None, float] = defaultdict(float)
    for task in runs:
        time[task.pool] += task.duration
    return dict(time)


def idle_fractions(runs: list[Task], pool_slots: dict[str, int], makespan: float) -> dict[str, float]:
    """Per pool: the share of its slots' time (over the makespan) holding no task."""
    time = busy(runs)
    return {pool: 1 - time.get(pool, 0.0) / (n * makespan) for pool, n in pool_slots.items()}


def lower_bound(runs: list[Task], longest_chain: float, cores: int) -> float:
    """max(longest chain of dependent work, total task time / cores), seconds."""
    return max(longest_chain, sum(task.duration for task in runs) / cores)


def by_key(runs: list[Task]) -> dict[str, Task]:
    """The last run of each key (a key that ran twice shows up in `repeated`)."""
    return {task.key: task for task in runs}


def repeated(runs: list[Task]) -> dict[str, int]:
    """Keys computed more than once, with how often."""
    times: dict[str, int] = defaultdict(int)
    for task in runs:
        times[task.key] += 1
    return {key: n for key, n in times.items() if n > 1}


def chain_time(steps: list[list[str]], known: dict[str, Task]) -> float:
    """Time of a chain of steps, each a group of independent tasks: sum of each step's longest task."""
    return sum(max((known[key].duration for key in step if key in known), default=0.0) for step in steps)


def gaps(steps: list[list[str]], known: dict[str, Task]) -> list[tuple[float, Task]]:
    """Hand-offs along a chain: from the end of one step's last task to the first start after it in
    the next step (s), with that task.

    Steps with no task in the stream (served by the store) are skipped, and so are tasks started
    before the step ahead of them ended (a scan's jobs started ahead): nothing waited for them.
    """
    present = [[known[key] for key in step if key in known] for step in steps]
    present = [step for step in present if step]
    handoffs = []
    for before, after in pairwise(present):
        ended = max(task.stop for task in before)
        waiting = [task for task in after if task.start >= ended]
        if waiting:
            first = min(waiting, key=lambda task: task.start)
            handoffs.append((first.start - ended, first))
    return handoffs


def saturated(runs: list[Task], pool: str | None, slots: int, start: float, stop: float) -> float:
    """Seconds within [start, stop] in which every slot of `pool` held a task (0 for no pool)."""
    if pool is None or stop <= start:
        return 0.0
    edges = sorted((t, step) for task in runs if task.pool == pool for t, step in ((task.start, 1), (task.stop, -1)))
    full, running, since = 0.0, 0, start
    for t, step in edges:  # at equal times an end (-1) sorts before a start
        if running >= slots:
            full += max(0.0, min(t, stop) - max(since, start))
        running, since = running + step, t
        if t >= stop:
            break
    if running >= slots and since < stop:
        full += stop - max(since, start)
    return full


def median_worker_gap(runs: list[Task], pool: str) -> float | None:
    """Median gap (s) between one task of `pool` ending on a worker and its next one starting there.

    Measured while the pool is saturated, this is the per-task overhead of scheduling and hand-off.
    """
    per_worker: dict[str, list[Task]] = defaultdict(list)
    for task in runs:
        if task.pool == pool:
            per_worker[task.worker].append(task)
    found = [
        after.start - before.stop
        for worker_runs in per_worker.values()
        for before, after in pairwise(worker_runs)
        if after.start >= before.stop  # a worker with several slots overlaps its tasks
    ]
    return median(found) if found else None


def _now() -> float:
    import time

    return time.time()
