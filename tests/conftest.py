"""Shared test set-up: AmberTools on PATH, one thread per engine, a real torsiondrive record."""

import os
import sys
from pathlib import Path

import pytest

# openff-toolkit finds AmberTools' sqm (AM1-BCC, AM1 Wiberg bond orders) on PATH.
os.environ["PATH"] = str(Path(sys.executable).absolute().parent) + os.pathsep + os.environ["PATH"]
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ether_torsiondrive():
    """(our GFN2-xTB scan of methyl ethyl ether, the same scan as a QCSchema TorsionDriveResult)."""
    from qcschema_torsiondrives import ether_scan, torsiondrive_record

    scan = ether_scan()
    return scan, torsiondrive_record(scan)
