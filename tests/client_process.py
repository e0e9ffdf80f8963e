"""Run a `bespoke-dask` command in a fresh interpreter and report which chemistry packages it loaded
(or which of other `packages`, e.g. `distributed`)."""

import subprocess
import sys

CHEMISTRY = ("rdkit", "openff", "qcengine", "qcelemental", "openmm", "torsiondrive", "geometric", "tblite")
MARK = "chemistry modules loaded:"

_RUN = f"""
import sys
from bespoke_dask.cli import app
packages = sys.argv.pop(1).split(",")
try:
    app(sys.argv[1:], prog_name="bespoke-dask")
except SystemExit as done:
    code = done.code
else:
    code = 0
loaded = sorted({{name.split('.')[0] for name in sys.modules if name.split('.')[0] in packages}})
print({MARK!r}, ",".join(loaded), file=sys.stderr)
sys.exit(code)
"""


def start(*args: str, packages: tuple[str, ...] = CHEMISTRY) -> subprocess.Popen:
    """Start `bespoke-dask ARGS...`; its stderr ends with the line `MARK pkg,pkg` of `packages` it loaded."""
    return subprocess.Popen(
        [sys.executable, "-c", _RUN, ",".join(packages), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run(*args: str, timeout: float = 120, packages: tuple[str, ...] = CHEMISTRY) -> tuple[int, str, str, list[str]]:
    """(exit code, stdout, stderr, which of `packages` it loaded) of a finished command."""
    return finish(start(*args, packages=packages), timeout)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str, list[str]]:
    stdout, stderr = process.communicate(timeout=timeout)
    lines = [line for line in stderr.splitlines() if line.startswith(MARK)]
    loaded = lines[-1][len(MARK):].strip() if lines else None
    return process.returncode, stdout, stderr, [] if not loaded else loaded.split(",")
