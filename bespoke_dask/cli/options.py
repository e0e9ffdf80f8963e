"""Options shared by several commands, and the conversion of user errors into exit code 2.

Light on purpose: every command's module imports this one, and `--help` must not wait for Dask
or the workflow schema (they load inside the commands that use them).
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
from rich.console import Console

from bespoke_dask.errors import DirectoryBusy, ExecutorNotFound, InputError, one_line

if TYPE_CHECKING:
    from bespoke_dask.schema import BespokeWorkflow
    from bespoke_dask.workflows import BespokeWorkflowFactory

console = Console()
errors = Console(stderr=True)

USER_ERRORS = (InputError, FileNotFoundError, ExecutorNotFound, DirectoryBusy)
ERROR_LOG = Path(typer.get_app_dir("bespoke-dask")) / "errors.log"
DEFAULT_DIRECTORY = "bespoke-executor"  # shipped bespoke-dask.directory, for --help only


def quiet_dask_logs() -> None:
    """Silence Dask here and in the workers this process starts: progress and errors are ours.

    A failed task still reaches the user as its stage's error; only Dask's own chatter (and its
    shutdown races, logged as errors) is hidden.
    """
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "critical"
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def user_errors(command):
    """Bad input: one line on stderr, exit 2. A bug: one line, its traceback logged, exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as error:
            errors.print(f"[red]Error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # the command's own exit
        except Exception as error:  # noqa: BLE001 - anything else is ours to fix
            log = _log_traceback()
            errors.print(
                f"[red]Internal error:[/] {one_line(error)} (traceback in {log}; please report it)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def _log_traceback() -> Path:
    """Append the current exception's traceback to ERROR_LOG; returns its path."""
    ERROR_LOG.parent.mkdir(parents=True, exist_ok=True)
    with ERROR_LOG.open("a") as log:
        log.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} {' '.join(sys.argv)}\n")
        log.write(traceback.format_exc())
    return ERROR_LOG


Smiles = Annotated[Optional[list[str]], typer.Option("--smiles", help="SMILES of a molecule (repeat).")]
MoleculeFile = Annotated[
    Optional[list[Path]], typer.Option("--file", help="SDF/MOL file of molecules (repeat).")
]
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
AllowPartial = Annotated[
    bool,
    typer.Option("--allow-partial", help="Fit the torsions whose scans succeeded; list the failed ones."),
]
KeepFiles = Annotated[
    bool, typer.Option("--keep-files", help="Keep the workers' scratch files (BEFLOW_KEEP_TMP_FILES).")
]
Scheduler = Annotated[
    Optional[str],
    typer.Option(
        "--scheduler",
        help="Scheduler address of a running executor (else BEFLOW_SCHEDULER_ADDRESS, else --directory).",
    ),
]
Directory = Annotated[
    Optional[Path],
    typer.Option(
        "--directory",
        help="The executor's directory.",
        show_default=f"bespoke-dask.directory, {DEFAULT_DIRECTORY}",
    ),
]
Host = Annotated[
    Optional[str],
    typer.Option(help="Interface to listen on.", show_default="127.0.0.1, this machine only"),
]
TLSCAFile = Annotated[Optional[str], typer.Option(help="TLS: the CA certificate (PEM).")]
TLSCert = Annotated[Optional[str], typer.Option(help="TLS: this node's certificate (PEM).")]
TLSKey = Annotated[Optional[str], typer.Option(help="TLS: this node's private key (PEM).")]
WorkflowId = Annotated[str, typer.Option("--id", help="Workflow id.")]


CacheOnly = Annotated[
    bool,
    typer.Option(
        "--cache-only",
        help="Run no QC: fit to scans already in the store (cache update); fail at once naming any that are missing.",
    ),
]


def workflow_factory(
    workflow: str,
    workflow_file: Path | None,
    qc_spec: tuple[str, str, str] | None,
    target_torsion: list[str] | None,
    force_field: str | None,
    optimizer: str | None,
    cache_only: bool = False,
    allow_partial: bool = False,
) -> BespokeWorkflowFactory:
    """The named or saved workflow settings with the command-line overrides applied."""
    from bespoke_dask import schema
    from bespoke_dask.workflows import BespokeWorkflowFactory

    optimizers = {"forcebalance": schema.ForceBalanceSettings, "lsq": schema.LeastSquaresSettings}
    factory = (
        BespokeWorkflowFactory.from_file(workflow_file)
        if workflow_file
        else BespokeWorkflowFactory.from_name(workflow)
    )
    overrides = {}
    if qc_spec:
        overrides["qc_spec"] = schema.QCSpec(program=qc_spec[0], method=qc_spec[1], basis=qc_spec[2])
    if target_torsion:
        overrides["target_torsion_smirks"] = target_torsion
    if force_field:
        overrides["initial_force_field"] = force_field
    if allow_partial:
        overrides["allow_partial"] = True
    if optimizer:
        if optimizer not in optimizers:
            raise InputError(f"unknown optimizer '{optimizer}': choose forcebalance or lsq")
        overrides["optimizer"] = optimizers[optimizer]()
    if cache_only:
        overrides["cache_only"] = True
    return factory.model_copy(update=overrides)


def executor_directory(directory: Path | None) -> Path:
    """--directory, else the configured one (`bespoke-dask.directory`)."""
    from bespoke_dask.config import setting  # Dask's config: not needed for --help

    return Path(setting("directory", directory))


def keep_files(keep: bool) -> None:
    """--keep-files: this process and the workers it starts keep their scratch files."""
    if keep:
        os.environ["BEFLOW_KEEP_TMP_FILES"] = "1"


def build_workflows(
    factory: BespokeWorkflowFactory, smiles: list[str] | None, files: list[Path] | None
) -> list[BespokeWorkflow]:
    """Checked workflows for every molecule given; InputError on the first bad one."""
    workflows, problems = batch_workflows(factory, smiles, files)
    if problems:
        raise InputError(problems[0])
    return workflows


def batch_workflows(
    factory: BespokeWorkflowFactory, smiles: list[str] | None, files: list[Path] | None
) -> tuple[list[BespokeWorkflow], list[str]]:
    """Checked workflows for the good molecules, and one line per bad one (a batch goes on)."""
    if not smiles and not files:
        raise InputError("give a molecule with --smiles or --file")
    workflows, problems = [], []
    for given in smiles or []:
        try:
            workflows.append(factory.optimization_schema_from_smiles(given))
        except InputError as error:
            problems.append(str(error))
    for file in files or []:
        try:
            workflows += factory.optimization_schemas_from_file(file)
        except InputError as error:
            problems.append(str(error))
    return workflows, problems
