"""`executor launch --cluster slurm|pbs|slurm-allocation` and `executor job-script`."""

import logging
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from bespoke_dask.cli.options import console, user_errors
from bespoke_dask.errors import InputError

ClusterOption = Annotated[
    str, typer.Option("--cluster", help="local, or batch jobs per pool: slurm, pbs, slurm-allocation.")
]
JobqueueConfig = Annotated[
    Optional[Path], typer.Option("--jobqueue-config", help="A jobqueue.yaml to use instead of the shipped one.")
]
MinJobs = Annotated[
    Optional[list[str]], typer.Option("--min-jobs", help="POOL=N: jobs a pool keeps while idle (repeat).")
]
MaxJobs = Annotated[Optional[list[str]], typer.Option("--max-jobs", help="POOL=N: most jobs a pool runs (repeat).")]


def launch_batch(
    system: str,
    directory: Path,
    stop: threading.Event,
    jobqueue_config: Path | None = None,
    min_jobs: list[str] | None = None,
    max_jobs: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    dashboard_port: int | None = 0,
    tls: bool = False,
    tls_files: tuple = (None, None, None),
) -> None:
    """Run the executor with each pool's workers as batch jobs until `stop` is set; with `tls`,
    on the certificates `tls_files` (CA, certificate, key), else dask config's, else generated."""
    from bespoke_dask import tls as bespoke_tls
    from bespoke_dask.allocation import check_allocation  # Dask and jobqueue: not needed for --help
    from bespoke_dask.batch import SYSTEMS, WORKER_TYPES, BatchCluster, load_jobqueue_config, parse_job_counts
    from bespoke_dask.scaling import PoolScaler
    from bespoke_dask.service import CoordinatorPlugin, tame_garbage_collection

    if system not in SYSTEMS:
        raise InputError(f"unknown cluster '{system}': choose local, {', '.join(SYSTEMS)}")
    if system == "slurm-allocation":
        check_allocation()
    limits = {"min_jobs": parse_job_counts(min_jobs), "max_jobs": parse_job_counts(max_jobs)}
    load_jobqueue_config(jobqueue_config)
    _show_job_events()
    plugin = CoordinatorPlugin(directory)  # locks the directory; runs on the scheduler below
    with console.status(f"starting the scheduler for {system} jobs"):
        try:  # certificates only once the directory is ours, as for a local executor
            security = bespoke_tls.for_executor(directory, host, *tls_files) if tls else None
            cluster = BatchCluster(
                system, directory, host=host, port=port, dashboard_port=dashboard_port, plugins=[plugin],
                security=security,
            )
        except BaseException:
            plugin.release()
            raise
    scaler = None
    try:
        scaler = PoolScaler(cluster, **limits)
        scaler.start()
        tame_garbage_collection()
        console.print(f"scheduler: {cluster.scheduler_address}")
        console.print(f"dashboard: {cluster.dashboard_link}")
        console.print(f"directory: {directory.resolve()}", highlight=False)
        console.print(f"{system} jobs per pool: " + ", ".join(
            f"{WORKER_TYPES[pool]} {scaler.min_jobs[pool]}-{scaler.max_jobs[pool]}" for pool in WORKER_TYPES
        ) + f"; job scripts and logs in {directory.resolve() / 'jobs'}", highlight=False)
        stop.wait()
    finally:
        console.print("stopping the executor and cancelling its jobs")
        if scaler is not None:
            scaler.stop()
        cluster.close()  # closes the scheduler and the coordinator on it


def _show_job_events() -> None:
    """Print each job's submission, start and release (the scaler logs them at INFO)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    scaling = logging.getLogger("bespoke_dask.scaling")
    scaling.addHandler(handler)
    scaling.setLevel(logging.INFO)


@user_errors
def show_job_script(
    worker_type: Annotated[str, typer.Option(help="fragmenter, qc-compute or optimizer.")] = "qc-compute",
    cluster: Annotated[str, typer.Option(help="slurm, pbs or slurm-allocation.")] = "slurm",
    jobqueue_config: JobqueueConfig = None,
    scheduler: Annotated[str, typer.Option(help="Scheduler address to put in the script.")] = "tcp://SCHEDULER:8786",
    directory: Annotated[Path, typer.Option(help="The executor's directory (job logs go below it).")] = Path(
        "bespoke-executor"
    ),
):
    """Print the job script one of a pool's jobs is submitted with (nothing is submitted)."""
    from bespoke_dask.batch import SYSTEMS, WORKER_TYPES, job_script, load_jobqueue_config

    pools = {name: pool for pool, name in WORKER_TYPES.items()}
    if worker_type not in pools:
        raise InputError(f"unknown worker type '{worker_type}': choose {', '.join(pools)}")
    if cluster not in SYSTEMS:
        raise InputError(f"unknown cluster '{cluster}': choose {', '.join(SYSTEMS)}")
    load_jobqueue_config(jobqueue_config)
    print(job_script(cluster, pools[worker_type], scheduler, directory))
