"""A local Dask cluster with one worker pool per stage, listening on loopback only."""

from pathlib import Path

import dask.config
from distributed import Nanny, Scheduler, SpecCluster

from bespoke_dask.config import BespokeWorkerConfig, Pool, pool_setting
from bespoke_dask.logs import WORKER_LOG_LEVEL


def local_cluster(
    pools: dict[Pool, tuple[int, BespokeWorkerConfig]],
    host: str = "127.0.0.1",
    port: int = 0,
    dashboard_port: int | None = 0,
    scratch: Path | None = None,
) -> SpecCluster:
    """Start a scheduler and `n` worker processes per pool, each offering its pool's resource.

    A worker offers `n-tasks` units of its pool's resource, so it runs that many stage tasks at
    once; `threads` beyond those leave room for light scan steps (`bespoke-dask.pools.<pool>`).
    Workers keep their files under `scratch` (default: Dask's, in /tmp).
    """
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": host,
            "port": port,
            "dashboard": dashboard_port is not None,
            "dashboard_address": f"{host}:{dashboard_port or 0}",
            "preload": ["bespoke_dask.dashboard"],  # the /bespoke page and its JSON routes
        },
    }
    workers = {
        f"{pool}-{index}": worker_spec(pool, config, host, scratch)
        for pool, (n_workers, config) in pools.items()
        for index in range(n_workers)
    }
    # Every worker death reaches the coordinator, which re-runs the task (bespoke-dask.retries).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return SpecCluster(workers=workers, scheduler=scheduler, name="bespoke-dask")


def worker_spec(pool: Pool, config: BespokeWorkerConfig, host: str, scratch: Path | None = None) -> dict:
    """The `SpecCluster` entry of one worker process of `pool`; its files go under `scratch`."""
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    # Not TMPDIR: multiprocessing puts its forkserver's socket there, and a socket path must be short.
    env = config.environment(pool)
    return {
        "cls": Nanny,
        "options": {
            "host": host,
            "nthreads": pool_setting(pool, "threads") + pool_setting(pool, "n-tasks") - 1,
            "resources": {pool: pool_setting(pool, "n-tasks")},
            "memory_limit": f"{config.max_memory}GiB" if config.max_memory else "auto",
            "env": env,
            "dashboard_address": f"{host}:0",
            "silence_logs": WORKER_LOG_LEVEL,
            "local_directory": None if scratch is None else str(scratch),
        },
    }
