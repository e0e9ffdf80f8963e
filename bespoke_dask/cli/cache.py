"""`bespoke-dask cache`: what an executor's store holds, and seeding it with finished torsiondrives.

A later workflow whose scan matches a seeded one (same molecule and bond, QC spec and grid, and
the workflow's conformer count, energy thresholds and geomeTRIC settings) runs no QC for it.
Each record gives the grid and QC spec; --workflow / --workflow-file give the rest. Seeding works
while an executor runs on the directory: the store is read whenever a scan is asked for.
"""

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bespoke_dask.cli.options import (
    Directory,
    ForceFieldOption,
    TargetTorsion,
    Workflow,
    WorkflowFile,
    console,
    errors,
    executor_directory,
    user_errors,
    workflow_factory,
)

app = typer.Typer(help="The executor's QC cache.", no_args_is_help=True)


@app.command()
@user_errors
def update(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            help="JSON of QCSchema TorsionDriveResult records (a list, one, or by name), or plain torsion "
            "scans (SMILES, dihedral, QC spec, and per grid point geometry in angstrom and energy in hartree).",
        ),
    ],
    directory: Directory = None,
    workflow: Workflow = "default",
    workflow_file: WorkflowFile = None,
    target_torsion: TargetTorsion = None,
    force_field: ForceFieldOption = None,
):
    """Seed the store with finished 1-D torsion scans (a QCArchive export, or plain scans); no QC is run."""
    from bespoke_dask.stages.qcarchive import (  # chemistry: loaded only by this command
        SkippedTorsionDrive,
        read_torsiondrives,
        scan_results_from_torsiondrives,
    )
    from bespoke_dask.stages.scan_file import read_plain_scans, scan_result_from_plain
    from bespoke_dask.coordinator import seed_scans

    directory = executor_directory(directory)
    factory = workflow_factory(workflow, workflow_file, None, target_torsion, force_field, None)
    if _is_plain(file):
        plain = read_plain_scans(file)
        scans = [scan_result_from_plain(scan, factory, f"scan {n}") for n, scan in enumerate(plain, start=1)]
        added = seed_scans(directory, scans)
        console.print(
            f"{added} of {len(plain)} plain scans added as new scans ({len(scans) - added} already stored) to {directory}",
            highlight=False,
            soft_wrap=True,
        )
        return
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


def _is_plain(path: Path) -> bool:
    from bespoke_dask.stages.scan_file import is_plain_scan_data

    try:
        return is_plain_scan_data(json.loads(path.read_text()))
    except (OSError, ValueError):
        return False  # read_torsiondrives says what is wrong with the file


MAX_FAILURES_SHOWN = 20

KINDS = {
    "fragment": "fragmentations",
    "targets": "bespoke parameter sets",
    "scan-start": "torsiondrive starts (conformers)",
    "qc": "constrained optimizations",
    "scan": "torsiondrives",
    "charges": "AM1-BCC charges of scanned molecules",
    "optimize": "fits",
    "workflows": "workflows",
}


@app.command()
@user_errors
def info(directory: Directory = None):
    """Count the finished (and failed) work in the store: every entry ran exactly once."""
    from bespoke_dask.store import Store

    directory = executor_directory(directory)
    store = Store(directory / "store")
    if not store.root.is_dir():
        raise FileNotFoundError(f"no store in {directory}")
    table = Table("stored", "results", "failures", title=f"store of {directory}")
    for kind, (results, failures) in store.counts().items():
        table.add_row(KINDS.get(kind, kind), str(results), str(failures))
    console.print(table)
    failed = [(kind, key, error) for kind in store.counts() for key, error in store.failures(kind).items()]
    if failed:
        table = Table("stored", "key", "error (retried when asked for again)", title="recorded failures")
        for kind, key, error in failed[:MAX_FAILURES_SHOWN]:
            table.add_row(KINDS.get(kind, kind), key, error)
        console.print(table)
        if len(failed) > MAX_FAILURES_SHOWN:
            console.print(f"... and {len(failed) - MAX_FAILURES_SHOWN} more")
