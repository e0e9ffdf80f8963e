"""Fit bespoke torsions for acetanilide from Python, with fast GFN2-xTB reference scans.

Run from the repository root after `make setup` (or `make demo`):
    .venv/bin/python examples/fit_python.py
"""

import os
import sys

from openff.toolkit import Molecule

from bespoke_dask import BespokeDaskExecutor, BespokeWorkerConfig, BespokeWorkflowFactory, wait_until_complete

# AmberTools' sqm (AM1-BCC charges) lives next to this interpreter.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


def main() -> None:
    factory = BespokeWorkflowFactory.from_name("debug")  # GFN2-xTB, 30 degree scans, least squares
    workflow = factory.optimization_schema_from_molecule(Molecule.from_smiles("CC(=O)Nc1ccccc1"))
    with BespokeDaskExecutor(
        n_fragmenter_workers=1,
        n_qc_compute_workers=2,
        n_optimizer_workers=1,
        qc_compute_worker_config=BespokeWorkerConfig(n_cores=1),
        directory="example-executor",
    ) as executor:
        print("dashboard:", executor.dashboard_link)
        task_id = executor.submit(workflow)
        result = wait_until_complete(task_id)
    if result.status != "success":
        sys.exit(f"fit failed: {result.error}")
    for metric in result.results.metrics:
        print(f"{result.readable(metric.mapped_smiles)}: RMSE {metric.initial.rmse:.2f} -> {metric.final.rmse:.2f} kcal/mol")
    result.bespoke_force_field.to_file("acetanilide-bespoke.offxml")
    print("wrote acetanilide-bespoke.offxml")


if __name__ == "__main__":
    main()
