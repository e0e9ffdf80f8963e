"""`BespokeDaskExecutor`: start an executor (cluster + coordinator) or connect to a running one.

Either way every operation goes through the scheduler to the coordinator beside it
(`bespoke_dask.service`), so a client needs nothing but the scheduler's address.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import dask.config
from distributed import Client

from bespoke_dask import logs, progress, service
from bespoke_dask.cluster import local_cluster
from bespoke_dask.config import BespokeWorkerConfig, pool_setting
from bespoke_dask.errors import UnknownWorkflow
from bespoke_dask.schema import BespokeExecutorOutput, BespokeWorkflow, Status
from bespoke_dask.settings import Settings

FINISHED = progress.FINISHED
DEFAULT_DIRECTORY = "bespoke-executor"
SCRATCH = "scratch"  # the workers' files, under the executor's directory

_current: "BespokeDaskExecutor | None" = None


class ExecutorNotFound(RuntimeError):
    """No running executor could be reached."""


class BespokeDaskExecutor:
    """Fits bespoke torsions on Dask: fragmenter, QC and optimizer pools plus a coordinator.

    With `scheduler_address`, connects to a running executor (`bespoke-dask executor launch`)
    and starts nothing. Otherwise starts a local cluster bound to `host` (loopback by default)
    and the coordinator on `directory`, which holds the store and the workflow records and
    resumes whatever was left unfinished there. `directory=None` uses a temporary directory
    removed on exit (kept when BEFLOW_KEEP_TMP_FILES is set). Arguments left as None fall
    back to dask.config (`bespoke-dask.*`) and BespokeFit's BEFLOW_* variables.
    """

    def __init__(
        self,
        n_fragmenter_workers: int | None = None,
        n_qc_compute_workers: int | None = None,
        n_optimizer_workers: int | None = None,
        fragmenter_worker_config: BespokeWorkerConfig | None = None,
        qc_compute_worker_config: BespokeWorkerConfig | None = None,
        optimizer_worker_config: BespokeWorkerConfig | None = None,
        directory: str | os.PathLike | None = DEFAULT_DIRECTORY,
        host: str | None = None,
        port: int | None = None,
        dashboard_port: int | None = None,
        scheduler_address: str | None = None,
    ):
        self.scheduler_address = scheduler_address
        self.pools = {
            "fragmenter": (
                _given(n_fragmenter_workers, pool_setting("fragmenter", "n-workers")),
                fragmenter_worker_config or BespokeWorkerConfig.from_config("fragmenter"),
            ),
            "qc": (
                _given(n_qc_compute_workers, pool_setting("qc", "n-workers")),
                qc_compute_worker_config or BespokeWorkerConfig.from_config("qc"),
            ),
            "optimizer": (
                _given(n_optimizer_workers, pool_setting("optimizer", "n-workers")),
                optimizer_worker_config or BespokeWorkerConfig.from_config("optimizer"),
            ),
        }
        self.host = host or dask.config.get("bespoke-dask.host")
        self.port = _given(port, dask.config.get("bespoke-dask.port"))
        self.dashboard_port = _given(dashboard_port, dask.config.get("bespoke-dask.dashboard-port"))
        self._temporary = directory is None and scheduler_address is None
        self.directory = Path(tempfile.mkdtemp(prefix="bespoke-") if self._temporary else directory)
        self._cluster = self._host = self._client = None

    # -- lifetime --------------------------------------------------------------------
    def start(self) -> "BespokeDaskExecutor":
        """Start (or connect to) the executor."""
        logs.follow_user_logging()
        if self.scheduler_address is None:
            self._start_cluster()
        self._client = _connect(self.scheduler_address)
        return self

    def _start_cluster(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cluster = local_cluster(
            self.pools,
            host=self.host,
            port=self.port,
            dashboard_port=self.dashboard_port,
            scratch=self.directory / SCRATCH,
        )
        self.scheduler_address = self._cluster.scheduler_address
        try:
            self._host = service.CoordinatorHost(
                self.scheduler_address, self.directory, self.dashboard_link
            )
        except Exception:
            self._cluster.close()
            raise

    def stop(self) -> None:
        """Disconnect; an executor this object started is shut down (and resumes next time)."""
        if self._client is not None:
            self._client.close()
        if self._host is not None:
            self._host.stop()
        if self._cluster is not None:
            self._cluster.close()
        if self._cluster is not None and not Settings().keep_tmp_files:
            shutil.rmtree(self.directory / SCRATCH, ignore_errors=True)
        if self._temporary and not Settings().keep_tmp_files:
            shutil.rmtree(self.directory, ignore_errors=True)
        self._cluster = self._host = self._client = None

    def __enter__(self) -> "BespokeDaskExecutor":
        global _current
        self.start()
        _current = self
        return self

    def __exit__(self, *exc_info) -> None:
        global _current
        _current = None
        self.stop()

    @property
    def dashboard_link(self) -> str | None:
        if self._cluster is None or self.dashboard_port is None:
            return None
        return self._cluster.dashboard_link

    # -- workflows -------------------------------------------------------------------
    def submit(self, workflow: BespokeWorkflow) -> str:
        """Queue a workflow and return its id (an identical earlier one keeps its id)."""
        return self._call("submit", workflow)

    def retrieve(self, workflow_id: str) -> BespokeExecutorOutput:
        """A snapshot of the workflow's status and, once finished, its results."""
        output = self._call("output", str(workflow_id))
        if output is None:
            raise UnknownWorkflow(f"no workflow with id {workflow_id}")
        return output

    def list(self, status: Status | None = None) -> list[BespokeExecutorOutput]:
        """Status of every workflow (without results: `retrieve` one for those)."""
        return [output for output in self._call("outputs") if status in (None, output.status)]

    def cancel(self, workflow_id: str) -> BespokeExecutorOutput:
        """Cancel a workflow that has not finished; returns its status afterwards."""
        self.retrieve(workflow_id)  # unknown ids raise
        self._call("cancel", str(workflow_id))
        return self.wait_until_complete(workflow_id, frequency=0.1)

    def wait_until_complete(
        self,
        workflow_id: str,
        frequency: float = 1.0,
        callback: Callable[[BespokeExecutorOutput], None] | None = None,
    ) -> BespokeExecutorOutput:
        """Block until the workflow finishes, calling `callback` with each status it pushes.

        `frequency` (s) is kept for BespokeFit's signature: statuses arrive as they change.
        """
        if self._client is None:
            raise RuntimeError("the executor is not started: use `with BespokeDaskExecutor(...):`")
        return progress.follow(self._client, str(workflow_id), self.retrieve, callback)

    def _call(self, operation: str, *args):
        if self._client is None:
            raise RuntimeError("the executor is not started: use `with BespokeDaskExecutor(...):`")
        return self._client.run_on_scheduler(service.call, operation, *args)


