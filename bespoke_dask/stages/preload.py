"""What every stage process has loaded before it starts: imported once by the forkserver that
each worker forks its stage processes from (`bespoke_dask.sandbox`), so no child pays for it
on its first call.
"""

import contextlib

import qcengine

from bespoke_dask.stages import charges, fragment, optimize, qc, targets, torsiondrive  # noqa: F401

qc.register_engines()
# qcengine reads the host's facts on its first computation; py-cpuinfo takes about 1 s of them.
# Read once here; if it fails, each computation fails with qcengine's own error instead.
with contextlib.suppress(Exception):
    qcengine.config.get_global()
