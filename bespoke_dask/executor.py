"""`BespokeDaskExecutor`: a local Dask cluster with per-stage pools plus the coordinator.

The coordinator runs on its own asyncio loop in a background thread; the public methods are
synchronous and safe to call from any thread.
"""

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dask.config
from distributed import Client

from bespoke_dask.cluster import local_cluster
from bespoke_dask.config import BespokeWorkerConfig, pool_size
from bespoke_dask.coordinator import Coordinator
from bespoke_dask.schema import BespokeExecutorOutput, BespokeWorkflow, Status

FINISHED: tuple[Status, ...] = ("success", "errored", "cancelled")

_current: "BespokeDaskExecutor | None" = None


class BespokeDaskExecutor:
    """Fits bespoke torsions on a local Dask cluster: fragmenter, QC and optimizer pools.

    Arguments left as None fall back to dask.config (`bespoke-dask.*`) and BEFLOW_* variables.
    `directory` holds the store and the workflow records; None uses a temporary directory
    removed on exit (kept when BEFLOW_KEEP_TMP_FILES is set).
    """

    def __init__(
        self,
        n_fragmenter_workers: int | None = None,
        n_qc_compute_workers: int | None = None,
        n_optimizer_workers: int | None = None,
        fragmenter_worker_config: BespokeWorkerConfig | None = None,
        qc_compute_worker_config: BespokeWorkerConfig | None = None,
        optimizer_worker_config: BespokeWorkerConfig | None = None,
        directory: str | os.PathLike | None = "bespoke-executor",
        host: str | None = None,
        port: int | None = None,
        dashboard_port: int | None = None,
    ):
        self.pools = {
            "fragmenter": (
                _given(n_fragmenter_workers, pool_size("fragmenter")),
                fragmenter_worker_config or BespokeWorkerConfig.from_config("fragmenter"),
            ),
            "qc": (
                _given(n_qc_compute_workers, pool_size("qc")),
                qc_compute_worker_config or BespokeWorkerConfig.from_config("qc"),
            ),
            "optimizer": (
                _given(n_optimizer_workers, pool_size("optimizer")),
                optimizer_worker_config or BespokeWorkerConfig.from_config("optimizer"),
            ),
        }
        for pool, (n_workers, _) in self.pools.items():
            if n_workers < 1:
                raise ValueError(f"the {pool} pool needs at least one worker")
        self.host = host or dask.config.get("bespoke-dask.host")
        self.port = _given(port, dask.config.get("bespoke-dask.port"))
        self.dashboard_port = _given(dashboard_port, dask.config.get("bespoke-dask.dashboard-port"))
        self._temporary = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="bespoke-") if directory is None else directory)
        self._cluster = self._loop = self._coordinator = None

    # -- lifetime --------------------------------------------------------------------
    def start(self) -> "BespokeDaskExecutor":
        """Start the cluster and the coordinator; resume unfinished workflows in `directory`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cluster = local_cluster(
            self.pools,
            host=self.host,
            port=self.port,
            dashboard_port=self.dashboard_port,
            worker_threads=dask.config.get("bespoke-dask.worker-threads"),
        )
        self._loop = _LoopThread()
        self._coordinator = self._loop.run(self._connect())
        self._loop.run(_call(self._coordinator.resume))
        return self

    async def _connect(self) -> Coordinator:
        client = await Client(self._cluster.scheduler_address, asynchronous=True)
        return Coordinator(client, self.directory)

    def stop(self) -> None:
        """Stop the coordinator and the cluster; unfinished workflows resume on the next start."""
        if self._loop is not None:
            self._loop.run(self._coordinator.client.close())
            self._loop.stop()
        if self._cluster is not None:
            self._cluster.close()
        if self._temporary and not os.environ.get("BEFLOW_KEEP_TMP_FILES"):
            shutil.rmtree(self.directory, ignore_errors=True)
        self._cluster = self._loop = self._coordinator = None

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
    def scheduler_address(self) -> str:
        return self._cluster.scheduler_address

    @property
    def dashboard_link(self) -> str | None:
        return self._cluster.dashboard_link if self.dashboard_port is not None else None

    # -- workflows -------------------------------------------------------------------
    def submit(self, workflow: BespokeWorkflow) -> str:
        """Queue a workflow and return its id."""
        return self._loop.run(_call(self._coordinator.submit, workflow))

    def retrieve(self, workflow_id: str) -> BespokeExecutorOutput:
        """A snapshot of the workflow's status and, once finished, its results."""
        return self._loop.run(_call(self._snapshot, workflow_id))

    def list(self, status: Status | None = None) -> list[BespokeExecutorOutput]:
        outputs = self._loop.run(_call(self._snapshots))
        return [output for output in outputs if status in (None, output.status)]

    def cancel(self, workflow_id: str) -> None:
        self._loop.run(_call(self._snapshot, workflow_id))  # unknown ids raise
        self._loop.run(_call(self._coordinator.cancel, workflow_id))

    def wait_until_complete(
        self,
        workflow_id: str,
        frequency: float = 1.0,
        callback: Callable[[BespokeExecutorOutput], None] | None = None,
    ) -> BespokeExecutorOutput:
        """Block until the workflow finishes, calling `callback` with each status snapshot."""
        while True:
            output = self.retrieve(workflow_id)
            if callback is not None:
                callback(output)
            if output.status in FINISHED:
                return output
            time.sleep(frequency)

    def _snapshot(self, workflow_id: str) -> BespokeExecutorOutput:
        record = self._coordinator.records.get(str(workflow_id))
        if record is None:
            raise KeyError(f"no workflow with id {workflow_id}")
        return record.output.model_copy(deep=True)

    def _snapshots(self) -> list[BespokeExecutorOutput]:
        return [self._snapshot(workflow_id) for workflow_id in self._coordinator.records]


def wait_until_complete(workflow_id: str, frequency: float = 1.0) -> BespokeExecutorOutput:
    """Wait for a workflow of the executor opened by the enclosing `with` block."""
    return _active().wait_until_complete(workflow_id, frequency)


def submit(workflow: BespokeWorkflow) -> str:
    return _active().submit(workflow)


def retrieve(workflow_id: str) -> BespokeExecutorOutput:
    return _active().retrieve(workflow_id)


def _active() -> BespokeDaskExecutor:
    if _current is None:
        raise RuntimeError("no executor is running: use `with BespokeDaskExecutor(...):`")
    return _current


def _given(value, default):
    return default if value is None else value


async def _call(function, *args):
    """Run a plain function on the coordinator's loop (it may start tasks there)."""
    return function(*args)


class _LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="coordinator")
        self._thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
