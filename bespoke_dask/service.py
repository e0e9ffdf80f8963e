"""The coordinator as a plugin of the Dask scheduler, wherever that scheduler runs.

`CoordinatorPlugin(directory)` is registered on a scheduler: by `BespokeDaskExecutor` (in
`executor launch`), by `dask scheduler --preload bespoke_dask.preload`, or by a jobqueue
cluster's `scheduler_options={"preload": ["bespoke_dask.preload"]}`. It runs the coordinator
on the scheduler's own event loop. Clients anywhere reach it with
`client.run_on_scheduler(call, operation, *args)`: the scheduler's address is the one address
users need. The directory is locked while a coordinator holds it, and its `scheduler.json`
tells clients on the same file system where the executor listens.
"""

import asyncio
import fcntl
import gc
import hmac
import inspect
import json
import logging
import os
import secrets
from pathlib import Path

from dask.utils import parse_timedelta
from distributed import Client, SchedulerPlugin
from distributed.security import Security
from distributed.utils import format_dashboard_link

from bespoke_dask import graph
from bespoke_dask.config import setting
from bespoke_dask.coordinator import Coordinator
from bespoke_dask.errors import DirectoryBusy
from bespoke_dask.progress import WorkflowEvents

PLUGIN_NAME = "bespoke-coordinator"
SCHEDULER_FILE = "scheduler.json"
LOCK_FILE = "executor.lock"
OPERATIONS = ("submit", "output", "outputs", "depiction", "cancel")

logger = logging.getLogger(__name__)


class _HideCalls(logging.Filter):
    """Drop the scheduler's INFO line for every client call of ours (one per status poll)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("Run out-of-band function") and "'call'" in record.getMessage())


logging.getLogger("distributed.worker").addFilter(_HideCalls())


class CoordinatorPlugin(SchedulerPlugin):
    """Hosts the coordinator of `directory` on the scheduler it is registered with.

    The directory is locked when the plugin is made, so a second executor on it fails at once.
    """

    name = PLUGIN_NAME

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).resolve()
        self._lock = _lock(self.directory)
        self._ready: asyncio.Future | None = None
        self.coordinator: Coordinator | None = None
        # Lets the dashboard's cancel route (bespoke_dask.dashboard) act for whoever can read this
        # directory's scheduler.json, as a Dask client on the scheduler's address can.
        self.token = secrets.token_urlsafe(32)

    async def start(self, scheduler) -> None:
        self.scheduler = scheduler
        if scheduler.no_workers_timeout is None:  # distributed's own setting wins when given
            scheduler.no_workers_timeout = parse_timedelta(setting("no-workers-timeout"))
        # The coordinator's client connects to this very scheduler, which answers only once
        # its start has returned: connect in the background, operations wait for it.
        self._ready = asyncio.ensure_future(self._open(scheduler))

    async def _open(self, scheduler) -> Coordinator:
        client = await Client(
            scheduler.address, asynchronous=True, security=_client_security(scheduler.security)
        )
        await client.register_plugin(graph.WarmStages())  # every worker, also those joining later
        self.coordinator = Coordinator(client, self.directory, WorkflowEvents(scheduler), finished=self._announce)
        for workflow_id in self.coordinator.finished():
            self._announce(workflow_id)
        resumed = self.coordinator.resume()
        if resumed:
            logger.info("resuming workflows %s", ", ".join(resumed))
        _write_scheduler_file(self.directory, scheduler, self.token)
        return self.coordinator

    def _announce(self, workflow_id: str) -> None:
        """Set the workflow's Dask event: futures waiting for it resolve (bespoke_dask.futures)."""
        self.scheduler.extensions["events"].event_set(finished_event(workflow_id))

    async def call(self, operation: str, *args):
        """Run a coordinator operation once the coordinator is up."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        coordinator = await asyncio.shield(self._ready)
        answer = getattr(coordinator, operation)(*args)
        return await answer if inspect.isawaitable(answer) else answer

    async def close(self) -> None:
        """Stop the coordinator; unfinished workflows resume when the directory is opened again."""
        (self.directory / SCHEDULER_FILE).unlink(missing_ok=True)
        if self._ready is not None:
            coordinator = await self._ready
            await coordinator.close()
        self.release()

    def release(self) -> None:
        """Unlock the directory (done by `close`; call it if the scheduler never started)."""
        self._lock.close()


def tame_garbage_collection() -> None:
    """Garbage collection for a process the executor has to itself, once it has started.

    The start-up heap (Dask, Bokeh, pydantic: about 170,000 objects) is frozen out of later
    collections: a full collection of it held the scheduler's event loop for 0.35 s. Bokeh's
    `Document.destroy` (every dashboard session it closes) collects the young generations only:
    its full `gc.collect()` walked all the workflows in flight hold (0.42 s with 1,000 of them,
    10 minutes in); what it leaves goes at the collector's own next full collection. Not in a
    user's own process (`BespokeDaskExecutor`): what is frozen is never collected, should it
    become cyclic garbage.
    """
    import bokeh.document.document as bokeh_document

    bokeh_document.gc = _YoungCollections()
    gc.collect()
    gc.freeze()


class _YoungCollections:
    """The `gc` module as Bokeh's documents see it: `collect()` sweeps generations 0 and 1."""

    def __getattr__(self, name: str):
        return getattr(gc, name)

    @staticmethod
    def collect(generation: int = 2) -> int:
        return gc.collect(min(generation, 1))


