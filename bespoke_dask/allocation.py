"""Pools inside one SLURM allocation (`salloc`/`sbatch`): each job is an `srun` step.

`executor launch --cluster slurm-allocation`, run inside an allocation, starts the scheduler
where it runs and each pool's workers as job steps of the pool's shape (`srun --exact -n 1
--cpus-per-task <cores> --mem <memory>`): the same job script dask-jobqueue would submit, run
by `srun` instead of `sbatch`. Steps wait inside the allocation until its cores are free, and
the scaler adds and ends them per pool as it would batch jobs.
"""

import asyncio
import os
import shutil
from pathlib import Path

from dask_jobqueue.slurm import SLURMJob
from dask_jobqueue.slurm import slurm_format_bytes_ceil
from distributed.deploy.spec import ProcessInterface

from bespoke_dask.errors import InputError


def check_allocation() -> str:
    """The SLURM job id of the allocation this process runs in."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if job_id is None or shutil.which("srun") is None:
        raise InputError(
            "--cluster slurm-allocation runs inside a SLURM allocation (salloc or an sbatch "
            "script) with srun on PATH; SLURM_JOB_ID is not set here"
        )
    return job_id


class SrunJob(ProcessInterface):
    """One job of a pool as an `srun` step: the pool's job script, run inside the allocation."""

    def __init__(self, scheduler: str, name: str, **job_options):
        super().__init__(scheduler=scheduler, name=name)
        self.name = name
        self._job = SLURMJob(scheduler, name=name, **job_options)
        self.log_directory = Path(self._job.log_directory)
        self._process: asyncio.subprocess.Process | None = None

    def job_script(self) -> str:
        return self._job.job_script()

    def srun_command(self, script: Path) -> list[str]:
        """The step: one task with the job's cores and memory, on resources of its own."""
        command = ["srun", "--exact", "-N", "1", "-n", "1", f"--cpus-per-task={self._job.worker_cores}"]
        if self._job.worker_memory:
            command.append(f"--mem={slurm_format_bytes_ceil(self._job.worker_memory)}")
        if self._job.job_name:
            command.append(f"--job-name={self._job.job_name}")
        return command + ["bash", str(script)]

    async def start(self) -> None:
        script = self.log_directory / f"{self.name}.sh"
        script.write_text(self.job_script())
        with open(self.log_directory / f"{self.name}.log", "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.srun_command(script), stdout=log, stderr=log, start_new_session=True
            )
        await super().start()

    async def close(self) -> None:
        """End the step: srun passes SIGTERM on to the worker, which leaves the scheduler."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 30)
            except TimeoutError:
                self._process.kill()
        await super().close()
