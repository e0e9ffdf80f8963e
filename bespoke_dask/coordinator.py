"""The coordinator: drives every submitted workflow through its stages as Dask work.

One asyncio driver per workflow expands the graph as results arrive: fragment, then one
torsiondrive per unique scan (each wavefront's constrained optimizations as separate `qc`
tasks) and, meanwhile, the AM1-BCC charges of its molecule, then the fit. Every stage result
is looked up in the store before any work is submitted and written there when it arrives, so
identical work is done once, and a new coordinator on the same directory resumes whatever was
left unfinished.
"""

import asyncio
import contextlib
import contextvars
import hashlib
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from dask.utils import format_time
from distributed import Client
from distributed.scheduler import NoValidWorkerError, NoWorkerError

from bespoke_dask import graph, partial, policy
from bespoke_dask.config import WORKER_TYPES
from bespoke_dask.errors import InputError, StageTimeout, one_line
from bespoke_dask.graph import Stage
from bespoke_dask.progress import SharedScan, WorkflowEvents, event, qc_profile, scan_profile
from bespoke_dask.schema import (
    BespokeExecutorOutput,
    BespokeWorkflow,
    DrawingRequest,
    FitTarget,
    PartialCharges,
    ScannedMolecule,
    ScanProgress,
    StageStatus,
    StageTimeouts,
    TorsionScanResult,
    TorsionScanTask,
    WorkflowRecord,
)
from bespoke_dask.shared_runs import SharedRuns
from bespoke_dask.store import Store

logger = logging.getLogger(__name__)

SCANS = "scan"  # store folder of finished torsiondrives, keyed by their task's hash
# Dask priority of the tasks a driver submits: minus its workflow's number, so that the
# workflows submitted first finish first instead of every workflow advancing in step.
_priority: contextvars.ContextVar[float] = contextvars.ContextVar("priority", default=0)


class CacheMiss(LookupError):
    """A cache-only workflow needs a scan the store does not have."""


class StageFailed(Exception):
    """A stage ended in error; its status already says why."""


class NoWorkers(RuntimeError):
    """A task waited longer than `bespoke-dask.no-workers-timeout` for a worker of its pool."""

    def __init__(self, pool: str, address: str, timeout: float):
        super().__init__(
            f"no {pool} worker joined within {format_time(timeout)}: add one with "
            f"`bespoke-dask launch-worker --worker-type {pool} --scheduler {address}`"
        )