def finished_event(workflow_id: str) -> str:
    """Name of the Dask `Event` set when workflow `workflow_id` finishes."""
    return f"bespoke-workflow-finished-{workflow_id}"


async def call(operation: str, *args, dask_scheduler=None):
    """Entry point on the scheduler for `Client.run_on_scheduler`."""
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    if plugin is None:
        raise RuntimeError(
            f"no bespoke executor runs at {dask_scheduler.address}: start the scheduler with "
            "`--preload bespoke_dask.preload`"
        )
    return await plugin.call(operation, *args)


def token_accepted(dashboard_scheduler, token: str) -> bool:
    """Whether `token` is the one the executor on this scheduler wrote to its scheduler.json."""
    plugin = dashboard_scheduler.plugins.get(PLUGIN_NAME)
    return plugin is not None and hmac.compare_digest(plugin.token.encode(), token.encode())


def scheduler_address_from(directory: str | os.PathLike) -> str | None:
    """The address recorded by the executor running on `directory`, if any."""
    try:
        return json.loads((Path(directory) / SCHEDULER_FILE).read_text())["address"]
    except FileNotFoundError:
        return None


def _client_security(security: Security) -> Security:
    """The scheduler's own certificate stands in for a client one it was not given."""
    if not security.require_encryption or security.tls_client_cert:
        return security
    return Security(
        tls_ca_file=security.tls_ca_file,
        tls_client_cert=security.tls_scheduler_cert,
        tls_client_key=security.tls_scheduler_key,
        require_encryption=True,
    )


def _lock(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DirectoryBusy(f"{directory} is held by another running executor") from None
    return handle


def _write_scheduler_file(directory: Path, scheduler, token: str) -> None:
    """Where the executor listens, and its token, in a file only this user can read."""
    dashboard = scheduler.services.get("dashboard")
    host = scheduler.address.split("://")[-1].rsplit(":", 1)[0]
    info = {
        "address": scheduler.address,
        "dashboard": format_dashboard_link(host, dashboard.port) if dashboard else None,
        "pid": os.getpid(),
        "token": token,
    }
    temporary = directory / f".{SCHEDULER_FILE}.tmp"
    temporary.unlink(missing_ok=True)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(info, file, indent=2)
    os.replace(temporary, directory / SCHEDULER_FILE)
