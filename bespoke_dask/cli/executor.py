"""The `bespoke-dask` command line: parses, prints, and calls the Python API."""

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.live import Live

from bespoke_dask.config import BespokeWorkerConfig
from bespoke_dask.display import fit_table, status_view
from bespoke_dask.errors import InputError
from bespoke_dask.schema import BespokeWorkflow, ForceBalanceSettings, LeastSquaresSettings, QCSpec
from bespoke_dask.workflows import BespokeWorkflowFactory

app = typer.Typer(help="Bespoke torsion parameters for OpenFF force fields, fitted on Dask.")
executor_app = typer.Typer(help="Run bespoke fits on a local Dask cluster.")
app.add_typer(executor_app, name="executor")

console = Console()
errors = Console(stderr=True)

OPTIMIZERS = {"forcebalance": ForceBalanceSettings, "lsq": LeastSquaresSettings}


def user_errors(command):
    """Report bad input as one line on stderr and exit 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (InputError, KeyError, FileNotFoundError) as error:
            message = error.args[0] if isinstance(error, KeyError) else error
            errors.print(f"[red]Error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


# Options shared by every command that builds workflows.
Smiles = Annotated[Optional[list[str]], typer.Option("--smiles", help="SMILES of a molecule to fit.")]
MoleculeFile = Annotated[Optional[Path], typer.Option("--file", help="SDF/MOL file of molecules.")]
Workflow = Annotated[str, typer.Option("--workflow", help="Named workflow: default or debug.")]
WorkflowFile = Annotated[
    Optional[Path], typer.Option("--workflow-file", help="JSON of a BespokeWorkflowFactory.")
]
QCSpecOption = Annotated[
    Optional[tuple[str, str, str]],
    typer.Option("--qc-spec", help="PROGRAM METHOD BASIS, e.g. xtb gfn2xtb none."),
]
TargetTorsion = Annotated[
    Optional[list[str]], typer.Option("--target-torsion", help="SMARTS of bonds to fit (repeat).")
]
ForceFieldOption = Annotated[Optional[str], typer.Option("--force-field", help="Initial force field.")]
OptimizerOption = Annotated[
    Optional[str], typer.Option("--optimizer", help="Fitting backend: forcebalance or lsq.")
]


def build_workflows(
    smiles: list[str] | None,
    file: Path | None,
    workflow: str,
    workflow_file: Path | None,
    qc_spec: tuple[str, str, str] | None,
    target_torsion: list[str] | None,
    force_field: str | None,
    optimizer: str | None,
) -> list[BespokeWorkflow]:
    """Checked workflows for the molecules given, with the command-line overrides applied."""
    if not smiles and file is None:
        raise InputError("give a molecule with --smiles or --file")
    factory = (
        BespokeWorkflowFactory.from_file(workflow_file)
        if workflow_file
        else BespokeWorkflowFactory.from_name(workflow)
    )
    overrides = {}
    if qc_spec:
        overrides["qc_spec"] = QCSpec(program=qc_spec[0], method=qc_spec[1], basis=qc_spec[2])
    if target_torsion:
        overrides["target_torsion_smirks"] = target_torsion
    if force_field:
        overrides["initial_force_field"] = force_field
    if optimizer:
        if optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer '{optimizer}': choose forcebalance or lsq")
        overrides["optimizer"] = OPTIMIZERS[optimizer]()
    factory = factory.model_copy(update=overrides)
    workflows = [factory.optimization_schema_from_smiles(s) for s in smiles or []]
    if file is not None:
        workflows += factory.optimization_schemas_from_file(file)
    return workflows


@executor_app.command()
@user_errors
def run(
    smiles: Smiles = None,
    file: MoleculeFile = None,
    workflow: Workflow = "default",
    workflow_file: WorkflowFile = None,
    qc_spec: QCSpecOption = None,
    target_torsion: TargetTorsion = None,
    force_field: ForceFieldOption = None,
    optimizer: OptimizerOption = None,
    output: Annotated[Optional[Path], typer.Option(help="Write the result JSON here.")] = None,
    output_force_field: Annotated[
        Optional[Path], typer.Option(help="Write the bespoke force field (OFFXML) here.")
    ] = None,
    n_fragmenter_workers: int = 1,
    n_qc_compute_workers: int = 1,
    qc_compute_n_cores: int = 1,
    qc_compute_max_mem: Annotated[Optional[float], typer.Option(help="GiB per QC worker.")] = None,
    n_optimizer_workers: int = 1,
    directory: Annotated[
        Optional[Path], typer.Option(help="Keep the store here (default: a temporary directory).")
    ] = None,
):
    """Fit one molecule on a fresh local cluster and wait for the result."""
    from bespoke_dask.executor import BespokeDaskExecutor

    workflows = build_workflows(
        smiles, file, workflow, workflow_file, qc_spec, target_torsion, force_field, optimizer
    )
    if len(workflows) != 1:
        raise InputError(f"run fits one molecule, {len(workflows)} were given: use submit")
    qc_config = BespokeWorkerConfig(n_cores=qc_compute_n_cores, max_memory=qc_compute_max_mem)
    with console.status("launching the bespoke executor"):
        executor = BespokeDaskExecutor(
            n_fragmenter_workers=n_fragmenter_workers,
            n_qc_compute_workers=n_qc_compute_workers,
            n_optimizer_workers=n_optimizer_workers,
            qc_compute_worker_config=qc_config,
            directory=directory,
        ).start()
    try:
        console.print(f"dashboard: {executor.dashboard_link}")
        workflow_id = executor.submit(workflows[0])
        with Live(console=console, refresh_per_second=4) as live:
            result = executor.wait_until_complete(
                workflow_id, frequency=0.5, callback=lambda out: live.update(status_view(out))
            )
    finally:
        executor.stop()
    report(result, output, output_force_field)
    if result.status != "success":
        raise typer.Exit(2)


def report(result, output: Path | None, output_force_field: Path | None) -> None:
    """Print the fit's quality and write the requested files."""
    if result.results is not None:
        if result.results.message:
            console.print(result.results.message)
        if result.results.metrics:
            console.print(fit_table(result.results))
    if result.error:
        errors.print(f"[red]Error:[/] {result.error}", highlight=False, soft_wrap=True)
    if output is not None:
        output.write_text(result.model_dump_json(indent=2))
        console.print(f"result written to {output}")
    if output_force_field is not None and result.refit_force_field is not None:
        output_force_field.write_text(result.refit_force_field)
        console.print(f"bespoke force field written to {output_force_field}")
