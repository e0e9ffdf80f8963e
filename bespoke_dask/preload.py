"""Scheduler preload: any Dask scheduler becomes a bespoke executor.

    dask scheduler --host 127.0.0.1 --preload bespoke_dask.preload --bespoke-directory DIR

(or `bespoke-dask.directory` in dask config) hosts the coordinator of DIR on that scheduler; a
jobqueue cluster does the same with `scheduler_options={"preload": ["bespoke_dask.preload"],
"preload_argv": ["--bespoke-directory", DIR]}`. Workers join with `bespoke-dask launch-worker`
(or `dask worker ... --resources qc-compute=1`).
"""

import click

from bespoke_dask.config import setting
from bespoke_dask.service import PLUGIN_NAME, CoordinatorPlugin, tame_garbage_collection


@click.command()
@click.option("--bespoke-directory", default=None, help="The executor's directory (store, records).")
def dask_setup(scheduler, bespoke_directory):
    """Register the coordinator plugin, unless this scheduler already carries one."""
    if PLUGIN_NAME not in scheduler.plugins:
        scheduler.add_plugin(CoordinatorPlugin(setting("directory", bespoke_directory)))
    tame_garbage_collection()  # `dask scheduler`'s process is the scheduler's alone
