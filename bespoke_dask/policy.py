"""How long a stage may run, and how often a task runs again after its worker died.

Limits come from the workflow's `timeouts` where set, else from `bespoke-dask.timeouts.*` in
dask.config (seconds or a Dask time string such as "2h"; null: no limit). The number of re-runs
is `bespoke-dask.retries`. Neither is part of any task's key: a result computed under one
limit is the same result under another.
"""

import dask.config
from dask.utils import parse_timedelta
from distributed import KilledWorker

from bespoke_dask import config  # noqa: F401 - loads bespoke_dask.yaml's defaults
from bespoke_dask.sandbox import StageStopped
from bespoke_dask.schema import StageTimeouts

# The limit (a field of StageTimeouts) that applies to each stage's tasks, and how errors name it.
LIMITS = {"fragment": "fragmentation", "targets": "fragmentation", "qc": "qc", "charges": "fit", "optimize": "fit"}
LABELS = {
    "fragment": "fragmentation",
    "targets": "bespoke parameter set-up",
    "qc": "one QC optimization",
    "charges": "AM1-BCC charges",
    "optimize": "the fit",
    "scan": "one torsiondrive",
}


def label(stage_name: str) -> str:
    """The stage as a user calls it, e.g. "one QC optimization"."""
    return LABELS.get(stage_name, stage_name)


def timeout(limit: str, timeouts: StageTimeouts | None = None) -> float | None:
    """Seconds `limit` ("fragmentation", "qc", "torsiondrive", "fit") allows; None for no limit."""
    given = None if timeouts is None else getattr(timeouts, limit)
    if given is not None:
        return given
    setting = dask.config.get(f"bespoke-dask.timeouts.{limit}", None)
    return None if setting is None else parse_timedelta(setting, default="s")


def stage_timeout(stage_name: str, timeouts: StageTimeouts | None = None) -> float | None:
    """The limit of one task of the stage `stage_name`; None for light steps with none."""
    return timeout(LIMITS[stage_name], timeouts) if stage_name in LIMITS else None


def retries() -> int:
    """How often a task whose worker (or own process) died is run again before its stage errors."""
    return int(dask.config.get("bespoke-dask.retries", 2))


def scan_ahead() -> bool:
    """Whether a scan starts the next wavefront's decided jobs while the current one still runs."""
    return bool(dask.config.get("bespoke-dask.scan-ahead", True))


def death(error: BaseException) -> str:
    """Why a task has to run again, in a few words."""
    if isinstance(error, KilledWorker):
        return "its worker died"
    return str(error)


def worker_died(error: BaseException) -> bool:
    """Whether `error` says the task's worker or process died, not that the work itself failed."""
    return isinstance(error, KilledWorker) or (isinstance(error, StageStopped) and not error.cancelled)
