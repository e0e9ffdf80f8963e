"""Stages as Dask tasks: which function, which worker pool's resource, which content-hash key.

Stage functions are named by dotted path ("module:function") and imported on the worker that
runs them, so the client and the coordinator never load the chemistry stack.
"""

import hashlib
import importlib
import threading
from dataclasses import dataclass
from typing import Any

from distributed import Client, WorkerPlugin, get_worker

from bespoke_dask import policy, sandbox
from bespoke_dask.config import POOLS, BespokeWorkerConfig, Pool, pool_setting
from bespoke_dask.schema import (
    ConstrainedOptimization,
    Drawings,
    FitResult,
    FragmentationResult,
    OptimizationResult,
    PartialCharges,
    ScanStep,
    SchemaModel,
    TorsionTarget,
)


@dataclass(frozen=True)
class Stage:
    """One kind of task: its key prefix (also its store folder), function and pool."""

    name: str
    function: str  # "package.module:function", imported where the task runs
    result_type: Any
    pool: Pool | None = None  # the resource a task holds; None for light driver steps
    cached: bool = True  # results kept in the store
    configured: bool = False  # the function takes the pool's n_cores and max_memory


_STAGES = "bespoke_dask.stages"
FRAGMENT = Stage("fragment", f"{_STAGES}.fragment:fragment", FragmentationResult, "fragmenter")
TARGETS = Stage("targets", f"{_STAGES}.targets:bespoke_targets", list[TorsionTarget], "fragmenter")
SCAN_START = Stage("scan-start", f"{_STAGES}.torsiondrive:start", ScanStep)
SCAN_ADVANCE = Stage("scan-advance", f"{_STAGES}.torsiondrive:advance", ScanStep, cached=False)
SCAN_DECIDED = Stage("scan-decided", f"{_STAGES}.torsiondrive:decided_jobs", list[ConstrainedOptimization], cached=False)
QC = Stage("qc", f"{_STAGES}.qc:optimize_constrained", OptimizationResult, "qc", configured=True)
QC_RESTART = Stage("qc-restart", f"{_STAGES}.torsiondrive:restarted", ConstrainedOptimization, cached=False)
CHARGES = Stage("charges", f"{_STAGES}.charges:partial_charges", PartialCharges, "optimizer")  # while the scans run
OPTIMIZE = Stage("optimize", f"{_STAGES}.optimize:optimize", FitResult, "optimizer")
DRAW = Stage("draw", f"{_STAGES}.depict:draw", Drawings)  # light: runs on any worker
LIGHT = (SCAN_START, SCAN_ADVANCE, SCAN_DECIDED, QC_RESTART, DRAW)  # run in the worker itself, not a child


def task_key(stage: Stage, *args) -> str:
    """`<stage>-<hash>`: the same input always gives the same key, in any process."""
    digest = hashlib.sha256()
    for arg in args:
        for model in arg if isinstance(arg, list) else [arg]:
            digest.update(_content_hash(model).encode())
    return f"{stage.name}-{digest.hexdigest()[:40]}"


def submit(client: Client, stage: Stage, *args, timeout: float | None = None, priority: float = 0):
    """Submit one stage call as a Dask task holding one unit of its pool's resource.

    A stage with a pool runs in a child process of its worker, stopped after `timeout` seconds.
    Among tasks waiting for a worker, a higher `priority` runs first.
    """
    key = task_key(stage, *args)
    return client.submit(
        _run,
        stage.function,
        stage.pool if stage.configured else None,
        {"name": key, "timeout": timeout, "label": policy.label(stage.name), "pool": stage.pool} if stage.pool else None,
        *args,
        key=key,
        resources={stage.pool: 1} if stage.pool else None,
        priority=priority,
    )


class WarmStages(WorkerPlugin):
    """On a worker of a stage pool, as it joins: start the forkserver of its stage processes, and
    import the light steps' modules in a background thread, so the chemistry stack is loaded
    while the worker waits, not when its first task needs it (amid other workers' QC)."""

    name = "bespoke-warm-stages"

    def setup(self, worker) -> None:
        if set(worker.state.total_resources) & set(POOLS):
            sandbox.warm()
            threading.Thread(target=_import_light_steps, name="bespoke-warm-imports", daemon=True).start()


def _import_light_steps() -> None:
    for stage in LIGHT:
        stage_function(stage.function)


def stop(key: str) -> bool:
    """Run on a worker: kill the child process of task `key`, if it runs there."""
    return sandbox.stop(key)


def workers_running(key: str, dask_scheduler=None) -> list[str]:
    """Run on the scheduler: the address of the worker executing task `key`, if any."""
    task = dask_scheduler.tasks.get(key)
    return [task.processing_on.address] if task is not None and task.processing_on else []


def stage_function(path: str):
    """The function a dotted path "module:function" names."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _run(path: str, configured_pool: Pool | None, isolated: dict | None, *args):
    """Runs on the worker: hand the pool's worker config to the stage when it takes one,
    and run it in a child process when `isolated` (`sandbox.run`'s options) is given."""
    function = stage_function(path)
    kwargs = {}
    if configured_pool is not None:
        config = BespokeWorkerConfig.from_environment(configured_pool)
        kwargs = {"n_cores": config.n_cores, "max_memory": config.max_memory}
    if isolated is None:
        return function(*args, **kwargs)
    options = {name: value for name, value in isolated.items() if name != "pool"}
    return sandbox.run(
        function, args, kwargs, scratch_root=get_worker().local_directory,
        niceness=pool_setting(isolated["pool"], "niceness"), **options,
    )


def _content_hash(model) -> str:
    if isinstance(model, SchemaModel):
        return model.content_hash()
    raise TypeError(f"task inputs must be schema models, not {type(model).__name__}")
