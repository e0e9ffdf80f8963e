"""The task keys of a finished workflow, in dependency order, rebuilt from its executor's store.

Dask sees each task on its own (the coordinator passes results between them), so the
dependencies are rebuilt here: the same keys the coordinator made (bespoke_dask.graph.task_key),
from the same inputs, read back from the store; each torsiondrive is replayed through
`td_api` locally (milliseconds) to find its wavefronts. Only the shape comes from files: what
ran, and when, comes from the task stream (bench/taskstream.py).
"""

from dataclasses import dataclass
from pathlib import Path

import taskstream

from bespoke_dask import graph
from bespoke_dask.coordinator import SCANS
from bespoke_dask.schema import (
    BespokeWorkflow,
    FitTarget,
    FragmentationResult,
    OptimizationResult,
    PartialCharges,
    ScannedMolecule,
    ScanStep,
    TorsionScanResult,
    TorsionTarget,
)
from bespoke_dask.store import Store

Steps = list[list[str]]  # a chain: each step a group of keys that run at once


@dataclass
class WorkflowKeys:
    """One workflow's task keys: fragmentation steps, one chain per unique scan, the charges of
    each scanned molecule, the fit."""

    fragmentation: Steps
    scans: dict[str, Steps]  # by scan task hash
    charges: dict[str, str]  # by scan task hash
    fit: str

    def chains(self) -> list[Steps]:
        """Every dependent chain from fragmentation to fit (one through each scan, one through
        each molecule's charges)."""
        through_scans = [self.fragmentation + scan + [[self.fit]] for scan in self.scans.values()]
        through_charges = [self.fragmentation + [[key]] + [[self.fit]] for key in set(self.charges.values())]
        return through_scans + through_charges or [self.fragmentation + [[self.fit]]]

    def keys(self) -> set[str]:
        return {key for chain in self.chains() for step in chain for key in step}


def workflow_keys(directory: str | Path, workflow: BespokeWorkflow) -> WorkflowKeys:
    """The keys of `workflow` (finished on the executor of `directory`)."""
    store = Store(Path(directory) / "store")
    workflow = workflow.model_copy(update={"id": None})
    molecule = workflow.without_fit_settings()
    fragment_key = graph.task_key(graph.FRAGMENT, workflow.fragmentation_input())
    fragmentation = _get(store, fragment_key, FragmentationResult)
    targets_key = graph.task_key(graph.TARGETS, molecule, fragmentation)
    targets = _get(store, targets_key, list[TorsionTarget])
    tasks = {target.scan.content_hash(): target.scan for target in targets}
    charges = {key: graph.task_key(graph.CHARGES, ScannedMolecule(smiles=task.smiles)) for key, task in tasks.items()}
    parameters = list({p.smirks: p for t in targets for p in t.parameters}.values())
    fit_targets = [
        FitTarget(
            smirks=[parameter.smirks for parameter in target.parameters],
            scan=store.get(SCANS, target.scan.content_hash(), TorsionScanResult),
            charges=store.get(graph.CHARGES.name, charges[target.scan.content_hash()], PartialCharges),
        )
        for target in targets
    ]
    return WorkflowKeys(
        fragmentation=[[fragment_key], [targets_key]],
        scans={key: scan_steps(store, task) for key, task in tasks.items()},
        charges=charges,
        fit=graph.task_key(graph.OPTIMIZE, workflow, parameters, fit_targets),
    )


def scan_steps(store: Store, task) -> Steps:
    """scan-start, then each wavefront's qc keys and the scan-advance that follows them."""
    from bespoke_dask.stages import torsiondrive  # chemistry: only this replay needs it

    start_key = graph.task_key(graph.SCAN_START, task)
    step = _get(store, start_key, ScanStep)
    steps = [[start_key]]
    while step.result is None:
        qc_keys, results = [], []
        for job in step.jobs:
            keys, result = _optimization(store, job)
            qc_keys += keys
            results.append(result)
        steps += [qc_keys, [graph.task_key(graph.SCAN_ADVANCE, step.state, results)]]
        step = torsiondrive.advance(step.state, results)
    return steps


