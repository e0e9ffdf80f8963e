"""Speed of bespoke_dask against its limits, each figure a ratio measured in one run.

Subcommands (issue 11): `scan` (Dask wavefronts vs qcengine's serial torsiondrive procedure),
`dedup` (unique work computed once, a finished batch resubmitted, a second QC level), `cores`
(CPU time per wall second of the QC workers), `latency` (one molecule, stage by stage), `batch`
(makespan vs max(longest chain, task time / cores), idle per pool), `scale` (N cheap
workflows on one executor) and `geometric` (one optimization with geomeTRIC's own primitive
coordinates vs stages/geometric_vectorized.py). Counts and times come from Dask's task stream (bench/taskstream.py);
only the dependency shape is rebuilt from the store (bench/structure.py). Each part prints its
figures and writes them, with the git commit, to bench/results/perf-<part>.json.

Run from the repository root on a quiet machine, e.g.
    .venv/bin/python bench/perf.py scan
    .venv/bin/python bench/perf.py batch --limit 2 --workflow debug   # a quick check
"""

import contextlib
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench modules, when run as a script

import structure
import taskstream
import workload
from workload import finished_at

from bespoke_dask import BespokeDaskExecutor, BespokeWorkerConfig

RESULTS = Path(__file__).resolve().parent / "results"
CORES = os.cpu_count() or 1


# -- shared --------------------------------------------------------------------------
@contextlib.contextmanager
def executor_on(directory, fragmenters=1, qc=2, qc_cores=1, optimizers=1):
    """A started local executor on `directory` whose task stream is being recorded."""
    with BespokeDaskExecutor(
        n_fragmenter_workers=fragmenters,
        n_qc_compute_workers=qc,
        n_optimizer_workers=optimizers,
        qc_compute_worker_config=BespokeWorkerConfig(n_cores=qc_cores),
        directory=directory,
    ) as executor:
        executor.list()  # the coordinator is up
        taskstream.record(executor.client)
        yield executor


def run_batch(executor, workflows) -> tuple[float, list]:
    """Submit every workflow at once; (submit time, outputs). Every output must be a success."""
    start = time.time()
    ids = [executor.submit(workflow) for workflow in workflows]
    outputs = [executor.wait_until_complete(workflow_id) for workflow_id in ids]
    failed = [f"{o.smiles}: {o.error}" for o in outputs if o.status != "success"]
    if failed:
        raise SystemExit("workflows failed:\n" + "\n".join(failed))
    return start, outputs


