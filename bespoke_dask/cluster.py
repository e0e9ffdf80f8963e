"""A local Dask cluster with one worker pool per stage, listening on loopback only."""

from pathlib import Path

import dask.config
from distributed import Nanny, Scheduler, SpecCluster
from distributed.security import Security

from bespoke_dask.config import BespokeWorkerConfig, Pool, adopt_distributed_defaults, pool_setting
from bespoke_dask.logs import WORKER_LOG_LEVEL

THREAD_LIMITS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
adopt_distributed_defaults()  # the schedulers and workers started from here are quieter


class PoolNanny(Nanny):
    """A Nanny whose worker process gets `pre_spawn_env` before it starts.

    OpenMP and BLAS read their thread limits once, when numpy loads; a Nanny's `env=` is
    applied after the worker has imported numpy, distributed's `pre-spawn-environ` before.
    The pool's values win over this process's own variables (which `pre-spawn-environ` keeps).
    """

    def __init__(self, *args, pre_spawn_env: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.pre_spawn_env.update(pre_spawn_env)


def local_cluster(
    pools: dict[Pool, tuple[int, BespokeWorkerConfig]],
    host: str = "127.0.0.1",
    port: int = 0,
    dashboard_port: int | None = 0,
    security: Security | None = None,
    plugins: tuple = (),
    scratch: Path | None = None,
) -> SpecCluster:
    """Start a scheduler (carrying `plugins`) and `n` worker processes per pool.

    Workers keep their files under `scratch` (default: Dask's, in /tmp).
    """
    security = security or Security()
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": host,
            "port": port,
            "protocol": protocol(security),
            "security": security,
            "dashboard": dashboard_port is not None,
            "dashboard_address": dashboard_address(host, dashboard_port, security),
            "preload": ["bespoke_dask.dashboard"],  # the /bespoke page and its JSON routes
            "plugins": list(plugins),
        },
    }
    workers = {
        f"{pool}-{index}": worker_spec(pool, config, host, security, scratch=scratch)
        for pool, (n_workers, config) in pools.items()
        for index in range(n_workers)
    }
    # Every worker death reaches the coordinator, which re-runs the task (bespoke-dask.retries).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return SpecCluster(workers=workers, scheduler=scheduler, security=security, name="bespoke-dask")


def worker_spec(
    pool: Pool,
    config: BespokeWorkerConfig,
    host: str,
    security: Security | None = None,
    n_tasks: int | None = None,
    scratch: Path | None = None,
) -> dict:
    """The `SpecCluster` entry of one worker process of `pool`; its files go under `scratch`.

    A worker offers `n-tasks` units of its pool's resource, so it runs that many stage tasks at
    once, each with `config`'s cores and memory; `threads` beyond those leave room for light
    scan steps (`bespoke-dask.pools.<pool>`).
    """
    security = security or Security()
    n_tasks = pool_setting(pool, "n-tasks", n_tasks)
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    # Not TMPDIR: multiprocessing puts its forkserver's socket there, and a socket path must be short.
    env = config.environment(pool)
    return {
        "cls": PoolNanny,
        "options": {
            "host": host,
            "protocol": protocol(security),
            "security": security,
            "nthreads": pool_setting(pool, "threads") + n_tasks - 1,
            "resources": {pool: n_tasks},
            "memory_limit": f"{config.max_memory * n_tasks}GiB" if config.max_memory else "auto",
            "pre_spawn_env": {name: env[name] for name in THREAD_LIMITS},
            "env": env,
            "dashboard_address": f"{host}:0",
            "silence_logs": WORKER_LOG_LEVEL,
            "local_directory": None if scratch is None else str(scratch),
        },
    }


def dashboard_address(host: str, port: int | None, security: Security) -> str:
    """Where the scheduler's dashboard listens: on `host`, but on loopback when TLS is required.

    The dashboard (with the /bespoke page and its JSON routes) is plain, unauthenticated HTTP;
    an executor that requires certificates of its clients must not serve it to the network.
    """
    return f"{'127.0.0.1' if security.require_encryption else host}:{port or 0}"


def protocol(security: Security) -> str:
    return "tls" if security.require_encryption else "tcp"
