"""The coordinator as a service of the scheduler it runs beside.

The process that starts the cluster hosts the coordinator on an asyncio loop of its own and
registers it under the scheduler's address. Clients anywhere reach it with
`client.run_on_scheduler(call, operation, *args)`: the scheduler's address is the one address
users need. The directory is locked while a coordinator holds it, and its
`scheduler.json` tells clients where the executor listens.
"""

import asyncio
import fcntl
import json
import logging
import os
import threading
from pathlib import Path

from distributed import Client

from bespoke_dask.coordinator import Coordinator

SCHEDULER_FILE = "scheduler.json"
LOCK_FILE = "executor.lock"
OPERATIONS = ("submit", "output", "outputs", "cancel")

_hosted: dict[str, "CoordinatorHost"] = {}


class _HideCalls(logging.Filter):
    """Drop the scheduler's INFO line for every client call of ours (one per status poll)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("Run out-of-band function") and "'call'" in record.getMessage())


logging.getLogger("distributed.worker").addFilter(_HideCalls())


class DirectoryBusy(RuntimeError):
    """Another running executor holds the directory."""


class CoordinatorHost:
    """A coordinator on its own event-loop thread, registered under its scheduler's address."""

    def __init__(self, scheduler_address: str, directory: Path, dashboard_link: str | None = None):
        self.directory = Path(directory)
        self._lock = _lock(self.directory)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="coordinator")
        self._thread.start()
        self.coordinator = self._run(self._connect(scheduler_address))
        self._run(_async(self.coordinator.resume))
        self.address = scheduler_address
        _hosted[scheduler_address] = self
        _write_scheduler_file(self.directory, scheduler_address, dashboard_link)

    async def _connect(self, address: str) -> Coordinator:
        client = await Client(address, asynchronous=True)
        return Coordinator(client, self.directory)

    async def call(self, operation: str, *args):
        """Run a coordinator operation on the coordinator's loop; awaitable from any loop."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        method = getattr(self.coordinator, operation)
        future = asyncio.run_coroutine_threadsafe(_async(method, *args), self._loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Stop the coordinator; unfinished workflows resume when the directory is opened again."""
        _hosted.pop(self.address, None)
        (self.directory / SCHEDULER_FILE).unlink(missing_ok=True)
        self._run(self.coordinator.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._lock.close()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


async def call(operation: str, *args, dask_scheduler=None):
    """Entry point on the scheduler for `Client.run_on_scheduler`."""
    host = _hosted.get(dask_scheduler.address)
    if host is None:
        raise RuntimeError(f"no bespoke executor runs at {dask_scheduler.address}")
    return await host.call(operation, *args)


def scheduler_address_from(directory: str | os.PathLike) -> str | None:
    """The address recorded by the executor running on `directory`, if any."""
    try:
        return json.loads((Path(directory) / SCHEDULER_FILE).read_text())["address"]
    except FileNotFoundError:
        return None


async def _async(function, *args):
    return function(*args)


def _lock(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DirectoryBusy(f"{directory} is held by another running executor") from None
    return handle


def _write_scheduler_file(directory: Path, address: str, dashboard_link: str | None) -> None:
    info = {"address": address, "dashboard": dashboard_link, "pid": os.getpid()}
    temporary = directory / f".{SCHEDULER_FILE}.tmp"
    temporary.write_text(json.dumps(info, indent=2))
    os.replace(temporary, directory / SCHEDULER_FILE)
