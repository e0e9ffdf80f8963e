"""Read (and cancel) a running executor's workflows through its dashboard's JSON routes, without a Dask client.

`executor list`, `retrieve` and `watch` only read, and the Bespoke dashboard (`bespoke_dask.dashboard`)
serves every workflow as `BespokeExecutorOutput` JSON, so they ask it over HTTP with the standard
library instead of importing and connecting Dask distributed (about a second of CPU). `executor
cancel` posts to it with the token from the executor's `scheduler.json` (readable by its user only).
Only for an executor whose `scheduler.json` names its dashboard and whose scheduler speaks plain
TCP: Dask's dashboard has no certificates, so a TLS executor is reached through Dask, behind its own.
"""

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bespoke_dask.errors import ExecutorNotFound
from bespoke_dask.schema import FINISHED, BespokeExecutorOutput

SCHEDULER_FILE = "scheduler.json"  # written by the coordinator's plugin (bespoke_dask.service)
TIMEOUT = 10.0  # s to wait for an answer, as bespoke-dask.connect-timeout's default
POLL = 0.5  # s between two reads of a workflow being watched
TOKEN_HEADER = "X-Bespoke-Token"  # carries scheduler.json's token to the cancel route


class DashboardReader:
    """`list`, `retrieve`, `wait_until_complete` and `cancel` of `BespokeDaskExecutor` through
    `/bespoke/api/outputs[/<id>[/cancel]]` on the dashboard at `url`; None when it cannot answer."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # The dashboard is the executor's own: a proxy configured for the web would not reach it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def list(self) -> "list[BespokeExecutorOutput] | None":
        """Every workflow's status, without results (as `BespokeDaskExecutor.list`)."""
        return self._ask("outputs", lambda data: [BespokeExecutorOutput.model_validate(item) for item in data])

    def retrieve(self, workflow_id: str) -> BespokeExecutorOutput | None:
        """One workflow's status and results (as `BespokeDaskExecutor.retrieve`)."""
        return self._ask(_output_route(workflow_id), BespokeExecutorOutput.model_validate)

    def wait_until_complete(
        self,
        workflow_id: str,
        callback: Callable[[BespokeExecutorOutput], None] | None = None,
        poll: float = POLL,
    ) -> BespokeExecutorOutput | None:
        """Read the workflow every `poll` s until it finishes, calling `callback` with each new status
        (as `BespokeDaskExecutor.wait_until_complete`); None if the dashboard cannot tell at first."""
        output = shown = self.retrieve(workflow_id)
        if output is None:
            return None
        if callback is not None:
            callback(output)
        while output.status not in FINISHED:
            time.sleep(poll)
            output = self.retrieve(workflow_id)
            if output is None:
                raise ExecutorNotFound(f"the executor stopped answering at {self.url} while workflow {workflow_id} ran")
            if callback is not None and output != shown:
                callback(output)
                shown = output
        return output

    def cancel(self, workflow_id: str) -> BespokeExecutorOutput | None:
        """Cancel a workflow and return its final status (as `BespokeDaskExecutor.cancel`)."""
        if self.token is None:
            return None
        route = f"{self.url}/bespoke/api/{_output_route(workflow_id)}/cancel"
        request = urllib.request.Request(route, data=b"", headers={TOKEN_HEADER: self.token})
        return self._ask(request, BespokeExecutorOutput.model_validate)

    def _ask(self, route: "str | urllib.request.Request", parse):
        if isinstance(route, str):
            route = f"{self.url}/bespoke/api/{route}"
        try:
            with self._opener.open(route, timeout=self.timeout) as response:
                return parse(json.load(response))
        except (OSError, ValueError):  # gone, an unknown id, an older executor: Dask's client says which
            return None


def _output_route(workflow_id: str) -> str:
    return f"outputs/{urllib.parse.quote(str(workflow_id), safe='')}"


def dashboard_of(directory: str | os.PathLike, scheduler_address: str | None = None) -> DashboardReader | None:
    """The reader of the executor running on `directory` (at `scheduler_address`, if given), if any."""
    try:
        info = json.loads((Path(directory) / SCHEDULER_FILE).read_text())
        address, link = info["address"], info.get("dashboard")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not link or not address.startswith("tcp://") or scheduler_address not in (None, address):
        return None
    return DashboardReader(link.rsplit("/", 1)[0], info.get("token"))  # the link names its status page
