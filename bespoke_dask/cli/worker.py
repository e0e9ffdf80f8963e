"""`bespoke-dask launch-worker`: more workers for a running executor, from another shell or node."""

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from bespoke_dask.cli.options import Host, TLSCAFile, TLSCert, TLSKey, console, user_errors
from bespoke_dask.errors import InputError


@user_errors
def launch_worker(
    worker_type: Annotated[str, typer.Option(help="The pool to serve: fragmenter, qc-compute or optimizer.")],
    scheduler: Annotated[str, typer.Option(help="Scheduler address, e.g. tcp://10.0.0.1:8786.")],
    n_cores: Annotated[Optional[int], typer.Option(help="Cores per calculation.", show_default="the pool's")] = None,
    max_mem: Annotated[Optional[float], typer.Option(help="GiB per calculation.", show_default="the pool's")] = None,
    n_workers: Annotated[int, typer.Option(help="Worker processes to start.")] = 1,
    n_tasks: Annotated[
        Optional[int], typer.Option(help="Calculations each worker runs at once.", show_default="the pool's")
    ] = None,
    host: Host = None,
    directory: Annotated[
        Optional[Path], typer.Option(help="The executor's directory, for its TLS certificates.")
    ] = None,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
):
    """Run worker processes of one pool in the foreground until Ctrl-C; they join the executor.

    Listen on an address the scheduler can reach (`--host`) when it runs on another machine.
    """
    from bespoke_dask import tls as bespoke_tls  # Dask: not needed for --help
    from bespoke_dask.cluster import worker_spec
    from bespoke_dask.config import POOL_OF_WORKER_TYPE, BespokeWorkerConfig, setting

    if worker_type not in POOL_OF_WORKER_TYPE:
        raise InputError(f"unknown worker type '{worker_type}': choose {', '.join(POOL_OF_WORKER_TYPE)}")
    pool = POOL_OF_WORKER_TYPE[worker_type]
    config = BespokeWorkerConfig.from_config(pool, n_cores, max_mem)
    security = bespoke_tls.resolve(directory, tls_ca_file, tls_cert, tls_key)
    if scheduler.startswith("tls://") and not security.require_encryption:
        raise InputError("the scheduler uses TLS: give --tls-ca-file/--tls-cert/--tls-key or --directory")
    options = worker_spec(pool, config, setting("host", host), security, n_tasks)["options"]
    console.print(f"{n_workers} {worker_type} worker(s) joining {scheduler}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the workers too, as on Ctrl-C
    asyncio.run(_serve(scheduler, options, n_workers))


async def _serve(scheduler: str, options: dict, n_workers: int) -> None:
    from bespoke_dask.cluster import PoolNanny

    nannies = [PoolNanny(scheduler, **options) for _ in range(n_workers)]
    await asyncio.gather(*nannies)
    try:
        await asyncio.gather(*(nanny.finished() for nanny in nannies))
    finally:
        await asyncio.gather(*(nanny.close() for nanny in nannies), return_exceptions=True)
