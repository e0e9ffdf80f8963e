"""Rich renderings of workflow status and fit results for the CLI (no chemistry: SMILES come readable)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Group
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

if TYPE_CHECKING:  # the schema loads with the first output to show, not with --help
    from bespoke_dask.schema import BespokeExecutorOutput, FitResult

_ICONS = {
    "waiting": "[dim]…[/]",
    "running": "[yellow]⟳[/]",
    "success": "[green]✓[/]",
    "errored": "[red]✗[/]",
    "cancelled": "[magenta]⊘[/]",
}
_LABELS = {
    "fragmentation": "fragmenting the molecule",
    "qc-generation": "generating bespoke QC data",
    "optimization": "optimizing the parameters",
}


def status_view(output: BespokeExecutorOutput) -> Group:
    """One line per stage with its elapsed time, a progress bar per torsiondrive, and any error."""
    stages = Table.grid(padding=(0, 1))
    for stage in output.stages:
        elapsed = ""
        if stage.started_at is not None:
            end = stage.ended_at if stage.ended_at is not None else time.time()
            elapsed = f"[dim]{end - stage.started_at:.0f} s[/]"
        stages.add_row(_ICONS[stage.status], _LABELS[stage.type], elapsed)
        for scan in stage.scans:
            stages.add_row(
                "",
                f"  {_ICONS[scan.status]} {escape(output.readable(scan.smiles))}",
                ProgressBar(total=max(scan.grid_points, 1), completed=scan.grid_points_done, width=30),
                f"{scan.grid_points_done}/{scan.grid_points} grid points, "
                f"{scan.optimizations} optimizations",
            )
        if stage.error:
            stages.add_row("", f"[red]{stage.error}[/]")
    return Group(f"[bold]workflow {output.id}[/] {escape(output.readable(output.smiles))}", stages)


def fit_table(output: BespokeExecutorOutput) -> Table:
    """Torsion-profile errors (kcal/mol) against the QC scans of the base force field and the bespoke one."""
    result = output.results
    table = Table(title=f"torsion-profile RMSE against the QC scans (kcal/mol), {result.optimizer} fit")
    for column in ("torsion", "base", "bespoke", "bespoke max", "base, all points", "bespoke, all points"):
        table.add_column(column, justify="left" if column == "torsion" else "right")
    rows = [(f"{escape(output.readable(m.mapped_smiles))} {m.dihedral}", m.base or m.initial, m.final) for m in result.metrics]
    if result.final is not None:
        rows.append(("[bold]molecule[/]", result.base or result.initial, result.final))
    for label, base, final in rows:
        table.add_row(
            label, f"{base.rmse:.3f}", f"[bold]{final.rmse:.3f}", f"{final.max_error:.3f}",
            _optional(base.rmse_all), _optional(final.rmse_all),
        )
    kept = f" {len(result.kept_base)} parameters kept the base terms (their fit was worse)." if result.kept_base else ""
    table.caption = f"{result.protocol}. Base: the initial force field as it is. Fit took {result.wall_time:.1f} s.{kept}"
    return table


def _optional(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def parameter_table(result: FitResult) -> Table:
    """The fitted torsion terms; k's the scans could not determine are marked (the prior held them)."""
    table = Table(title="bespoke torsion parameters (k in kcal/mol)")
    for column in ("SMIRKS", "n", "phase", "k", "±", "determined by the scans"):
        table.add_column(column, overflow="fold")
    for parameter in result.parameters:
        uncertainty = parameter.k_uncertainty or [None] * len(parameter.k)
        determined = parameter.k_determined or [None] * len(parameter.k)
        for index, n in enumerate(parameter.periodicities):
            table.add_row(
                escape(parameter.smirks) if index == 0 else "",
                str(n),
                f"{parameter.phases[index]:.0f}",
                f"{parameter.k[index]:.3f}",
                "" if uncertainty[index] is None else f"{uncertainty[index]:.3f}",
                {True: "yes", False: "[yellow]no: held by the prior[/]", None: ""}[determined[index]],
            )
    return table


def as_json(output: BespokeExecutorOutput, results: bool = True) -> dict:
    """A workflow as one JSON document: its fields plus its status and error (no drawing)."""
    exclude = {"depiction"} if results else {"depiction", "results"}
    return {"status": output.status, "error": output.error, **output.model_dump(mode="json", exclude=exclude)}
