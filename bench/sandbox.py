"""Cost of running stage calls in killable child processes (bespoke_dask.sandbox), one run.

Times the first wavefront's constrained optimizations of a scan called in this process and in
this thread's stage process, and an empty call (the overhead alone).

Run from the repository root (a quiet machine gives meaningful numbers):
    .venv/bin/python bench/sandbox.py [--smiles COC=O] [--qc-spec xtb gfn2xtb]
"""

import argparse
import time

from bespoke_dask import BespokeWorkflowFactory, sandbox
from bespoke_dask.schema import QCSpec
from bespoke_dask.stages import fragment, qc, targets, torsiondrive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smiles", default="COC=O")
    parser.add_argument("--qc-spec", nargs=2, default=["xtb", "gfn2xtb"])
    parser.add_argument("--calls", type=int, default=20, help="empty calls to average")
    options = parser.parse_args()
    factory = BespokeWorkflowFactory.from_name("debug").model_copy(
        update={"qc_spec": QCSpec(program=options.qc_spec[0], method=options.qc_spec[1], basis=None)}
    )
    workflow = factory.optimization_schema_from_smiles(options.smiles).without_fit_settings()
    task = targets.bespoke_targets(workflow, fragment.fragment(workflow))[0].scan
    jobs = torsiondrive.start(task).jobs
    sandbox.run(time.sleep, (0,), name="start")  # the forkserver's imports, once per worker

    started = time.perf_counter()
    for job in jobs:
        qc.optimize_constrained(job)
    inline = time.perf_counter() - started
    started = time.perf_counter()
    for index, job in enumerate(jobs):
        sandbox.run(qc.optimize_constrained, (job,), name=f"qc-{index}")
    isolated = time.perf_counter() - started
    started = time.perf_counter()
    for index in range(options.calls):
        sandbox.run(time.sleep, (0,), name=f"empty-{index}")
    empty = (time.perf_counter() - started) / options.calls

    print(f"{len(jobs)} optimizations: {inline:.2f} s in this process, {isolated:.2f} s in the stage process "
          f"({isolated / inline:.2f}x); an empty call costs {empty * 1000:.0f} ms")


if __name__ == "__main__":
    main()
