"""The science: plain functions on pydantic models. Nothing here imports dask."""

import os
import sys
import warnings

# AmberTools (sqm, antechamber: AM1-BCC charges, AM1 Wiberg bond orders) installs beside this
# interpreter; openff-toolkit finds it on PATH, which a worker process may not have.
_BIN = os.path.dirname(os.path.abspath(sys.executable))
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

# openff-utilities looks for conda to report provenance; pip installs have none.
warnings.filterwarnings("ignore", message="No conda/mamba/micromamba executable found")
# openff-fragmenter parses its own mapped SMILES with from_smiles and warns about it to itself.
warnings.filterwarnings("ignore", message="Warning! Fully mapped SMILES pattern passed")