def _optimization(store: Store, job) -> tuple[list[str], OptimizationResult]:
    """A job's qc keys and result: its own, or, where it failed, also its restart's (as the
    coordinator answers it: for the job's start geometry)."""
    from bespoke_dask.stages import torsiondrive

    key = graph.task_key(graph.QC, job)
    result = store.get(graph.QC.name, key, OptimizationResult)
    if result is not None:
        return [key], result
    restart = graph.task_key(graph.QC, torsiondrive.restarted(job))
    result = _get(store, restart, OptimizationResult)
    return [key, restart], result.model_copy(update={"initial_geometry": job.geometry})


def wavefront_widths(steps: Steps) -> list[int]:
    """Optimizations per wavefront of one scan's steps."""
    return [len(step) for step in steps if step and step[0].startswith(graph.QC.name + "-")]


def _get(store: Store, key: str, value_type):
    stage = key.rsplit("-", 1)[0]
    value = store.get(stage, key, value_type)
    if value is None:
        raise LookupError(f"{key} is not in the store {store.root}: did the workflow finish?")
    return value


def schedule(directory, workflows, runs, start: float, end: float, pool_slots: dict, cores: int) -> dict:
    """A batch's makespan (s) against max(longest chain, task time / cores), and each pool's idle share."""
    known = taskstream.by_key(runs)
    chains = [chain for w in workflows for chain in workflow_keys(directory, w).chains()]
    longest = max(taskstream.chain_time(chain, known) for chain in chains)
    makespan = end - start
    bound = taskstream.lower_bound(runs, longest, cores)
    return {
        "makespan_s": makespan,
        "longest_chain_s": longest,
        "task_time_s": sum(task.duration for task in runs),
        "cores": cores,
        "lower_bound_s": bound,
        "makespan_over_bound": makespan / bound,
        # above the cores, tasks share them: their wall times (and the bound) then include the waiting
        "mean_tasks_running": sum(task.duration for task in runs) / makespan,
        "task_time_per_pool_s": {str(pool): t for pool, t in taskstream.busy(runs).items()},
        "idle_fraction": taskstream.idle_fractions(runs, pool_slots, makespan),
        "tasks": len(runs),
    }


def cpu_bound(schedule: dict, worker_cpu_s: float, cores: int) -> dict:
    """The makespan against max(longest chain, the workers' CPU time / cores).

    Where more tasks run than there are cores, each task's wall time includes its waiting for a
    core, so task time / cores overstates the work; the CPU time the workers used does not.
    """
    bound = max(schedule["longest_chain_s"], worker_cpu_s / cores)
    return {"worker_cpu_s": worker_cpu_s, "cpu_lower_bound_s": bound, "makespan_over_cpu_bound": schedule["makespan_s"] / bound}


def pool_bound(schedule: dict, pool_cpu_s: dict[str, float], pool_slots: dict[str, int]) -> dict:
    """The makespan against the CPU bound or the busiest pool's CPU time / its slots, if longer.

    A pool runs one task per slot on one core each: however many cores are idle, its work takes
    at least its CPU time / slots (one fragmenter: every molecule's fragmentation, one at a time).
    """
    per_slot = {pool: cpu / pool_slots[pool] for pool, cpu in pool_cpu_s.items()}
    busiest = max(per_slot, key=per_slot.get)
    bound = max(schedule["cpu_lower_bound_s"], per_slot[busiest])
    return {
        "pool_cpu_s": pool_cpu_s,
        "busiest_pool": busiest,
        "cpu_and_pool_bound_s": bound,
        "makespan_over_cpu_and_pool_bound": schedule["makespan_s"] / bound,
    }
