"""`bespoke-dask combine`: the bespoke torsions of several fits in one force field."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from bespoke_dask.cli.options import Directory, Scheduler, console, user_errors
from bespoke_dask.errors import InputError


@user_errors
def combine(
    output: Annotated[Path, typer.Option("--output", help="Write the combined force field (OFFXML) here.")],
    force_field: Annotated[
        Optional[list[Path]], typer.Option("--ff", help="A refit force field (OFFXML) file (repeat).")
    ] = None,
    workflow_id: Annotated[
        Optional[list[str]], typer.Option("--id", help="A finished workflow of a running executor (repeat).")
    ] = None,
    scheduler: Scheduler = None,
    directory: Directory = None,
):
    """Merge bespoke torsions: the first input's base force field plus every input's bespoke torsions.

    Inputs in order: the --ff files, then the --id results. Identical SMIRKS are kept once (the first).
    Each --id molecule must keep its own torsion parameters in the combined force field: a SMIRKS of
    one molecule that would type another's torsions differently is refused.
    """
    from bespoke_dask.stages.force_field import bespoke_parameters, combine_force_fields  # chemistry

    files = [path.read_text() for path in force_field or []]
    retrieved = _retrieve(workflow_id or [], scheduler, directory)
    if not files and not retrieved:
        raise InputError("give force fields to combine with --ff or --id")
    molecules = [[] for _ in files] + [[smiles] for smiles, _ in retrieved]
    force_fields = files + [offxml for _, offxml in retrieved]
    combined = combine_force_fields(force_fields, molecules)
    output.write_text(combined)
    console.print(
        f"{len(bespoke_parameters(combined))} bespoke torsions from {len(force_fields)} force fields "
        f"written to {output}",
        highlight=False,
        soft_wrap=True,
    )


def _retrieve(workflow_ids: list[str], scheduler: str | None, directory: Path) -> list[tuple[str, str]]:
    """(mapped SMILES, refit force field) of finished workflows of the running executor."""
    if not workflow_ids:
        return []
    from bespoke_dask.executor import connect  # Dask: not needed for --help

    executor = connect(scheduler, directory)
    try:
        outputs = [executor.retrieve(workflow_id) for workflow_id in workflow_ids]
    finally:
        executor.stop()
    for output in outputs:
        if output.refit_force_field is None:
            raise InputError(f"workflow {output.id} has no force field ({output.status})")
    return [(output.smiles, output.refit_force_field) for output in outputs]
