"""Worker pools as batch jobs: one job shape per pool (jobqueue.yaml), all under one scheduler.

dask-jobqueue's `JobQueueCluster` has one job template; here every pool has its own section
(`jobqueue.<system>-<pool>`, overriding the base `jobqueue.<system>`) and its jobs are
dask-jobqueue `SLURMJob`/`PBSJob` worker specs of a single `SpecCluster`. Which jobs run is
decided per pool by `bespoke_dask.scaling.PoolScaler`. Each job's workers offer the pool's
resource (`--resources qc=<n-tasks>`) and get the pool's BEFLOW_*/OMP_NUM_THREADS before
Python starts (job-script prologue).
"""

import itertools
from pathlib import Path

import dask.config
import yaml
from dask.utils import parse_bytes
from dask_jobqueue.pbs import PBSJob
from dask_jobqueue.slurm import SLURMJob
from distributed import Scheduler, SpecCluster
from distributed.core import Status
from distributed.security import Security

from bespoke_dask.allocation import SrunJob
from bespoke_dask.cluster import dashboard_address, protocol
from bespoke_dask.config import POOLS, WORKER_TYPES, BespokeWorkerConfig, Pool, distributed_environment, pool_setting
from bespoke_dask.errors import InputError

# The pools in the user's words (launch-worker --worker-type, jobqueue.yaml sections).
SHIPPED_CONFIG = Path(__file__).parent / "jobqueue.yaml"
# Keys of a pool section that are the cluster's, not a job's.
_CLUSTER_KEYS = {"scheduler-options", "shared-temp-directory"}


class _PoolJob:
    """Keeps the job script it submits under the log directory, for the user to read."""

    async def start(self):
        Path(self.log_directory, f"{self.name}.sh").write_text(self.job_script())
        await super().start()

    async def close(self):
        await super().close()
        self.status = Status.closed  # dask-jobqueue's Job leaves it running; SpecCluster checks it


class SLURMPoolJob(_PoolJob, SLURMJob):
    """A SLURM job of one pool (`sbatch`/`scancel`)."""


class PBSPoolJob(_PoolJob, PBSJob):
    """A PBS job of one pool (`qsub`/`qdel`)."""


# --cluster value -> (job class, jobqueue.yaml section it reads)
SYSTEMS = {
    "slurm": (SLURMPoolJob, "slurm"),
    "pbs": (PBSPoolJob, "pbs"),
    "slurm-allocation": (SrunJob, "slurm"),
}


def load_jobqueue_config(file: str | Path | None = None) -> None:
    """Make the job shapes part of dask.config.

    `file` (--jobqueue-config) replaces the shipped jobqueue.yaml; so does a user's own dask
    config that has a `jobqueue:` section (e.g. ~/.config/dask/jobqueue.yaml). Otherwise the
    shipped file is merged under everything else, like any package default.
    """
    if file is not None:
        dask.config.update(dask.config.config, yaml.safe_load(Path(file).read_text()) or {}, priority="new")
    elif not any("jobqueue" in part for part in dask.config.collect_yaml(dask.config.paths)):
        dask.config.update_defaults(yaml.safe_load(SHIPPED_CONFIG.read_text()))


def pool_section(system: str, pool: Pool) -> dict:
    """The pool's job settings: `jobqueue.<system>-<pool>` over the base `jobqueue.<system>`."""
    base = SYSTEMS[system][1]
    section = dict(dask.config.get(f"jobqueue.{base}"))
    section.update(dask.config.get(f"jobqueue.{base}-{WORKER_TYPES[pool]}", None) or {})
    return section


