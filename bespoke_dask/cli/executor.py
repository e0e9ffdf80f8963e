"""`bespoke-dask executor ...`: run one fit, or launch a long-lived executor and drive it."""

import contextlib
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from bespoke_dask.cli.batch import ClusterOption, JobqueueConfig, MaxJobs, MinJobs, launch_batch, show_job_script
from bespoke_dask.cli.display import as_json, fit_table, parameter_table, status_view
from bespoke_dask.cli.options import (
    CacheOnly,
    AllowPartial,
    KeepFiles,
    Directory,
    ForceFieldOption,
    Host,
    MoleculeFile,
    OptimizerOption,
    QCSpecOption,
    Scheduler,
    Smiles,
    TLSCAFile,
    TLSCert,
    TLSKey,
    TargetTorsion,
    Workflow,
    WorkflowFile,
    WorkflowId,
    batch_workflows,
    build_workflows,
    console,
    errors,
    executor_directory,
    quiet_dask_logs,
    user_errors,
    keep_files,
    workflow_factory,
)
from bespoke_dask.errors import InputError

if TYPE_CHECKING:  # Dask loads in the commands that need it: --help, list and retrieve do not
    from bespoke_dask.executor import BespokeDaskExecutor
    from bespoke_dask.schema import BespokeExecutorOutput

app = typer.Typer(help="Run bespoke fits: one-shot, or on a long-lived executor.", no_args_is_help=True)