def save(part: str, figures: dict) -> None:
    """Write the figures with the commit (dirty: code differs from it; earlier results do not count),
    machine and command to bench/results/perf-<part>.json."""
    def git(*words: str) -> str:
        return subprocess.run(["git", *words], capture_output=True, text=True, check=False, cwd=RESULTS.parent).stdout

    commit, dirty = git("rev-parse", "HEAD").strip(), git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(top,exclude)bench/results")
    record = {
        "part": part,
        "commit": commit + ("-dirty" if dirty.strip() else ""),
        "command": " ".join(sys.argv),
        "machine": {"cores": CORES, "load_average": os.getloadavg()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"perf-{part}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {RESULTS / f'perf-{part}.json'}")


def show(figures: dict, indent: str = "") -> None:
    for name, value in figures.items():
        if isinstance(value, dict):
            print(f"{indent}{name}:")
            show(value, indent + "  ")
        elif isinstance(value, float):
            print(f"{indent}{name:28} {value:10.3f}")
        else:
            print(f"{indent}{name:28} {value}")


# -- parts -----------------------------------------------------------------------------
def scan(args) -> dict:
    """One scan: Dask wavefronts on W QC workers vs qcengine's serial torsiondrive procedure.

    The machine's speed drifts by 20-30 % within minutes, so the two are run in turns (`--repeat`
    rounds, every other one serial first) and each round's ratio is taken within the round; the
    headline is their median. In those rounds the workflow's charges are already in the store, so
    that only the scan runs, as in the serial procedure; the first run, which computes them (on the
    optimizer pool) while the scan runs, their sqm competing with it for the cores, is reported apart.
    """
    workflow = workload.scan_workflow(args.smiles, args.torsion, args.grid_spacing, args.conformers, args.qc_spec)
    with tempfile.TemporaryDirectory() as first:  # its scan-start is every serial run's input
        run, (scan_key, steps), others = _dask_scan(workflow, first, args.qc_workers)
        run_serial = functools.partial(workload.serial_torsiondrive, first, scan_key)
        serial = run_serial()
        alongside = (run, serial)  # the workflow's AM1-BCC charges (sqm) computed during the scan
        scan_alone = functools.partial(_scan_round, workflow, args.qc_workers, run_serial, charges=Path(first, "store", "charges"))
        rounds = [scan_alone(serial_first=number % 2 == 1) for number in range(args.repeat)]
        variants = {}
        for name, settings in _scan_variants(args.variants):  # each of our changes undone in turn
            with dask.config.set(settings):
                variants[name] = scan_alone(serial_first=False)
        sample = workload.scan_jobs(first, scan_key, 8)
        slowdown = workload.concurrent_slowdown(sample, args.qc_workers)
    widths = structure.wavefront_widths(steps)
    mean_width = sum(widths) / len(widths)
    # If every optimization took as long as alone: each wavefront takes ceil(width / W) rounds.
    packing = sum(widths) / sum(math.ceil(width / args.qc_workers) for width in widths)
    bound = min(args.qc_workers, mean_width)

    def ratios(run: dict, serial: dict) -> dict:
        speedup = serial["time_s"] / run["dask_s"]
        inflation = run["dask_qc_task_time_s"] / serial["time_s"]  # > 1: optimizations at once slow each other
        return {
            "serial_s": serial["time_s"],
            **run,
            "speedup": speedup,
            "speedup_over_bound": speedup / bound,
            "qc_task_time_over_serial": inflation,
            "speedup_over_packing_and_inflation": speedup / (packing / inflation),
            # speedup_over_bound = (1 / inflation) x balance x dispatch when W <= mean width (dispatch
            # above 1: scan-ahead beat wavefronts in step)
            "balance": run["dask_qc_task_time_s"] / (args.qc_workers * run["in_step_schedule_of_these_tasks_s"]),
            "dispatch": run["in_step_schedule_of_these_tasks_s"] / run["dask_s"],
        }

    shipped = [ratios(run, serial) for run, serial in rounds]
    figures = {
        "smiles": args.smiles,
        "qc_spec": " ".join(args.qc_spec),
        "scans_in_workflow": 1 + others,
        "qc_workers": args.qc_workers,
        "optimizations": sum(widths),
        "wavefronts": len(widths),
        "mean_wavefront_width": mean_width,
        "wavefront_widths": widths,
        "wavefront_packing_bound": packing,
        "serial_reference": serial["reference"],
        "serial_optimizations": serial["optimizations"],
        "max_energy_difference_kcal_mol": serial["max_energy_difference_kcal_mol"],
        # The first 8 optimizations in W plain processes at once vs in one alone (no executor):
        # the machine's own cost of running W side by side, part of qc_task_time_over_serial.
        "plain_processes_slowdown": slowdown,
        "rounds": len(shipped),
        **{f"median_{name}": statistics.median(r[name] for r in shipped)
           for name in ("speedup", "speedup_over_bound", "qc_task_time_over_serial", "balance", "dispatch")},
        "serial_s_per_round": [r["serial_s"] for r in shipped],  # one input: the machine's drift
        "speedup_over_bound_per_round": [r["speedup_over_bound"] for r in shipped],
        "scan_ahead_rounds": shipped,
    }
    figures["with_the_charges_computed_alongside"] = ratios(*alongside)
    for name, (run, serial) in variants.items():
        figures[name] = ratios(run, serial)
        figures[f"speedup_over_{name}"] = figures["median_speedup"] / figures[name]["speedup"]
    return figures


def _scan_variants(wanted: bool) -> list[tuple[str, dict]]:
    """The shipped scan with one of our changes undone: scan-ahead off, distributed's own timers."""
    if not wanted:
        return []
    return [("wavefronts_in_step", {"bespoke-dask.scan-ahead": False}),
            ("distributed_timers", workload.distributeds_own_timers())]


def _scan_round(workflow, qc_workers: int, run_serial, serial_first: bool, charges: Path) -> tuple[dict, dict]:
    """A Dask scan on a fresh executor whose store holds the `charges` already, and the serial
    procedure, one right after the other."""
    serial = run_serial() if serial_first else None
    with tempfile.TemporaryDirectory() as directory:
        shutil.copytree(charges, Path(directory, "store", "charges"))
        run, *_ = _dask_scan(workflow, directory, qc_workers)
    return run, serial or run_serial()


def _dask_scan(workflow, directory: str, qc_workers: int) -> tuple[dict, tuple[str, list], int]:
    """Run `workflow` (one scan) on a fresh executor: its times from the task stream, where the CPU
    went, the scan's keys and how many other scans the workflow has."""
    with executor_on(directory, qc=qc_workers) as executor:
        workload.warm(executor.client)
        since, cpu = time.time(), workload.CPUSplit(executor.client)
        run_batch(executor, [workflow])
        cpu_used = cpu.since()
        runs = taskstream.tasks(executor.client, since)
    (scan_key, steps), *others = structure.workflow_keys(directory, workflow).scans.items()
    known = taskstream.by_key(runs)
    wavefronts = [known[key] for step in steps[1:] for key in step]
    # A job decided before its wavefront was asked for starts ahead: before the advance that asks for it ends.
    ahead = [key for advance, step in zip(steps[2::2], steps[3::2]) for key in step
             if known[key].start < known[advance[0]].stop]
    durations = [[known[key].duration for key in step] for step in steps[1::2]]
    figures = {
        "dask_s": max(t.stop for t in wavefronts) - known[steps[0][0]].stop,  # after the conformers
        "dask_qc_task_time_s": sum(t.duration for t in wavefronts if t.stage == "qc"),
        # These optimizations, as long as they took here, with no hand-off and wavefronts in step,
        # each wavefront dealt out longest first to the W workers: what the measured tasks allow.
        "in_step_schedule_of_these_tasks_s": sum(longest_first_makespan(d, qc_workers) for d in durations),
        "qc_tasks_run": taskstream.count(runs, "qc"),  # above `optimizations`: jobs started ahead in vain
        "qc_tasks_started_ahead": len(ahead),
        # over the whole workflow (conformers and fit too), CPU s of each kind of process
        "cpu_s": cpu_used,
    }
    return figures, (scan_key, steps), len(others)


def longest_first_makespan(durations: list[float], workers: int) -> float:
    """When the last of `durations` ends if each, longest first, goes to the worker free first."""
    ends = [0.0] * workers
    for duration in sorted(durations, reverse=True):
        ends[ends.index(min(ends))] += duration
    return max(ends)


def dedup(args) -> dict:
    """Shared fragments scanned once; a finished batch resubmitted; a second QC level; a refit."""
    workflows = workload.workflows(args.smiles, args.workflow, args.qc_spec)
    second = workload.workflows(args.smiles[:1], args.workflow, args.second_qc_spec)
    with tempfile.TemporaryDirectory() as directory:
        with executor_on(directory) as executor:
            since = time.time()
            run_batch(executor, workflows)
            first = taskstream.tasks(executor.client, since)
            asked = [structure.workflow_keys(directory, w) for w in workflows]
            since = time.time()
            again_start, _ = run_batch(executor, workflows)
            again_time = time.time() - again_start
            again = taskstream.tasks(executor.client, since)
            since = time.time()
            run_batch(executor, second)
            level = taskstream.tasks(executor.client, since)
            refit = [workflows[0].model_copy(update={"prior_width": workflows[0].prior_width / 2})]
            since = time.time()
            refit_start, _ = run_batch(executor, refit)
            refit_time = time.time() - refit_start
            refit_runs = taskstream.tasks(executor.client, since)
    unique_qc = {k for w in asked for steps in w.scans.values() for step in steps[1::2] for k in step}
    return {
        "molecules": len(workflows),
        "scans_asked_for": sum(len(w.scans) for w in asked),
        "unique_scans": len({key for w in asked for key in w.scans}),
        "scan_start_tasks_run": taskstream.count(first, "scan-start"),
        "unique_optimizations": len(unique_qc),
        "qc_tasks_run": taskstream.count(first, "qc"),
        "scanned_molecules": len({key for w in asked for key in w.charges.values()}),
        "charges_tasks_run": taskstream.count(first, "charges"),
        "keys_run_twice": len(taskstream.repeated(first)),
        "resubmitted_batch_s": again_time,
        "resubmitted_batch_tasks_run": len(again),
        "second_qc_level": " ".join(args.second_qc_spec),
        "second_level_fragment_tasks_run": taskstream.count(level, "fragment"),
        "second_level_targets_tasks_run": taskstream.count(level, "targets"),
        "second_level_charges_tasks_run": taskstream.count(level, "charges"),
        "refit_other_prior_s": refit_time,  # the same scans, another fit setting: from the store
        "refit_tasks_run": {stage: taskstream.count(refit_runs, stage) for stage in ("fragment", "qc", "charges", "optimize")},
    }


def cores(args) -> dict:
    """CPU time per wall second of the QC workers while they run QC, for each worker shape."""
    shapes = {"2 workers x 1 core": (2, 1), "1 worker x 2 cores": (1, 2)}
    specs = [args.qc_spec] + ([["psi4", "hf", "sto-3g"]] if args.psi4 else [])
    figures = {}
    for spec in specs:
        workflow = workload.scan_workflow(args.smiles, args.torsion, args.grid_spacing, args.conformers, spec)
        for name, (workers, n_cores) in shapes.items():
            with tempfile.TemporaryDirectory() as directory:
                with executor_on(directory, qc=workers, qc_cores=n_cores) as executor:
                    with workload.CPUSampler(workload.worker_pids(executor.client, "qc")) as sampler:
                        since = time.time()
                        run_batch(executor, [workflow])
                    qc_runs = [t for t in taskstream.tasks(executor.client, since) if t.stage == "qc"]
                start, stop = min(t.start for t in qc_runs), max(t.stop for t in qc_runs)
                busy = sum(t.duration for t in qc_runs) / (stop - start)
                figures[f"{' '.join(spec)}, {name}"] = {
                    "cpu_per_wall_s": sampler.rate(start, stop),
                    "qc_tasks_at_once": busy,  # mean over the QC window
                    "cores_offered": workers * n_cores,
                }
    return figures


def latency(args) -> dict:
    """One molecule from submit to result, split into start-up, stages and hand-offs."""
    (workflow,) = workload.workflows([args.smiles], args.workflow, args.qc_spec)
    with tempfile.TemporaryDirectory() as directory:
        launched = time.time()
        with executor_on(directory) as executor:
            pool_slots = taskstream.slots(executor.client)
            start = time.time()
            run_batch(executor, [workflow])
            end = time.time()
            runs = taskstream.tasks(executor.client, start)
        keys = structure.workflow_keys(directory, workflow)
    known = taskstream.by_key(runs)
    chain = max(keys.chains(), key=lambda c: taskstream.chain_time(c, known))
    scan_runs = [t for t in runs if t.stage in ("scan-start", "qc", "scan-advance")]
    gaps = taskstream.gaps(chain, known)
    # the fit waits for every scan and the charges, not only the chain's: its hand-off starts when the last one ends
    inputs = [key for steps in keys.scans.values() for key in steps[-1]] + list(keys.charges.values())
    inputs_end = max(known[key].stop for key in inputs if key in known)
    gaps = [(task.start - inputs_end, task) if task.key == keys.fit else (waited, task) for waited, task in gaps]
    handoffs = [waited for waited, _ in gaps]
    # the part of each wait in which a slot of the task's pool was free: the executor's own delay
    # (the rest the task queued behind other work, e.g. the other scan's jobs on both QC workers)
    dispatch = [waited - taskstream.saturated(runs, task.pool, pool_slots.get(task.pool, 1), task.start - waited, task.start)
                for waited, task in gaps]
    first, fit = known[keys.fragmentation[0][0]], known[keys.fit]
    return {
        "smiles": args.smiles,
        "workflow": args.workflow,
        "startup_s": start - launched,
        "submit_to_result_s": end - start,
        "fragmentation_s": sum(known[k].duration for step in keys.fragmentation for k in step),
        "qc_span_s": max((t.stop for t in scan_runs), default=0) - min((t.start for t in scan_runs), default=0),
        "charges_s": sum(known[k].duration for k in set(keys.charges.values()) if k in known),
        "fit_s": fit.duration,
        "submit_to_first_task_s": first.start - start,
        "fit_to_result_s": end - fit.stop,  # the final drawing, the status push, the client's wake-up
        "handoffs_on_critical_chain": len(handoffs),
        "handoff_total_s": sum(handoffs),
        "handoff_median_s": sorted(handoffs)[len(handoffs) // 2] if handoffs else None,
        "handoff_max_s": max(handoffs, default=None),
        "handoff_with_a_free_slot_median_s": statistics.median(dispatch) if dispatch else None,
        "handoff_with_a_free_slot_max_s": max(dispatch, default=None),
        "handoff_with_a_free_slot_longest_into": max(zip(dispatch, (task.stage for _, task in gaps)), default=(None, None))[1],
        "handoff_queued_behind_other_work_s": sum(handoffs) - sum(dispatch),
        "first_task_s_per_stage": {s: next(t.duration for t in runs if t.stage == s) for s in ("fragment", "qc", "optimize")},
        "median_qc_task_s": statistics.median(t.duration for t in runs if t.stage == "qc"),
        "scans": len(keys.scans),
        "tasks": len(runs),
    }


def batch(args) -> dict:
    """A batch on 1 fragmenter (`--fragmenters`), 2 QC x 1 core, 1 optimizer; then its first 4 molecules alone."""
    smiles = args.smiles[: args.limit] if args.limit else args.smiles
    figures = {"fragmenter_workers": args.fragmenters}
    for label, group in {f"{len(smiles)} molecules": smiles, "first 4": smiles[:4]}.items():
        if label == "first 4" and len(smiles) <= 4:
            continue
        workflows = workload.workflows(group, args.workflow, args.qc_spec)
        with tempfile.TemporaryDirectory() as directory:
            with executor_on(directory, fragmenters=args.fragmenters) as executor, contextlib.ExitStack() as sampling:
                pool_slots = taskstream.slots(executor.client)
                pids = {pool: workload.worker_pids(executor.client, pool) for pool in pool_slots}
                samplers = {pool: sampling.enter_context(workload.CPUSampler(p, interval=1.0)) for pool, p in pids.items()}
                start, outputs = run_batch(executor, workflows)
                sampling.close()
                runs = taskstream.tasks(executor.client, start)
            end = max(map(finished_at, outputs))
            used = {pool: sampler.used(start, end) for pool, sampler in samplers.items()}
            figures[label] = structure.schedule(directory, workflows, runs, start, end, pool_slots, CORES)
            figures[label] |= structure.cpu_bound(figures[label], sum(used.values()), CORES)
            figures[label] |= structure.pool_bound(figures[label], used, pool_slots)
            figures[label]["first_result_s"] = min(map(finished_at, outputs)) - start
    return figures


def geometric(args) -> dict:
    """One constrained optimization: geomeTRIC's own primitive coordinates vs stages/geometric_vectorized.

    A chain of `--steps` optimizations `--grid-spacing` degrees apart, each from the one before
    (as a scan runs them), with both, job by job in one process; per engine, the time of each
    (failed optimizations included), their ratio, failures, gradients and energies.
    """
    from unittest import mock

    from geometric.internal import PrimitiveInternalCoordinates

    from bespoke_dask.stages.geometric_vectorized import GEOMETRICS_OWN
    from bespoke_dask.stages.qc import QCError, optimize_constrained

    figures = {"smiles": args.smiles, "torsion": args.torsion, "steps": args.steps, "grid_spacing_deg": args.grid_spacing}
    ways = {"geometric_own": mock.patch.multiple(PrimitiveInternalCoordinates, **GEOMETRICS_OWN),
            "vectorized": contextlib.nullcontext()}
    for words in (args.qc_spec, ["rdkit", "mmff94", "none"]):
        seconds, results = {way: 0.0 for way in ways}, {way: [] for way in ways}
        for job in workload.dihedral_chain(args.smiles, args.torsion, args.grid_spacing, args.steps, words):
            for way, patched in ways.items():  # in turns, job by job: the machine drifts
                with patched:
                    start = time.perf_counter()
                    try:
                        results[way].append(optimize_constrained(job))
                    except QCError:  # e.g. not converged in maxiter steps: its time counts too
                        results[way].append(None)
                    seconds[way] += time.perf_counter() - start
        both = [(a, b) for a, b in zip(results["geometric_own"], results["vectorized"]) if a and b]
        figures[" ".join(words)] = {
            **{f"{way}_s": seconds[way] for way in ways},
            "speedup": seconds["geometric_own"] / seconds["vectorized"],
            "failed": [results[way].count(None) for way in ways],
            "gradients_where_both_converged": [sum(r.n_gradients for r in pair) for pair in zip(*both)],
            "max_energy_difference_kcal_mol": workload.HARTREE_IN_KCAL_MOL * max(abs(a.energy - b.energy) for a, b in both),
        }
    return figures


def scale(args) -> dict:
    """N cheap workflows on one launched executor: acceptance, memory, overhead, responsiveness."""
    import scale as scaling  # the executor as a subprocess, sampled while it works

    return scaling.measure(args)


PARTS = {
    "scan": scan, "dedup": dedup, "cores": cores, "latency": latency, "batch": batch, "scale": scale,
    "geometric": geometric,
}


def main() -> None:
    parser = workload.parser(__doc__, PARTS)
    args = parser.parse_args()
    figures = PARTS[args.part](args)
    show(figures)
    save(args.part, figures)


if __name__ == "__main__":
    main()
