"""A local Dask cluster with one worker pool per stage, listening on loopback only."""

from distributed import Nanny, Scheduler, SpecCluster

from bespoke_dask.config import BespokeWorkerConfig, Pool


def local_cluster(
    pools: dict[Pool, tuple[int, BespokeWorkerConfig]],
    host: str = "127.0.0.1",
    port: int = 0,
    dashboard_port: int | None = 0,
    worker_threads: int = 2,
) -> SpecCluster:
    """Start a scheduler and `n` worker processes per pool, each offering its pool's resource.

    Workers get `worker_threads` threads but only one unit of their pool's resource: one stage
    task at a time, with a thread to spare for the light scan-driver steps.
    """
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": host,
            "port": port,
            "dashboard": dashboard_port is not None,
            "dashboard_address": f"{host}:{dashboard_port or 0}",
        },
    }
    workers = {
        f"{pool}-{index}": worker_spec(pool, config, host, worker_threads)
        for pool, (n_workers, config) in pools.items()
        for index in range(n_workers)
    }
    return SpecCluster(workers=workers, scheduler=scheduler, name="bespoke-dask")


def worker_spec(pool: Pool, config: BespokeWorkerConfig, host: str, threads: int) -> dict:
    """The `SpecCluster` entry of one worker process of `pool`."""
    return {
        "cls": Nanny,
        "options": {
            "host": host,
            "nthreads": threads,
            "resources": {pool: 1},
            "memory_limit": f"{config.max_memory}GiB" if config.max_memory else "auto",
            "env": config.environment(pool),
            "dashboard_address": f"{host}:0",
        },
    }