def worker_config(section: dict, pool: Pool) -> BespokeWorkerConfig:
    """What each of the pool's tasks gets: the job's cores and memory shared by its tasks."""
    tasks = (section.get("processes") or 1) * pool_setting(pool, "n-tasks")
    memory = parse_bytes(section["memory"]) / tasks / 2**30
    return BespokeWorkerConfig(n_cores=max(1, section["cores"] // tasks), max_memory=memory)


def job_options(system: str, pool: Pool, directory: Path, loopback: bool = False) -> dict:
    """Keyword arguments of the pool's job class: its section plus our resource and environment.

    `loopback`: the scheduler listens on 127.0.0.1, so workers do too (one node only).
    """
    section = pool_section(system, pool)
    if not section.get("cores") or not section.get("memory"):
        raise InputError(
            f"jobqueue.{SYSTEMS[system][1]}-{WORKER_TYPES[pool]} (or its base jobqueue.{SYSTEMS[system][1]}) "
            "needs cores and memory: see the shipped jobqueue.yaml"
        )
    # Every setting is resolved now, so jobs started later do not depend on dask.config then.
    options = {
        key.replace("-", "_"): value
        for key, value in section.items()
        if key not in _CLUSTER_KEYS and value is not None
    }
    options["job_name"] = options.pop("name", None)
    extra_args = list(section.get("worker-extra-args") or [])
    if "--resources" not in extra_args:
        extra_args += ["--resources", f"{pool}={pool_setting(pool, 'n-tasks')}"]
    if loopback and not section.get("interface") and "--host" not in extra_args:
        extra_args += ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    environment = worker_config(section, pool).environment(pool) | distributed_environment()
    prologue = list(section.get("job-script-prologue") or [])
    prologue += [f"export {name}={value}" for name, value in environment.items()]
    log_directory = section.get("log-directory") or str(Path(directory).resolve() / "jobs")
    options.update(
        config_name=SYSTEMS[system][1],
        worker_extra_args=extra_args,
        job_script_prologue=prologue,
        log_directory=log_directory,
    )
    return options


def job_script(system: str, pool: Pool, scheduler_address: str, directory: Path, name: str | None = None) -> str:
    """The job script one of the pool's jobs would be submitted with."""
    job_class = SYSTEMS[system][0]
    options = job_options(system, pool, directory, loopback="127.0.0.1" in scheduler_address)
    return job_class(scheduler_address, name=name or f"{WORKER_TYPES[pool]}-0", **options).job_script()


class BatchCluster(SpecCluster):
    """One scheduler (in this process) and, per pool, batch jobs of that pool's shape.

    Jobs are added and released per pool (`add_job`, `release_jobs`); nothing is started until
    asked. A job's name is `<worker type>-<n>`; its workers are named after it (`-<i>` per
    process when a job runs several).
    """

    def __init__(
        self,
        system: str,
        directory: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        dashboard_port: int | None = 0,
        plugins: tuple = (),
        security: Security | None = None,
    ):
        """`plugins`: scheduler plugins, e.g. the coordinator's (`service.CoordinatorPlugin`);
        `security`: TLS for the scheduler and every job's workers (their certificates' paths go
        into the job scripts, so they must be on a file system the nodes share)."""
        if system not in SYSTEMS:
            raise InputError(f"unknown batch system {system!r}: choose {', '.join(SYSTEMS)}")
        self.system = system
        self.job_class, base = SYSTEMS[system]
        security = security or Security()
        options = {
            "host": host,
            "port": port,
            "protocol": protocol(security),
            "security": security,
            "dashboard": dashboard_port is not None,
            "dashboard_address": dashboard_address(host, dashboard_port, security),
            "preload": ["bespoke_dask.dashboard"],  # the /bespoke page and its JSON routes
            "plugins": list(plugins),
            **(dask.config.get(f"jobqueue.{base}.scheduler-options", None) or {}),
        }
        if "interface" in options:
            options.pop("host")
        tls = {"security": security} if security.require_encryption else {}  # the jobs' workers' --tls-* flags
        self.pool_options = {pool: job_options(system, pool, directory, host == "127.0.0.1") | tls for pool in POOLS}
        self.sections = {pool: pool_section(system, pool) for pool in POOLS}
        self._numbers = itertools.count()
        super().__init__(
            workers={}, scheduler={"cls": Scheduler, "options": options}, security=security, name="bespoke-dask"
        )

    def slots(self, pool: Pool) -> int:
        """Tasks of the pool one job runs at once."""
        return (self.sections[pool].get("processes") or 1) * pool_setting(pool, "n-tasks")

    def walltime(self, pool: Pool) -> float | None:
        """The pool's job walltime in seconds (None: not limited)."""
        return walltime_seconds(self.sections[pool].get("walltime"))

    def jobs(self, pool: Pool) -> list[str]:
        """Names of the pool's jobs, submitted or running."""
        prefix = f"{WORKER_TYPES[pool]}-"
        return [name for name in self.worker_spec if name.startswith(prefix) and name[len(prefix):].isdigit()]

    def worker_names(self, job: str) -> set[str]:
        spec = self.worker_spec.get(job, {})
        return {f"{job}{suffix}" for suffix in spec["group"]} if "group" in spec else {job}

    async def add_job(self, pool: Pool) -> str:
        """Submit one more job of the pool; returns its name."""
        name = f"{WORKER_TYPES[pool]}-{next(self._numbers)}"
        spec = {"cls": self.job_class, "options": self.pool_options[pool]}
        processes = self.sections[pool].get("processes") or 1
        if processes > 1:
            spec["group"] = [f"-{index}" for index in range(processes)]
        self.worker_spec[name] = spec
        await self._correct_state()
        return name

    async def release_jobs(self, names: list[str]) -> None:
        """Retire the jobs' workers (their results move elsewhere), then cancel the jobs."""
        addresses = [
            address
            for address, worker in self.scheduler.workers.items()
            if any(worker.name in self.worker_names(job) for job in names)
        ]
        if addresses:
            await self.scheduler.retire_workers(workers=addresses, close_workers=False, remove=True)
        for name in names:
            self.worker_spec.pop(name, None)
        await self._correct_state()


def walltime_seconds(walltime: str | None) -> float | None:
    """SLURM/PBS walltime ("D-HH:MM:SS", "HH:MM:SS", "MM:SS", "MM") in seconds."""
    if not walltime:
        return None
    days, _, clock = str(walltime).rpartition("-")
    parts = [float(part) for part in clock.split(":")]
    if len(parts) == 1:
        parts = [0.0, parts[0], 0.0]  # a bare number is minutes
    seconds = sum(value * 60**power for power, value in enumerate(reversed(parts)))
    return seconds + float(days or 0) * 86400


def parse_job_counts(values: list[str] | None) -> dict[Pool, int]:
    """`["qc-compute=4", ...]` (or `qc=4`) -> {"qc": 4}."""
    pools = {name: pool for pool, name in WORKER_TYPES.items()} | {pool: pool for pool in POOLS}
    counts = {}
    for value in values or []:
        name, _, number = value.partition("=")
        if name not in pools or not number.isdigit():
            raise InputError(f"'{value}': give POOL=N with POOL one of {', '.join(WORKER_TYPES.values())}")
        counts[pools[name]] = int(number)
    return counts

