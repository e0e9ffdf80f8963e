"""Speed of bespoke_dask, measured in one run and printed as ratios.

1. Parallel wavefronts: the same torsiondrives run serially in this process (one constrained
   optimization after another, as BespokeFit does) and through a BespokeDaskExecutor with
   `--qc-workers` QC workers, every wavefront's optimizations as separate tasks.
2. The store: a second workflow with the same scans but another fit setting (the prior width),
   submitted to a fresh executor on the same directory: its scans come from the store.

Run from the repository root (a quiet machine gives meaningful numbers):
    .venv/bin/python bench/speed.py [--smiles CC(=O)Nc1ccccc1] [--qc-workers 2]
"""

import argparse
import tempfile
import time
from typing import NamedTuple

from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory
from bespoke_dask.schema import NoFragmentation, TorsionDriveSettings
from bespoke_dask.stages import fragment, qc, targets, torsiondrive


def serial_scans(workflow) -> tuple[float, int]:
    """Every scan of the workflow, one optimization at a time in this process."""
    start = time.perf_counter()
    scan_targets = targets.bespoke_targets(workflow, fragment.fragment(workflow))
    tasks = {target.scan.content_hash(): target.scan for target in scan_targets}
    optimizations = 0
    for task in tasks.values():
        result = torsiondrive.run_torsiondrive(task, lambda jobs: [qc.optimize_constrained(j) for j in jobs])
        optimizations += result.n_optimizations
    return time.perf_counter() - start, optimizations


class Run(NamedTuple):
    scans: float  # s, the qc-generation stage
    workflow: float  # s, submit to result
    startup: float  # s, cluster start
    output: object


def executor_run(workflow, directory: str, qc_workers: int) -> Run:
    """The whole workflow (scans and fit) on a fresh executor on `directory`."""
    start = time.perf_counter()
    with BespokeDaskExecutor(n_qc_compute_workers=qc_workers, directory=directory) as executor:
        ready = time.perf_counter()
        output = executor.wait_until_complete(executor.submit(workflow), frequency=0.1)
        done = time.perf_counter()
    assert output.status == "success", output.error
    stage = output.stage("qc-generation")
    return Run(stage.ended_at - stage.started_at, done - ready, ready - start, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smiles", default="CC(=O)Nc1ccccc1")
    parser.add_argument("--qc-workers", type=int, default=2)
    parser.add_argument("--grid-spacing", type=int, default=30)
    parser.add_argument("--conformers", type=int, default=2)
    args = parser.parse_args()
    factory = BespokeWorkflowFactory.from_name("debug").model_copy(
        update={
            "fragmentation": NoFragmentation(),
            "torsiondrive": TorsionDriveSettings(grid_spacing=args.grid_spacing, n_conformers=args.conformers),
        }
    )
    workflow = factory.optimization_schema_from_smiles(args.smiles)

    serial, optimizations = serial_scans(workflow)
    with tempfile.TemporaryDirectory() as directory:
        first = executor_run(workflow, directory, args.qc_workers)
        refit = workflow.model_copy(update={"prior_width": workflow.prior_width / 2})
        cached = executor_run(refit, directory, args.qc_workers)

    scans = len(first.output.stage("qc-generation").scans)
    print(f"{args.smiles}: {scans} scans, {optimizations} constrained optimizations (GFN2-xTB)")
    print(f"scans, serial in one process:          {serial:7.1f} s")
    print(f"scans, Dask wavefronts, {args.qc_workers} QC workers:  {first.scans:7.1f} s   "
          f"speed-up {serial / first.scans:.2f}x")
    print(f"whole workflow, uncached:              {first.workflow:7.1f} s   "
          f"(cluster start-up {first.startup:.1f} s)")
    print(f"scans of a second workflow, from the store: {cached.scans:7.3f} s   "
          f"speed-up {first.scans / cached.scans:.0f}x")
    print(f"second workflow (scans cached, fit redone): {cached.workflow:7.1f} s   "
          f"speed-up {first.workflow / cached.workflow:.1f}x")


if __name__ == "__main__":
    main()
