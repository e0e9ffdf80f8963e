"""Per-pool scaling of batch jobs from each pool's own queue.

Dask's adaptive scaling sizes a cluster by total occupancy and ignores resources, so a scan
waiting for `qc` would get fragmenter jobs. Here every pool is sized from the tasks that name
its resource: those waiting for a worker (`unrunnable`) plus those assigned to its workers.

A running QC optimization is never killed: a job is released only when none of its workers
runs a task (then `retire_workers` moves its results elsewhere), and a job this close to its
walltime (`drain-before-walltime`) takes no new task, gets a successor, and is released once
idle. Jobs are never given dask-jobqueue's `--lifetime`, which kills running tasks.
"""

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass, field

import dask.config
from dask.utils import parse_timedelta
from distributed.core import Status

from bespoke_dask.batch import WORKER_TYPES, BatchCluster
from bespoke_dask.config import POOLS, Pool

logger = logging.getLogger(__name__)
LIGHT_TASKS_POOL: Pool = "qc"
LOST_AFTER = 30.0  # seconds a started job may have no worker before it counts as gone


@dataclass
class Job:
    """What the scaler knows of one job: when it was asked for and when it last had work."""

    pool: Pool
    submitted: float
    last_busy: float
    started: float | None = None  # its first worker joined
    draining: bool = False
    missing_since: float | None = None  # its workers all left


@dataclass
class PoolScaler:
    """Keeps each pool between its min and max jobs, following its queue.

    Limits and intervals default to `bespoke-dask.batch` in dask.config (seconds as Dask
    durations, e.g. "60s").
    """

    cluster: BatchCluster
    min_jobs: dict[Pool, int] = field(default_factory=dict)
    max_jobs: dict[Pool, int] = field(default_factory=dict)
    idle_timeout: float | None = None
    interval: float | None = None
    drain_before_walltime: float | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, job, what)

    def __post_init__(self):
        config = dask.config.get("bespoke-dask.batch")
        for pool in POOLS:
            self.min_jobs.setdefault(pool, config["min-jobs"][WORKER_TYPES[pool]])
            self.max_jobs.setdefault(pool, config["max-jobs"][WORKER_TYPES[pool]])
        self.idle_timeout = parse_timedelta(self.idle_timeout or config["idle-timeout"])
        self.interval = parse_timedelta(self.interval or config["interval"])
        self.drain_before_walltime = parse_timedelta(
            self.drain_before_walltime or config["drain-before-walltime"]
        )
        self._task: asyncio.Task | None = None

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        """Scale every `interval` on the cluster's event loop until `stop`."""
        self.cluster.loop.add_callback(self._start)

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # a failed sbatch must not end scaling for good
                logger.exception("scaling the batch pools failed; trying again")
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        if self._task is not None:
            self.cluster.loop.add_callback(self._task.cancel)

    # -- one step ------------------------------------------------------------------------
    async def step(self) -> None:
        """Look at each pool's queue once; submit and release jobs accordingly."""
        now = time.monotonic()
        await self._forget_lost_jobs(now)
        for pool in POOLS:
            demand = pool_demand(self.cluster.scheduler, pool)
            jobs = [name for name in self.cluster.jobs(pool) if name in self.jobs]
            for name in jobs:
                self._observe(name, now)
            serving = [name for name in jobs if not self.jobs[name].draining]
            wanted = min(self.max_jobs[pool], max(self.min_jobs[pool], math.ceil(demand / self.cluster.slots(pool))))
            for _ in range(wanted - len(serving)):
                name = await self.cluster.add_job(pool)
                self.jobs[name] = Job(pool, submitted=now, last_busy=now)
                self._record(name, "submitted", f"{demand} tasks need {pool}")
            await self._release(self._releasable(pool, serving, wanted, now), demand)

    def _releasable(self, pool: Pool, serving: list[str], wanted: int, now: float) -> list[str]:
        """Idle draining jobs, and idle jobs beyond what the pool needs (longest idle first)."""
        idle = [name for name in serving if now - self.jobs[name].last_busy >= self.idle_timeout]
        idle.sort(key=lambda name: self.jobs[name].last_busy)
        surplus = idle[: max(0, len(serving) - max(wanted, self.min_jobs[pool]))]
        drained = [
            name for name in self.cluster.jobs(pool)
            if name in self.jobs and self.jobs[name].draining and self.jobs[name].last_busy < now
        ]
        return surplus + drained

    async def _release(self, names: list[str], demand: int) -> None:
        if names:
            await self.cluster.release_jobs(names)
            for name in names:
                self.jobs.pop(name, None)
                self._record(name, "released", f"idle; {demand} tasks need its pool")

    def _observe(self, name: str, now: float) -> None:
        """Note whether the job's workers run anything; stop feeding a job near its walltime."""
        job, workers = self.jobs[name], self._workers(name)
        if workers and job.started is None:
            job.started = now
            self._record(name, "started")
        if any(worker.processing for worker in workers):
            job.last_busy = now
        walltime = self.cluster.walltime(job.pool)
        # a walltime shorter than twice the margin is drained for its second half
        margin = min(self.drain_before_walltime, walltime / 2) if walltime else 0
        if job.started is not None and walltime and now - job.started > walltime - margin:
            if not job.draining:
                self._record(name, "draining")
            job.draining = True
            for worker in workers:  # the scheduler assigns it nothing new; running tasks finish
                if worker.status == Status.running:
                    self.cluster.scheduler.handle_worker_status_change(Status.paused, worker, "bespoke-drain")

    def _workers(self, name: str) -> list:
        names = self.cluster.worker_names(name)
        return [worker for worker in self.cluster.scheduler.workers.values() if worker.name in names]

    async def _forget_lost_jobs(self, now: float) -> None:
        """A started job whose workers stay away (walltime, node failure) is cancelled and replaced.

        A nanny restarting its worker (e.g. after a cancel) leaves for a moment only, hence the grace.
        """
        lost = []
        for name, job in self.jobs.items():
            if job.started is None or self._workers(name):
                job.missing_since = None
            elif job.missing_since is None:
                job.missing_since = now
            elif now - job.missing_since > LOST_AFTER:
                lost.append(name)
        if lost:
            await self.cluster.release_jobs(lost)
            for name in lost:
                del self.jobs[name]
                self._record(name, "lost", f"no worker for {LOST_AFTER:.0f} s")

    def _record(self, name: str, what: str, why: str = "") -> None:
        self.events.append((time.time(), name, what))
        logger.info("job %s %s%s", name, what, f" ({why})" if why else "")


def pool_demand(scheduler, pool: Pool) -> int:
    """Tasks that need the pool's resource and are ready: waiting for a worker, or on one.

    Tasks that need no resource (the scan steps between wavefronts) run on any worker; when
    they wait, for lack of any worker, they count for the QC pool, whose work they lead to.
    """
    waiting = sum(
        1
        for task in itertools.chain(scheduler.unrunnable, scheduler.queued)
        if pool in (task.resource_restrictions or {}) or (pool == LIGHT_TASKS_POOL and not task.resource_restrictions)
    )
    assigned = sum(
        1
        for worker in scheduler.workers.values()
        for task in worker.processing
        if pool in (task.resource_restrictions or {})
    )
    return waiting + assigned