# Options left out are None: the setting then comes from BEFLOW_* or dask config (config.py).
NFragmenter = Annotated[Optional[int], typer.Option(help="Fragmenter workers.", show_default="1")]
NQC = Annotated[Optional[int], typer.Option(help="QC workers.", show_default="1")]
QCCores = Annotated[Optional[int], typer.Option(help="Cores per QC calculation.", show_default="1", min=1)]
QCMemory = Annotated[Optional[float], typer.Option(help="GiB per QC calculation.", show_default="no limit")]
NOptimizer = Annotated[Optional[int], typer.Option(help="Optimizer workers.", show_default="1")]
Report = Annotated[
    Optional[Path], typer.Option(help="Write a fit report here: one self-contained HTML file with plots.")
]
ReportDir = Annotated[
    Optional[Path], typer.Option(help="Write the report's plots as PNG files here (default: beside the report).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _executor(n_fragmenter, n_qc, qc_cores, qc_memory, n_optimizer, **kwargs) -> "BespokeDaskExecutor":
    from bespoke_dask.config import BespokeWorkerConfig
    from bespoke_dask.executor import BespokeDaskExecutor

    return BespokeDaskExecutor(
        n_fragmenter_workers=n_fragmenter,
        n_qc_compute_workers=n_qc,
        n_optimizer_workers=n_optimizer,
        qc_compute_worker_config=BespokeWorkerConfig.from_config("qc", qc_cores, qc_memory),
        **kwargs,
    )


@app.command()
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
    cache_only: CacheOnly = False,
    allow_partial: AllowPartial = False,
    output: Annotated[Optional[Path], typer.Option(help="Write the result JSON here.")] = None,
    output_force_field: Annotated[
        Optional[Path], typer.Option(help="Write the bespoke force field (OFFXML) here.")
    ] = None,
    n_fragmenter_workers: NFragmenter = None,
    n_qc_compute_workers: NQC = None,
    qc_compute_n_cores: QCCores = None,
    qc_compute_max_mem: QCMemory = None,
    n_optimizer_workers: NOptimizer = None,
    directory: Annotated[
        Optional[Path], typer.Option(help="Keep the store here (default: a temporary directory).")
    ] = None,
    report: Report = None,
    report_dir: ReportDir = None,
    quiet: Quiet = False,
    keep: KeepFiles = False,
):
    """Fit one molecule on a fresh local cluster and wait for the result."""
    keep_files(keep)
    factory = workflow_factory(
        workflow, workflow_file, qc_spec, target_torsion, force_field, optimizer, cache_only, allow_partial
    )
    workflows = build_workflows(factory, smiles, file)
    if len(workflows) != 1:
        raise InputError(f"run fits one molecule, {len(workflows)} were given: use submit")
    quiet_dask_logs()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly, as on Ctrl-C
    executor = _executor(
        n_fragmenter_workers, n_qc_compute_workers, qc_compute_n_cores, qc_compute_max_mem,
        n_optimizer_workers, directory=directory,
    )
    with console.status("launching the bespoke executor") if not quiet else contextlib.nullcontext():
        executor.start()
    try:
        if not quiet:
            console.print(f"dashboard: {_bespoke_page(executor.dashboard_link)}")
        workflow_id = executor.submit(workflows[0])
        result = _watch(lambda callback=None: executor.wait_until_complete(workflow_id, callback=callback), quiet)
    finally:
        executor.stop()
    _report(result, output, output_force_field, quiet=quiet, report=report, report_dir=report_dir)


@app.command()
@user_errors
def launch(
    directory: Directory = None,
    n_fragmenter_workers: NFragmenter = None,
    n_qc_compute_workers: NQC = None,
    qc_compute_n_cores: QCCores = None,
    qc_compute_max_mem: QCMemory = None,
    n_optimizer_workers: NOptimizer = None,
    host: Host = None,
    port: Annotated[Optional[int], typer.Option(help="Scheduler port.", show_default="any free one")] = None,
    dashboard_port: Annotated[
        Optional[int], typer.Option(help="Dashboard port.", show_default="any free one")
    ] = None,
    tls: Annotated[
        Optional[bool],
        typer.Option("--tls/--no-tls", help="Require Dask TLS (certificates from the flags, dask config, or generated).", show_default=False),
    ] = None,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
    cluster: ClusterOption = "local",
    jobqueue_config: JobqueueConfig = None,
    min_jobs: MinJobs = None,
    max_jobs: MaxJobs = None,
    keep: KeepFiles = False,
):
    """Start an executor in the foreground until Ctrl-C or SIGTERM; it resumes unfinished work."""
    from bespoke_dask import tls as bespoke_tls
    from bespoke_dask.config import setting

    keep_files(keep)
    directory = executor_directory(directory)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if cluster != "local":  # each pool's workers as batch jobs of its jobqueue.yaml shape
        tls_files = (tls_ca_file, tls_cert, tls_key)
        return launch_batch(
            cluster, directory, stop, jobqueue_config, min_jobs, max_jobs,
            setting("host", host), setting("port", port), setting("dashboard-port", dashboard_port),
            tls=bool(setting("tls", tls) or any(tls_files)), tls_files=tls_files,
        )
    security = None
    if tls_ca_file or tls_cert or tls_key:
        security = bespoke_tls.resolve(None, tls_ca_file, tls_cert, tls_key)
    executor = _executor(
        n_fragmenter_workers, n_qc_compute_workers, qc_compute_n_cores, qc_compute_max_mem,
        n_optimizer_workers, directory=directory, host=host, port=port, dashboard_port=dashboard_port,
        tls=tls, security=security,
    )
    with console.status("launching the bespoke executor"):
        executor.start()
    from bespoke_dask.service import tame_garbage_collection

    tame_garbage_collection()
    try:
        console.print(f"scheduler: {executor.scheduler_address}")
        console.print(f"dashboard: {_bespoke_page(executor.dashboard_link)}")
        console.print(f"directory: {directory.resolve()}", highlight=False)
        resumed = [output.id for output in executor.list() if output.status == "running"]
        if resumed:
            console.print(f"resuming workflows {', '.join(resumed)}")
        stop.wait()
    finally:
        console.print("stopping the executor")
        executor.stop()


app.command("job-script")(show_job_script)


@app.command()
@user_errors
def submit(
    smiles: Smiles = None,
    file: MoleculeFile = None,
    workflow: Workflow = "default",
    workflow_file: WorkflowFile = None,
    qc_spec: QCSpecOption = None,
    target_torsion: TargetTorsion = None,
    force_field: ForceFieldOption = None,
    optimizer: OptimizerOption = None,
    cache_only: CacheOnly = False,
    allow_partial: AllowPartial = False,
    save_submission_info: Annotated[
        bool, typer.Option(help="Write the ids to submission.json in the current directory.")
    ] = False,
    scheduler: Scheduler = None,
    directory: Directory = None,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
):
    """Submit molecules to a running executor; prints their ids. Bad molecules are reported
    (exit code 2) and the good ones submitted all the same."""
    factory = workflow_factory(
        workflow, workflow_file, qc_spec, target_torsion, force_field, optimizer, cache_only, allow_partial
    )
    workflows, problems = batch_workflows(factory, smiles, file)
    for problem in problems:
        errors.print(f"[red]Error:[/] {problem}", highlight=False, soft_wrap=True)
    if not workflows:
        raise typer.Exit(2)
    executor = _connect(scheduler, directory, tls_ca_file, tls_cert, tls_key)
    try:
        ids = [executor.submit(w) for w in workflows]
    finally:
        executor.stop()
    table = Table("id", "smiles")
    for workflow_id, submitted in zip(ids, workflows):
        table.add_row(workflow_id, submitted.smiles)
    console.print(table)
    if save_submission_info:
        info = [{"id": i, "smiles": w.smiles} for i, w in zip(ids, workflows)]
        Path("submission.json").write_text(json.dumps(info, indent=2))
    if problems:
        raise typer.Exit(2)


@app.command()
@user_errors
def watch(
    workflow_id: WorkflowId,
    scheduler: Scheduler = None,
    directory: Directory = None,
    quiet: Quiet = False,
    json_lines: Annotated[bool, typer.Option("--json", help="Print each status as a line of JSON.")] = False,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
):
    """Show live progress of a workflow until it finishes (exit code 2 unless it succeeds)."""

    def follow(callback=None) -> "BespokeExecutorOutput":
        tls_files = (tls_ca_file, tls_cert, tls_key)
        return _read(scheduler, directory, tls_files, "wait_until_complete", workflow_id, callback=callback)

    if json_lines:
        result = follow(lambda output: print(json.dumps(as_json(output, results=False)), flush=True))
    else:
        result = _watch(follow, quiet)
    _report(result, None, None, quiet=quiet or json_lines)


@app.command()
@user_errors
def retrieve(
    workflow_id: WorkflowId,
    output: Annotated[Optional[Path], typer.Option(help="Write the result JSON here.")] = None,
    force_field: Annotated[
        Optional[Path], typer.Option(help="Write the bespoke force field (OFFXML) here.")
    ] = None,
    scheduler: Scheduler = None,
    directory: Directory = None,
    report: Report = None,
    report_dir: ReportDir = None,
    as_json_document: JSON = False,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
):
    """Show a workflow's status and results, and write them to files."""
    result = _read(scheduler, directory, (tls_ca_file, tls_cert, tls_key), "retrieve", workflow_id)
    if as_json_document:
        print(json.dumps(as_json(result), indent=2))
    else:
        console.print(status_view(result))
    _report(
        result, output, force_field, exit_on_failure=False, quiet=as_json_document,
        report=report, report_dir=report_dir,
    )


@app.command("list")
@user_errors
def list_(
    status: Annotated[Optional[str], typer.Option(help="waiting, running, errored, success or cancelled.")] = None,
    scheduler: Scheduler = None,
    directory: Directory = None,
    as_json_document: JSON = False,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
):
    """List the executor's workflows."""
    outputs = _read(scheduler, directory, (tls_ca_file, tls_cert, tls_key), "list")
    outputs = [output for output in outputs if status in (None, output.status)]
    if as_json_document:
        print(json.dumps([as_json(output, results=False) for output in outputs], indent=2))
        return
    table = Table("id", "status", "smiles")
    for output in outputs:
        table.add_row(output.id, output.status, output.readable(output.smiles))
    console.print(table)


@app.command()
@user_errors
def cancel(
    workflow_id: WorkflowId,
    scheduler: Scheduler = None,
    directory: Directory = None,
    tls_ca_file: TLSCAFile = None,
    tls_cert: TLSCert = None,
    tls_key: TLSKey = None,
):
    """Cancel a workflow: its tasks are stopped and its workers freed."""
    result = _read(scheduler, directory, (tls_ca_file, tls_cert, tls_key), "cancel", workflow_id)
    console.print(f"workflow {workflow_id}: {result.status}")


def _bespoke_page(dashboard_link: str | None) -> str | None:
    """The dashboard's Bespoke page, where the fits are shown."""
    return None if dashboard_link is None else dashboard_link.rsplit("/", 1)[0] + "/bespoke"


def _connect(scheduler, directory, tls_ca_file, tls_cert, tls_key) -> "BespokeDaskExecutor":
    """The running executor; TLS certificates from the flags, else the directory, else dask config."""
    from bespoke_dask import tls as bespoke_tls
    from bespoke_dask.executor import connect

    directory = executor_directory(directory)
    security = bespoke_tls.resolve(directory, tls_ca_file, tls_cert, tls_key)
    return connect(scheduler, directory, security)


def _read(scheduler, directory, tls_files: tuple, operation: str, *args, **kwargs):
    """`list`, `retrieve`, `wait_until_complete` or `cancel` of the running executor: through its
    dashboard when that may answer, else through a Dask client (TLS, no dashboard recorded in the
    directory, an unknown id).

    The dashboard answers without Dask distributed, which takes longer to import than the rest.
    """
    dashboard = None
    if not any(tls_files):
        from bespoke_dask.config import setting
        from bespoke_dask.http_client import dashboard_of

        dashboard = dashboard_of(executor_directory(directory), setting("scheduler-address", scheduler))
    answer = None if dashboard is None else getattr(dashboard, operation)(*args, **kwargs)
    if answer is not None:
        return answer
    executor = _connect(scheduler, directory, *tls_files)
    try:
        return getattr(executor, operation)(*args, **kwargs)
    finally:
        executor.stop()


def _watch(follow: Callable, quiet: bool = False) -> "BespokeExecutorOutput":
    """`follow(callback)` a workflow to its end, showing each status (and the elapsed times) unless `quiet`."""
    if quiet:
        return follow()
    view = "waiting for the executor"
    with Live(console=console, refresh_per_second=4, get_renderable=lambda: view) as live:

        def show(output: "BespokeExecutorOutput") -> None:
            nonlocal view
            view = status_view(output)  # re-rendered 4 times a second: running stages' times go on
            live.refresh()

        return follow(show)


def _report(
    result: "BespokeExecutorOutput", output, output_force_field, exit_on_failure=True, quiet=False,
    report: Path | None = None, report_dir: Path | None = None,
) -> None:
    """Print the fit's quality, write the requested files, exit 2 on a failed workflow."""
    say = (lambda *args, **kwargs: None) if quiet else console.print
    if result.results is not None:
        if result.results.message:
            say(result.results.message)
        if result.results.parameters:
            say(parameter_table(result.results))
        if result.results.metrics:
            say(fit_table(result))
        for skipped in result.results.skipped:
            errors.print(f"[yellow]Skipped:[/] {skipped.smiles}: {skipped.error}", highlight=False, soft_wrap=True)
    if result.error:
        errors.print(f"[red]Error:[/] {result.error}", highlight=False, soft_wrap=True)
    if output is not None:
        output.write_text(result.model_dump_json(indent=2))
        say(f"result written to {output}")
    if output_force_field is not None and result.refit_force_field is not None:
        output_force_field.write_text(result.refit_force_field)
        say(f"bespoke force field written to {output_force_field}")
    if report is not None:
        from bespoke_dask.report import write_report  # chemistry and plotting: loaded only here

        figures = write_report(result, report, report_dir)
        say(f"report written to {report} (plots: {', '.join(str(f) for f in figures) or 'none'})")
    if exit_on_failure and result.status != "success":
        raise typer.Exit(2)
