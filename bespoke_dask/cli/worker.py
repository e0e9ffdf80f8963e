"""`bespoke-dask launch-worker`: one more worker for a running executor, e.g. on another node."""

import asyncio
from typing import Annotated, Optional

import typer
from distributed import Nanny

from bespoke_dask.cli.options import console, user_errors
from bespoke_dask.cluster import worker_spec
from bespoke_dask.config import BespokeWorkerConfig
from bespoke_dask.errors import InputError

WORKER_TYPES = {"fragmenter": "fragmenter", "qc-compute": "qc", "optimizer": "optimizer"}


@user_errors
def launch_worker(
    worker_type: Annotated[str, typer.Option(help="fragmenter, qc-compute or optimizer.")],
    scheduler: Annotated[str, typer.Option(help="Scheduler address, e.g. tcp://10.0.0.1:8786.")],
    n_cores: Annotated[int, typer.Option(help="Cores per calculation.")] = 1,
    max_mem: Annotated[Optional[float], typer.Option(help="GiB per calculation.")] = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on; the scheduler must reach it.")
    ] = "127.0.0.1",
    nthreads: Annotated[Optional[int], typer.Option(help="Threads (default: the pool's, from dask config).")] = None,
):
    """Run one worker of a pool in the foreground until Ctrl-C."""
    if worker_type not in WORKER_TYPES:
        raise InputError(f"unknown worker type '{worker_type}': choose {', '.join(WORKER_TYPES)}")
    pool = WORKER_TYPES[worker_type]
    config = BespokeWorkerConfig(n_cores=n_cores, max_memory=max_mem)
    options = worker_spec(pool, config, host)["options"]
    if nthreads:
        options["nthreads"] = nthreads
    console.print(f"{worker_type} worker joining {scheduler}")
    asyncio.run(_serve(scheduler, options))


async def _serve(scheduler: str, options: dict) -> None:
    async with Nanny(scheduler, **options) as nanny:
        await nanny.finished()
