"""`bespoke-dask combine`: the bespoke torsions of several fits in one force field."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from bespoke_dask.cli.options import Directory, Scheduler, console, user_errors
from bespoke_dask.errors import InputError
from bespoke_dask.executor import DEFAULT_DIRECTORY, connect
from bespoke_dask.stages.smirks import bespoke_parameters, combine_force_fields


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
    directory: Directory = Path(DEFAULT_DIRECTORY),
):
    """Merge bespoke torsions: the first input's base force field plus every input's bespoke torsions.

    Inputs in order: the --ff files, then the --id results. Identical SMIRKS are kept once (the first).
    """
    force_fields = [path.read_text() for path in force_field or []]
    force_fields += _retrieve(workflow_id or [], scheduler, directory)
    if not force_fields:
        raise InputError("give force fields to combine with --ff or --id")
    combined = combine_force_fields(force_fields)
    output.write_text(combined)
    console.print(
        f"{len(bespoke_parameters(combined))} bespoke torsions from {len(force_fields)} force fields "
        f"written to {output}",
        highlight=False,
        soft_wrap=True,
    )


def _retrieve(workflow_ids: list[str], scheduler: str | None, directory: Path) -> list[str]:
    """The refit force fields of finished workflows of the running executor."""
    if not workflow_ids:
        return []
    executor = connect(scheduler, directory)
    try:
        outputs = [executor.retrieve(workflow_id) for workflow_id in workflow_ids]
    finally:
        executor.stop()
    for output in outputs:
        if output.refit_force_field is None:
            raise InputError(f"workflow {output.id} has no force field ({output.status})")
    return [output.refit_force_field for output in outputs]