class Coordinator:
    """Turns workflows into Dask work and tracks their state. Runs on one asyncio loop."""

    def __init__(
        self,
        client: Client,
        directory: str | Path,
        events: WorkflowEvents,
        finished: Callable[[str], None] | None = None,
    ):
        """`events` carry each status to the clients following it; `finished(id)` is called
        whenever a workflow ends (success, errored or cancelled)."""
        self.client = client
        self.events = events
        self._finished = finished or (lambda workflow_id: None)
        self.directory = Path(directory)
        self.store = Store(self.directory / "store")
        # Every store call after loading runs on this thread, in order: the scheduler's event loop
        # never waits for the disk, and a read queued after a write sees it.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="bespoke-store")
        self.records = {record.output.id: record for record in self._load_records()}
        # what `outputs` lists: each workflow's status as last pushed (made by `_publish`)
        self._listed = {workflow_id: event(record.output) for workflow_id, record in self.records.items()}
        by_number = sorted(self.records.values(), key=lambda record: int(record.output.id))
        self._ids = {_identity(record.workflow): record.output.id for record in by_number}  # the latest of each
        self._numbers = itertools.count(max(map(int, self.records), default=0) + 1)
        self._drivers: dict[str, asyncio.Task] = {}
        self._runs = SharedRuns()  # identical work under way, done once for all who ask
        self._scans: dict[str, SharedScan] = {}  # torsiondrives under way, by task hash
        # per workflow: its drawings and the dropping of its events
        self._background: dict[str, set[asyncio.Task]] = {}
        self._retried: dict[str, list[str]] = {}  # task key -> why its run under way ran it again
        self._closing = False

    # -- workflows -------------------------------------------------------------------
    def submit(self, workflow: BespokeWorkflow) -> str:
        """Start a workflow; an identical one already finished or under way keeps its id."""
        identity = _identity(workflow)
        same = self.records.get(self._ids.get(identity))
        if same is not None and same.output.status not in ("errored", "cancelled"):
            return same.output.id
        workflow_id = str(next(self._numbers))
        self._ids[identity] = workflow_id
        record = WorkflowRecord(
            workflow=workflow.model_copy(update={"id": workflow_id}),
            output=BespokeExecutorOutput(id=workflow_id, smiles=workflow.smiles, qc_spec=workflow.qc_spec),
        )
        self.records[workflow_id] = record
        self._save(record)
        self._start(record)
        return workflow_id

    def resume(self) -> list[str]:
        """Restart the drivers of every unfinished workflow found on disk."""
        unfinished = [
            record
            for record in self.records.values()
            if record.output.status in ("waiting", "running")
        ]
        for record in unfinished:
            self._start(record)
        return [record.output.id for record in unfinished]

    def finished(self) -> list[str]:
        """Ids of the workflows that have ended."""
        return [i for i, record in self.records.items() if record.output.status not in ("waiting", "running")]

    async def cancel(self, workflow_id: str) -> BespokeExecutorOutput | None:
        """Stop a workflow (work no other workflow waits for is released from the cluster); its
        status once stopped, as `output` (a finished one's as it is; None for an unknown id)."""
        driver = self._drivers.get(str(workflow_id))
        if driver is not None and not driver.done():
            driver.cancel()
            await asyncio.wait([driver])  # its stages marked cancelled: no round trip on the way
        return self.output(workflow_id)

    def output(self, workflow_id: str) -> BespokeExecutorOutput | None:
        """A snapshot of one workflow's status and results; None for an unknown id."""
        record = self.records.get(str(workflow_id))
        return None if record is None else record.output.model_copy(deep=True)

    def outputs(self) -> list[dict]:
        """Every workflow's status as last pushed: `BespokeExecutorOutput` JSON without results
        (a refit force field is large) or drawing.

        Kept as statuses are pushed, so a list copies nothing: a deep copy of 1,000 records held
        the scheduler's event loop for about a second at every `executor list`.
        """
        return list(self._listed.values())

    def depiction(self, workflow_id: str) -> str | None:
        """The SVG drawing of a workflow's molecule, once drawn."""
        record = self.records.get(str(workflow_id))
        return None if record is None else record.output.depiction

    async def close(self) -> None:
        """Stop every driver without marking anything cancelled (a restart resumes them)."""
        self._closing = True
        background = [task for tasks in self._background.values() for task in tasks]
        for driver in [*self._drivers.values(), *background]:
            driver.cancel()
        await asyncio.gather(*self._drivers.values(), *background, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._io.shutdown)  # every write done
        await self.client.close()

    def _start(self, record: WorkflowRecord) -> None:
        driver = asyncio.get_running_loop().create_task(self._drive(record))
        self._drivers[record.output.id] = driver
        driver.add_done_callback(lambda _: self._closing or self._finished(record.output.id))

    async def _drive(self, record: WorkflowRecord) -> None:
        _priority.set(-int(record.output.id))  # this task's context: inherited by its scans
        workflow = record.workflow.model_copy(update={"id": None})  # ids must not change keys
        self._spawn(record, self._draw(record, [record.output.smiles], [[]]))
        timeouts = workflow.timeouts
        with contextlib.suppress(StageFailed, asyncio.CancelledError):
            async with self._stage(record, "fragmentation") as status:
                molecule = workflow.without_fit_settings()  # shared by fits of the same scans
                fragmentation = await self.compute(
                    graph.FRAGMENT, workflow.fragmentation_input(), limits=timeouts, notes=status.retries
                )
                targets = await self.compute(
                    graph.TARGETS, molecule, fragmentation, limits=timeouts, notes=status.retries
                )
            async with self._stage(record, "qc-generation") as status:
                tasks = {target.scan.content_hash(): target.scan for target in targets}
                if workflow.cache_only:
                    await self._check_cached(tasks)
                status.scans = [ScanProgress(smiles=task.smiles) for task in tasks.values()]
                bonds = [(a + 1, b + 1) for t in targets for p in t.parameters for a, b in p.parent_bonds]
                scans = [task.smiles for task in tasks.values()]
                self._spawn(record, self._draw(record, [workflow.smiles, *scans], [bonds, *[[(1, 2)]] * len(scans)]))
                outcomes = await asyncio.gather(
                    *(
                        self._scan(task, progress, lambda: self._publish(record), timeouts)
                        for task, progress in zip(tasks.values(), status.scans)
                    ),
                    *(self.compute(graph.CHARGES, ScannedMolecule(smiles=t.smiles), limits=timeouts) for t in tasks.values()),
                    return_exceptions=True,
                )
                running = dict(zip(tasks, outcomes))
                # charges that failed are left to the fit, which then reports the failure as its own
                charges = {key: c for key, c in zip(tasks, outcomes[len(tasks):]) if isinstance(c, PartialCharges)}
                targets, skipped = partial.fitted_and_skipped(targets, running, workflow.allow_partial)
            async with self._stage(record, "optimization") as status:
                parameters = list({p.smirks: p for t in targets for p in t.parameters}.values())
                fit_targets = [
                    FitTarget(
                        smirks=[parameter.smirks for parameter in target.parameters],
                        scan=running[target.scan.content_hash()],
                        charges=charges.get(target.scan.content_hash()),
                    )
                    for target in targets
                ]
                result = await self.compute(
                    graph.OPTIMIZE, workflow, parameters, fit_targets, limits=timeouts, notes=status.retries
                )
                record.output.results = result.model_copy(update={"skipped": skipped})
                metrics = record.output.results.metrics
                scanned = [m.mapped_smiles for m in metrics]
                await self._draw(record, scanned, [[m.dihedral[1:3]] for m in metrics], offset=1)
        if not self._closing:
            self._spawn(record, self._forget_events(record))

    @contextlib.asynccontextmanager
    async def _stage(self, record: WorkflowRecord, stage_type: str):
        """Mark a stage running, then success, errored (with its reason) or cancelled."""
        status: StageStatus = record.output.stage(stage_type)
        status.status, status.started_at = "running", time.time()
        self._save(record)
        try:
            yield status
            status.status = "success"
        except asyncio.CancelledError:
            if not self._closing:
                status.status = "cancelled"
            raise
        except Exception as error:
            status.status, status.error = "errored", one_line(error, limit=None)  # lists every failed torsion
            raise StageFailed(status.error) from error
        finally:
            if not self._closing:
                status.ended_at = time.time()
                self._save(record)

    # -- torsiondrives ---------------------------------------------------------------
    async def _check_cached(self, tasks: dict[str, TorsionScanTask]) -> None:
        """Raise naming every scan the store lacks (a cache-only workflow runs no QC)."""
        stored = [await self._stored("get", SCANS, key, TorsionScanResult) for key in tasks]
        missing = [task for task, scan in zip(tasks.values(), stored) if scan is None]
        if missing:
            names = "; ".join(f"{task.smiles} ({task.grid_spacing} deg, {task.qc_spec.program} "
                              f"{task.qc_spec.method}/{task.qc_spec.basis})" for task in missing)
            raise CacheMiss(f"cache only, but {len(missing)} of {len(tasks)} scans are not in the store: {names}")

    async def _scan(
        self, task: TorsionScanTask, progress: ScanProgress, changed, timeouts: StageTimeouts | None = None
    ) -> TorsionScanResult:
        """A finished torsiondrive; `progress` follows it (also when another workflow started it)."""
        key = task.content_hash()
        limit = policy.timeout("torsiondrive", timeouts)
        try:
            result = await self._stored("get", SCANS, key, TorsionScanResult)
            if result is None:
                shared = self._scans.setdefault(key, SharedScan(task.smiles))
                shared.attach(progress, changed)
                drive = self._runs.run(f"{SCANS}-{key}", lambda: self._drive_scan(task, shared, timeouts))
                try:
                    result = await asyncio.wait_for(drive, limit)
                except TimeoutError:
                    raise StageTimeout(f"{policy.label('scan')} stopped at its time limit of {limit:g} s") from None
                finally:  # a workflow that stops waiting (cancelled) no longer follows the scan
                    shared.detach(progress)
        except Exception as error:
            progress.status, progress.error = "errored", one_line(error)
            changed()
            raise RuntimeError(f"scan of {task.smiles} failed: {progress.error}") from error
        progress.status = "success"
        progress.grid_points = progress.grid_points_done = len(result.grid)
        progress.optimizations = result.n_optimizations
        progress.angles, progress.energies = scan_profile(result)
        changed()
        return result

    async def _drive_scan(
        self, task: TorsionScanTask, shared: SharedScan, timeouts: StageTimeouts | None = None
    ) -> TorsionScanResult:
        """Run a torsiondrive wavefront by wavefront, every optimization its own `qc` task.

        The jobs of the next wavefront that finished ones already decide start at once, behind
        the current wavefront's own (they fill the workers the wavefront's tail leaves idle;
        `bespoke-dask.scan-ahead: false` turns this off).
        """
        ahead: dict[str, asyncio.Task] = {}
        try:
            shared.update(status="running")
            step = await self.compute(graph.SCAN_START, task)
            shared.update(grid_points=step.state.grid_points)
            while step.result is None:
                results = await self._wavefront(step, shared, timeouts, ahead)
                step = await self.compute(graph.SCAN_ADVANCE, step.state, results)
                angles, energies = qc_profile(step.state.td_state)
                shared.update(
                    grid_points_done=step.state.grid_points_done,
                    optimizations=step.state.n_optimizations,
                    angles=angles,
                    energies=energies,
                )
            await self._stored("put", SCANS, task.content_hash(), step.result)
            return step.result
        finally:
            for started in ahead.values():
                started.cancel()  # a job started ahead that no wavefront asked for
            if self._scans.get(task.content_hash()) is shared:
                del self._scans[task.content_hash()]

    async def _wavefront(self, step, shared: SharedScan, timeouts: StageTimeouts | None, ahead: dict) -> list:
        """The results of a wavefront's jobs; as each finishes, the jobs it decides are started."""
        done: dict[int, object] = {}

        async def run(index: int, job):
            done[index] = await self._optimize(job, shared, timeouts)
            if len(done) < len(step.jobs) and policy.scan_ahead():  # else `advance` decides
                finished = sorted(done)
                jobs, results = [step.jobs[i] for i in finished], [done[i] for i in finished]
                decide = self._start_decided(step.state, jobs, results, timeouts, ahead)
                # a cheap unique name: hashing the state here would repeat the hashing `compute` does
                ahead[f"decide-{id(step)}-{len(done)}"] = asyncio.create_task(_quietly(decide))
            return done[index]

        async with asyncio.TaskGroup() as group:  # one failure stops the others
            running = [group.create_task(run(index, job)) for index, job in enumerate(step.jobs)]
        return [optimization.result() for optimization in running]

    async def _start_decided(self, state, jobs: list, results: list, timeouts: StageTimeouts | None, ahead: dict):
        """Start the jobs of the next wavefront that these finished ones decide, behind the
        jobs already waiting in this workflow (and before those of later workflows)."""
        _priority.set(_priority.get() - 0.5)  # this task's context only
        for job in await self.compute(graph.SCAN_DECIDED, state, jobs, results):
            key = graph.task_key(graph.QC, job)
            if key not in ahead:
                ahead[key] = asyncio.create_task(_quietly(self.compute(graph.QC, job, limits=timeouts)))

    async def _optimize(self, job, shared: SharedScan, timeouts: StageTimeouts | None):
        """One grid point's optimization; a failed one runs once more from another start geometry."""
        notes = shared.state.retries
        try:
            result = await self.compute(graph.QC, job, limits=timeouts, notes=notes)
        except (StageTimeout, InputError):
            raise  # waiting as long again, or the same bad input, would not help
        except Exception as error:
            restart = await self.compute(graph.QC_RESTART, job)
            notes.append(f"optimization at {job.angle:g} deg restarted from another geometry: {one_line(error)}")
            shared.update(retries=notes)
            try:
                result = await self.compute(graph.QC, restart, limits=timeouts, notes=notes)
            except Exception as again:
                raise RuntimeError(f"grid point {job.angle:g} deg failed twice: {one_line(again)}") from again
            # td_api knows its jobs by their start geometry: answer for the job it asked for.
            result = result.model_copy(update={"initial_geometry": job.geometry})
        shared.update(optimizations=shared.state.optimizations + 1, retries=notes)  # seen before the wavefront ends
        return result

    # -- tasks -----------------------------------------------------------------------
    async def compute(self, stage: Stage, *args, limits: StageTimeouts | None = None, notes: list[str] | None = None):
        """A stage's result: from the store, from identical work under way, or computed now.

        `limits` are the workflow's time limits; every re-run of the task is noted in `notes`.
        """
        key = graph.task_key(stage, *args)
        if stage.cached:
            stored = await self._stored("get", stage.name, key, stage.result_type)
            if stored is not None:
                return stored
        try:
            return await self._runs.run(
                key, lambda: self._compute(stage, key, args, policy.stage_timeout(stage.name, limits))
            )
        finally:
            retried = self._retried.get(key, []) if self._runs.busy(key) else self._retried.pop(key, [])
            if notes is not None:
                notes.extend(note for note in retried if note not in notes)

    async def _compute(self, stage: Stage, key: str, args: tuple, timeout: float | None):
        future = graph.submit(self.client, stage, *args, timeout=timeout, priority=_priority.get())
        try:
            return await self._result(stage, key, future)
        finally:
            # Now, not when garbage collection finds it: an error's traceback holds the future,
            # and the client holds the error, so an erred task stayed on the scheduler for good
            # and a later run of the same key got the old error back without running.
            future.release()

    async def _result(self, stage: Stage, key: str, future):
        """The task's result, run again (up to `bespoke-dask.retries`) when its worker died."""
        attempt = 0
        while True:
            try:
                result = await future
                break
            except asyncio.CancelledError:
                if not self._closing:
                    await self._stop(future)
                raise
            except (NoValidWorkerError, NoWorkerError) as error:
                pool = WORKER_TYPES.get(stage.pool, "any")
                raise NoWorkers(pool, self.client.scheduler.address, error.timeout) from None
            except Exception as error:
                if policy.worker_died(error) and attempt < policy.retries():
                    attempt += 1
                    self._retried.setdefault(key, []).append(
                        f"{policy.label(stage.name)} run again ({attempt} of {policy.retries()}): {policy.death(error)}"
                    )
                    await self.client.retry([future])
                    continue
                if stage.cached:
                    await self._stored("put_failure", stage.name, key, one_line(error))
                if policy.worker_died(error):
                    raise RuntimeError(
                        f"{policy.label(stage.name)} failed after {attempt} re-runs: {policy.death(error)}"
                    ) from error
                raise
        if stage.cached:
            await self._stored("put", stage.name, key, result)
        return result

    async def _stop(self, future) -> None:
        """Release a cancelled task and kill its process; other tasks on its worker go on."""
        workers = await self.client.run_on_scheduler(graph.workers_running, future.key)
        await future.cancel()
        if workers:
            await self.client.run(graph.stop, future.key, workers=workers)

    # -- what people see ------------------------------------------------------------
    async def _draw(self, record: WorkflowRecord, smiles: list[str], bonds: list, offset: int = 0) -> None:
        """Readable SMILES of the molecules shown for a workflow, and the drawing of the workflow's own.

        `bonds` to highlight by atom-map number, or by atom index when `offset` is 1.
        """
        if not smiles:
            return
        highlight = [[(a + offset, b + offset) for a, b in pairs] for pairs in bonds]
        with contextlib.suppress(Exception):  # a molecule without a drawing is still fitted
            request = DrawingRequest(smiles=smiles, highlight=highlight)
            drawings = (await self.compute(graph.DRAW, request)).drawings
            record.output.readable_smiles.update({s: d.smiles for s, d in zip(smiles, drawings)})
            if smiles[0] == record.output.smiles:
                record.output.depiction = drawings[0].svg
            self._publish(record)

    async def _forget_events(self, record: WorkflowRecord) -> None:
        """Once the workflow's drawings are in, drop its event log from the scheduler.

        Waits for this workflow's own drawings only: waiting for every workflow's background work
        made the workflows that end together wait for each other's forgetting, for ever.
        """
        mine = self._background.get(record.output.id, set())
        await asyncio.gather(*(task for task in mine if task is not asyncio.current_task()), return_exceptions=True)
        self.events.forget(record.output.id)

    def _spawn(self, record: WorkflowRecord, coroutine) -> None:
        """Run `coroutine` for `record`'s workflow in the background."""
        workflow_id = record.output.id
        tasks = self._background.setdefault(workflow_id, set())
        task = asyncio.ensure_future(coroutine)
        tasks.add(task)

        def done(_):
            tasks.discard(task)
            if not tasks and self._background.get(workflow_id) is tasks:
                del self._background[workflow_id]

        task.add_done_callback(done)

    def _publish(self, record: WorkflowRecord) -> None:
        """Push the workflow's status to the clients following it (scheduler event on its topic)."""
        if self._closing:
            return
        self._listed[record.output.id] = event(record.output)
        self.events.log(record.output.id, self._listed[record.output.id])

    # -- records ---------------------------------------------------------------------
    def _save(self, record: WorkflowRecord) -> None:
        """Write the record (a snapshot taken now; the disk is written on the store's thread) and push it."""
        entry = record.model_dump(mode="json")
        self._io.submit(self.store.put, "workflows", _record_key(record.output.id), entry).add_done_callback(_logged)
        self._publish(record)

    async def _stored(self, method: str, *args):
        """`self.store.<method>(*args)`, on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._io, getattr(self.store, method), *args)

    def _load_records(self):
        for key in self.store.keys("workflows"):
            record = self.store.get("workflows", key, WorkflowRecord)
            if record is not None:
                yield record


async def _quietly(work) -> None:
    """Await `work` for its side effects; its error is for whoever asks for its result later."""
    with contextlib.suppress(Exception):
        await work


def _logged(write: Future) -> None:
    if write.exception() is not None:
        logger.error("a workflow record could not be written: %s", one_line(write.exception()))


def _record_key(workflow_id: str) -> str:
    return f"{int(workflow_id):08d}"


def seed_scans(directory: str | Path, scans: list[TorsionScanResult]) -> int:
    """Put finished torsiondrives into an executor directory's store; returns how many were new.

    A later workflow whose scan task equals one of them runs no QC for it.
    """
    store = Store(Path(directory) / "store")
    new = 0
    for scan in scans:
        key = scan.task.content_hash()
        new += store.get(SCANS, key, TorsionScanResult) is None
        store.put(SCANS, key, scan)
    return new


def _identity(workflow: BespokeWorkflow) -> str:
    """What makes two submissions the same workflow: everything but the id."""
    return hashlib.sha256(workflow.model_copy(update={"id": None}).model_dump_json().encode()).hexdigest()
