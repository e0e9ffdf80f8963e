"""Shared test set-up: AmberTools on PATH, one thread per engine, a real torsiondrive record."""

import copy
import os
import sys
from pathlib import Path

import dask.config
import pytest

import browser
import client_process

# openff-toolkit finds AmberTools' sqm (AM1-BCC, AM1 Wiberg bond orders) on PATH.
os.environ["PATH"] = str(Path(sys.executable).absolute().parent) + os.pathsep + os.environ["PATH"]
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def config():
    """dask.config as it was before the test (loading a jobqueue.yaml or refreshing changes it globally)."""
    saved, defaults = copy.deepcopy(dask.config.config), copy.deepcopy(dask.config.defaults)
    yield
    dask.config.config.clear()
    dask.config.config.update(saved)
    dask.config.defaults[:] = defaults


@pytest.fixture(scope="session")
def ether_torsiondrive():
    """(our GFN2-xTB scan of methyl ethyl ether, the same scan as a QCSchema TorsionDriveResult)."""
    from qcschema_torsiondrives import ether_scan, torsiondrive_record

    scan = ether_scan()
    return scan, torsiondrive_record(scan)


@pytest.fixture(scope="session")
def running_executor(tmp_path_factory):
    """One executor for the observability tests, already working on two fits of methyl formate.

    Both use the debug workflow (GFN2-xTB, 30 degree scan) and differ only in their fit, so they
    share one torsiondrive: the second must see its progress as well.
    """
    from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory

    first = BespokeWorkflowFactory.from_name("debug").optimization_schema_from_smiles("COC=O")
    second = first.model_copy(update={"prior_width": 3.0})
    executor = BespokeDaskExecutor(
        n_fragmenter_workers=1, n_qc_compute_workers=1, n_optimizer_workers=1,
        directory=tmp_path_factory.mktemp("observed-executor"),
    ).start()
    executor.ids = [executor.submit(first), executor.submit(second)]
    # followed from the start, while the first workflow's scan runs (tests/test_progress.py): through
    # a Dask client (pushed events), and from the directory (the dashboard, without Dask distributed)
    follow = ("executor", "watch", "--id", executor.ids[1], "--json")
    executor.watchers = {
        "scheduler": client_process.start(*follow, "--scheduler", executor.scheduler_address),
        "directory": client_process.start(
            *follow, "--directory", str(executor.directory), packages=("distributed", *client_process.CHEMISTRY)
        ),
    }
    # and looked at in a real browser while it runs (tests/test_dashboard.py)
    executor.screenshot = tmp_path_factory.mktemp("browser") / "bespoke-page.png"
    executor.page_text = browser.render_in_background(
        executor.dashboard_link.rsplit("/", 1)[0] + "/bespoke",
        executor.screenshot.parent / "chromium-profile",
        executor.screenshot,
        ready=browser.shows_progress_under_way,
    )
    yield executor
    executor.page_text.cancel()
    for watcher in executor.watchers.values():
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    executor.stop()
