"""Shared test set-up: AmberTools on PATH, one thread per engine."""

import os
import sys
from pathlib import Path

# openff-toolkit finds AmberTools' sqm (AM1-BCC, AM1 Wiberg bond orders) on PATH.
os.environ["PATH"] = str(Path(sys.executable).absolute().parent) + os.pathsep + os.environ["PATH"]
os.environ.setdefault("OMP_NUM_THREADS", "1")
