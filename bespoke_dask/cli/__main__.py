"""`python -m bespoke_dask.cli`: the same as the `bespoke-dask` command."""

from bespoke_dask.cli import app

app(prog_name="bespoke-dask")
