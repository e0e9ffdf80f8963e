"""Futures of workflows, resolved when the coordinator announces the end of a workflow.

The coordinator sets a named Dask `Event` per finished workflow (`service.finished_event`), so
nothing polls. A `concurrent.futures.Future` waits for it on the client's event loop; a Dask
future is a task on any worker that secedes from the worker's thread pool and waits for it, so
it holds no pool resource and no thread a stage needs.
"""

import asyncio
import concurrent.futures
import uuid

from distributed import Client, Event, get_client, secede

from bespoke_dask import service
from bespoke_dask.schema import BespokeExecutorOutput


def concurrent_future(executor, workflow_id: str) -> concurrent.futures.Future:
    """A `concurrent.futures.Future` of the workflow's `BespokeExecutorOutput` (from `retrieve`)."""
    client: Client = executor.client

    async def output() -> BespokeExecutorOutput:
        await client.scheduler.event_wait(name=service.finished_event(workflow_id), timeout=None)
        return await asyncio.get_running_loop().run_in_executor(None, executor.retrieve, workflow_id)

    return asyncio.run_coroutine_threadsafe(output(), client.loop.asyncio_loop)


def dask_future(client: Client, workflow_id: str):
    """A Dask future of the workflow's output, for Dask tasks of the user that depend on a fit."""
    return client.submit(
        workflow_output, workflow_id, key=f"bespoke-workflow-{workflow_id}-{uuid.uuid4().hex[:8]}"
    )


def workflow_output(workflow_id: str) -> BespokeExecutorOutput:
    """Runs on any worker: wait for the workflow, then fetch its output from the coordinator."""
    secede()  # leave the worker's threads to the stages while this waits
    Event(service.finished_event(workflow_id)).wait()
    return get_client().run_on_scheduler(service.call, "output", workflow_id)
