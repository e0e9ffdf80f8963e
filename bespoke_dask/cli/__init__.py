"""The `bespoke-dask` command line: parses, prints, and calls the Python API."""

import typer

from bespoke_dask.cli import cache, executor
from bespoke_dask.cli.combine import combine
from bespoke_dask.cli.worker import launch_worker

app = typer.Typer(
    help="Bespoke torsion parameters for OpenFF force fields, fitted on Dask.", no_args_is_help=True
)
app.add_typer(executor.app, name="executor")
app.command("launch-worker")(launch_worker)
app.add_typer(cache.app, name="cache")
app.command("combine")(combine)
