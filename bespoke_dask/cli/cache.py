"""`bespoke-dask cache update`: seed an executor's store with finished torsiondrives (offline).

A later workflow whose scan matches a seeded one (same molecule and bond, QC spec and grid, and
the workflow's conformer count, energy thresholds and geomeTRIC settings) runs no QC for it.
Each record gives the grid and QC spec; --workflow / --workflow-file give the rest. Seeding works
while an executor runs on the directory: the store is read whenever a scan is asked for.
"""

import warnings
from pathlib import Path
from typing import Annotated

import typer

from bespoke_dask.cli.options import (
    Directory,
    ForceFieldOption,
    TargetTorsion,
    Workflow,
    WorkflowFile,
    console,
    errors,
    user_errors,
    workflow_factory,
)
from bespoke_dask.coordinator import seed_scans
from bespoke_dask.executor import DEFAULT_DIRECTORY
from bespoke_dask.stages.qcarchive import (
    SkippedTorsionDrive,
    read_torsiondrives,
    scan_results_from_torsiondrives,
)

app = typer.Typer(help="The executor's QC cache.", no_args_is_help=True)


@app.command()
@user_errors
def update(
    file: Annotated[
        Path,
        typer.Option("--file", help="JSON of QCSchema TorsionDriveResult records: a list, one, or by name."),
    ],
    directory: Directory = Path(DEFAULT_DIRECTORY),
    workflow: Workflow = "default",
    workflow_file: WorkflowFile = None,
    target_torsion: TargetTorsion = None,
    force_field: ForceFieldOption = None,
):
    """Seed the store with finished 1-D torsiondrives (e.g. a QCArchive export); no QC is run."""
    factory = workflow_factory(workflow, workflow_file, None, target_torsion, force_field, None)
    records = read_torsiondrives(file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedTorsionDrive)
        scans = scan_results_from_torsiondrives(records, factory)
    for warning in caught:
        if issubclass(warning.category, SkippedTorsionDrive):
            errors.print(f"[yellow]Warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    added = seed_scans(directory, scans)
    console.print(
        f"{added} of {len(records)} records added as new scans ({len(scans) - added} already stored, "
        f"{len(records) - len(scans)} skipped) to {directory}",
        highlight=False,
        soft_wrap=True,
    )