def connect(
    scheduler_address: str | None = None, directory: str | os.PathLike | None = None
) -> BespokeDaskExecutor:
    """A started client of the running executor found from the arguments or the environment.

    The address comes from `scheduler_address`, else BEFLOW_SCHEDULER_ADDRESS, else the
    `scheduler.json` the executor wrote into `directory` (default `bespoke-executor`).
    """
    address = (
        scheduler_address
        or Settings().scheduler_address
        or service.scheduler_address_from(directory or DEFAULT_DIRECTORY)
    )
    if address is None:
        raise ExecutorNotFound(
            f"no running executor found in {directory or DEFAULT_DIRECTORY}: launch one "
            "with `bespoke-dask executor launch` or give --scheduler"
        )
    return BespokeDaskExecutor(scheduler_address=address).start()


def wait_until_complete(workflow_id: str, frequency: float = 1.0) -> BespokeExecutorOutput:
    """Wait for a workflow of the current executor (the enclosing `with`, else `connect()`)."""
    return _active().wait_until_complete(workflow_id, frequency)


def submit(workflow: BespokeWorkflow) -> str:
    return _active().submit(workflow)


def retrieve(workflow_id: str) -> BespokeExecutorOutput:
    return _active().retrieve(workflow_id)


def list_workflows(status: Status | None = None) -> list[BespokeExecutorOutput]:
    return _active().list(status)


def cancel(workflow_id: str) -> BespokeExecutorOutput:
    return _active().cancel(workflow_id)


def _active() -> BespokeDaskExecutor:
    global _current
    if _current is None:
        _current = connect()
    return _current


def _connect(address: str) -> Client:
    try:
        return Client(address, timeout=dask.config.get("bespoke-dask.connect-timeout"))
    except OSError as error:
        raise ExecutorNotFound(f"no executor answers at {address}: {error}") from None


def _given(value, default):
    return default if value is None else value


# BespokeFit's name; defined last so the builtin stays usable above.
list = list_workflows  # noqa: A001
