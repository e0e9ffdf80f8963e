"""`BespokeDaskExecutor`: start an executor (cluster + coordinator) or connect to a running one.

Either way every operation goes through the scheduler to the coordinator beside it
(`bespoke_dask.service`), so a client needs nothing but the scheduler's address.
"""

import concurrent.futures
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from distributed import Client
from distributed.security import Security

from bespoke_dask import futures, logs, progress, service
from bespoke_dask import tls as bespoke_tls
from bespoke_dask.cluster import local_cluster
from bespoke_dask.config import BespokeWorkerConfig, pool_setting, setting
from bespoke_dask.errors import ExecutorNotFound, UnknownWorkflow
from bespoke_dask.schema import BespokeExecutorOutput, BespokeWorkflow, Status
from bespoke_dask.settings import Settings

DEFAULT_DIRECTORY = setting("directory")  # bespoke-dask.directory: "bespoke-executor"
SCRATCH = "scratch"  # the workers' files, under the executor's directory

_current: "BespokeDaskExecutor | None" = None


class BespokeDaskExecutor:
    """Fits bespoke torsions on Dask: fragmenter, QC and optimizer pools plus a coordinator.

    With `scheduler_address`, connects to a running executor (`bespoke-dask executor launch`)
    and starts nothing. Otherwise starts a local cluster bound to `host` (loopback by default)
    and the coordinator on `directory`, which holds the store and the workflow records and
    resumes whatever was left unfinished there. `directory=None` uses a temporary directory
    removed on exit (kept when BEFLOW_KEEP_TMP_FILES is set). Arguments left as None fall
    back to BespokeFit's BEFLOW_* variables, then dask.config (`bespoke-dask.*`).
    `tls=True` requires Dask TLS with certificates from dask config or generated into
    `directory` (`bespoke_dask.tls`); `security` gives them explicitly (also when connecting).
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
        tls: bool | None = None,
        security: Security | None = None,
    ):
        self.scheduler_address = scheduler_address
        given = {
            "fragmenter": (n_fragmenter_workers, fragmenter_worker_config),
            "qc": (n_qc_compute_workers, qc_compute_worker_config),
            "optimizer": (n_optimizer_workers, optimizer_worker_config),
        }
        self.pools = {
            pool: (pool_setting(pool, "n-workers", n), config or BespokeWorkerConfig.from_config(pool))
            for pool, (n, config) in given.items()
        }
        self.host = setting("host", host)
        self.port = setting("port", port)
        self.dashboard_port = setting("dashboard-port", dashboard_port)
        self.tls = setting("tls", tls) or security is not None
        self._temporary = directory is None and scheduler_address is None
        self.directory = Path(tempfile.mkdtemp(prefix="bespoke-") if self._temporary else directory)
        self.security = security
        self._cluster = self._client = None

    # -- lifetime --------------------------------------------------------------------
    def start(self) -> "BespokeDaskExecutor":
        """Start (or connect to) the executor."""
        logs.follow_user_logging()
        if self.scheduler_address is None:
            self._start_cluster()
        elif self.security is None:
            self.security = bespoke_tls.resolve(self.directory)
        self._client = _connect(self.scheduler_address, self.security)
        return self

    def _start_cluster(self) -> None:
        plugin = service.CoordinatorPlugin(self.directory)  # locks the directory first
        if self.tls and self.security is None:
            self.security = bespoke_tls.for_executor(self.directory, self.host)
        try:
            self._cluster = local_cluster(
                self.pools,
                host=self.host,
                port=self.port,
                dashboard_port=self.dashboard_port,
                security=self.security,
                plugins=[plugin],
                scratch=self.directory / SCRATCH,
            )
        except BaseException:
            plugin.release()
            raise
        self.scheduler_address = self._cluster.scheduler_address

    def stop(self) -> None:
        """Disconnect; an executor this object started is shut down (and resumes next time)."""
        if self._client is not None:
            self._client.close()
        keep = Settings().keep_tmp_files
        if self._cluster is not None:
            self._cluster.close()
            if not keep:
                shutil.rmtree(self.directory / SCRATCH, ignore_errors=True)
        if self._temporary and not keep:
            shutil.rmtree(self.directory, ignore_errors=True)
        self._cluster = self._client = None

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

    @property
    def client(self) -> Client:
        """The Dask client of this executor (for the user's own Dask work beside the fits)."""
        if self._client is None:
            raise RuntimeError("the executor is not started: use `with BespokeDaskExecutor(...):`")
        return self._client

    # -- workflows -------------------------------------------------------------------
    def submit(self, workflow: BespokeWorkflow, return_future: bool = False):
        """Queue a workflow and return its id (an identical earlier one keeps its id).

        With `return_future`, a `concurrent.futures.Future` of its output instead.
        """
        workflow_id = self._call("submit", workflow)
        return self.future(workflow_id) if return_future else workflow_id

    def future(self, workflow_id: str) -> concurrent.futures.Future:
        """A `concurrent.futures.Future` of the workflow's finished `BespokeExecutorOutput`.

        Its `workflow_id` attribute is the workflow's id.
        """
        self.retrieve(workflow_id)  # unknown ids raise
        future = futures.concurrent_future(self, str(workflow_id))
        future.workflow_id = str(workflow_id)
        return future

    def dask_future(self, workflow_id: str, client: Client | None = None):
        """A Dask future of the workflow's output, e.g. for `client.submit(run_md, future)`.

        It belongs to `client` (default: this executor's), which must talk to this scheduler.
        """
        self.retrieve(workflow_id)
        return futures.dask_future(client or self.client, str(workflow_id))

    def map(self, workflows, timeout: float | None = None):
        """Submit every workflow; yield their outputs in order (as `concurrent.futures.Executor.map`)."""
        submitted = [self.submit(workflow, return_future=True) for workflow in workflows]

        def outputs():
            for future in submitted:
                yield future.result(timeout)

        return outputs()

    def retrieve(self, workflow_id: str) -> BespokeExecutorOutput:
        """A snapshot of the workflow's status and, once finished, its results."""
        output = self._call("output", str(workflow_id))
        if output is None:
            raise UnknownWorkflow(f"no workflow with id {workflow_id}")
        return output

    def list(self, status: Status | None = None) -> list[BespokeExecutorOutput]:
        """Status of every workflow (without results: `retrieve` one for those)."""
        outputs = map(BespokeExecutorOutput.model_validate, self._call("outputs"))
        return [output for output in outputs if status in (None, output.status)]

    def cancel(self, workflow_id: str) -> BespokeExecutorOutput:
        """Cancel a workflow that has not finished; returns its status once it has stopped."""
        output = self._call("cancel", str(workflow_id))
        if output is None:
            raise UnknownWorkflow(f"no workflow with id {workflow_id}")
        return output

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
        return self.client.run_on_scheduler(service.call, operation, *args)


def connect(
    scheduler_address: str | None = None,
    directory: str | os.PathLike | None = None,
    security: Security | None = None,
) -> BespokeDaskExecutor:
    """A started client of the running executor found from the arguments or the environment.

    The address comes from `scheduler_address`, else BEFLOW_SCHEDULER_ADDRESS, else the
    `scheduler.json` the executor wrote into `directory` (default `bespoke-dask.directory`).
    TLS certificates come from `security`, else the directory's, else dask config.
    """
    directory = setting("directory", directory)
    address = setting("scheduler-address", scheduler_address) or service.scheduler_address_from(directory)
    if address is None:
        raise ExecutorNotFound(
            f"no running executor found in {directory}: launch one "
            "with `bespoke-dask executor launch` or give --scheduler"
        )
    executor = BespokeDaskExecutor(scheduler_address=address, directory=directory, security=security)
    return executor.start()


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


def _connect(address: str, security: Security | None) -> Client:
    if address.startswith("tls://") and not (security and security.require_encryption):
        raise ExecutorNotFound(
            f"the executor at {address} requires TLS: give its directory (which holds its "
            "certificates), --tls-ca-file/--tls-cert/--tls-key, or distributed.comm.tls config"
        )
    try:
        return Client(address, timeout=setting("connect-timeout"), security=security)
    except OSError as error:
        raise ExecutorNotFound(f"no executor answers at {address}: {error}") from None


# BespokeFit's name; defined last so the builtin stays usable above.
list = list_workflows  # noqa: A001
