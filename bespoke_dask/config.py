"""Settings, one precedence for all: argument > BEFLOW_* variable > user dask config > shipped YAML.

Every setting lives in dask.config under `bespoke-dask.` (defaults: `bespoke_dask.yaml`, merged
below any user file or DASK_* variable). Where BespokeFit (or we, in its style) name a BEFLOW_*
variable for it, that variable overrides the config; a command-line option or keyword argument
that is given (not None) overrides everything.
"""

from pathlib import Path
from typing import Literal

import dask.config
import yaml
from pydantic import BaseModel, Field

from bespoke_dask.settings import Settings

# Each pool is also the Dask resource its workers offer (`--resources qc=1`).
Pool = Literal["fragmenter", "qc", "optimizer"]
POOLS: tuple[Pool, ...] = ("fragmenter", "qc", "optimizer")
# The one place pools get the names users type (BespokeFit's worker types: `--worker-type`,
# `--max-jobs qc-compute=4`, messages); BEFLOW_* variables spell them with underscores.
WORKER_TYPES: dict[Pool, str] = {"fragmenter": "fragmenter", "qc": "qc-compute", "optimizer": "optimizer"}
POOL_OF_WORKER_TYPE: dict[str, Pool] = {name: pool for pool, name in WORKER_TYPES.items()}


def _beflow_stage(pool: str) -> str:
    """e.g. "qc" -> "qc_compute", as in BEFLOW_QC_COMPUTE_WORKER_N_CORES."""
    return WORKER_TYPES[pool].replace("-", "_")

_defaults = yaml.safe_load((Path(__file__).parent / "bespoke_dask.yaml").read_text())
dask.config.update_defaults(_defaults)


def beflow_variable(key: str) -> str | None:
    """The `Settings` field (BEFLOW_* variable) that overrides config `key`, if any."""
    parts = key.split(".")
    if parts[0] == "pools" and len(parts) == 3:
        stage, name = _beflow_stage(parts[1]), parts[2]
        fields = {"n-cores": "n_cores", "max-memory": "max_mem", "n-tasks": "n_tasks"}
        if name == "n-workers":
            return f"n_{stage}_workers"
        return f"{stage}_worker_{fields[name]}" if name in fields else None
    return {"scheduler-address": "scheduler_address"}.get(key)


def setting(key: str, given=None):
    """`bespoke-dask.<key>`: `given` if not None, else its BEFLOW_* variable, else dask.config."""
    if given is not None:
        return given
    variable = beflow_variable(key)
    override = getattr(Settings(), variable) if variable else None
    return dask.config.get(f"bespoke-dask.{key}") if override is None else override


def pool_setting(pool: Pool, name: str, given=None):
    """`bespoke-dask.pools.<pool>.<name>` with the precedence of `setting`."""
    return setting(f"pools.{pool}.{name}", given)


def adopt_distributed_defaults() -> None:
    """Make `bespoke-dask.distributed` distributed's defaults here; a value the user set still wins.

    Call after importing distributed, which loads its own defaults then (and would replace ours);
    `dask.config.refresh()` puts distributed's back (there the first library's defaults win).
    """
    dask.config.update_defaults({"distributed": dask.config.get("bespoke-dask.distributed")})


def distributed_keys() -> list[str]:
    """The `distributed.*` keys that `bespoke-dask.distributed` sets, e.g. "distributed.admin.tick.interval"."""
    def paths(tree: dict, prefix: str):
        for key, value in tree.items():
            yield from paths(value, f"{prefix}.{key}") if isinstance(value, dict) else [f"{prefix}.{key}"]

    return list(paths(dask.config.get("bespoke-dask.distributed"), "distributed"))


def distributed_environment() -> dict[str, str]:
    """Those `distributed.*` settings, as now in effect, as DASK_* variables (for batch jobs)."""
    return {
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(dask.config.get(key))
        for key in distributed_keys()
    }


class BespokeWorkerConfig(BaseModel):
    """What each worker of a pool hands to its stage: cores and memory (GiB) per task."""

    n_cores: int = Field(1, ge=1)
    max_memory: float | None = Field(None, gt=0, description="GiB per task; None: no limit")

    def environment(self, pool: Pool) -> dict[str, str]:
        """Environment of a worker process serving `pool` (read back by `from_environment`).

        The thread limits must be set before numpy loads in the worker (see cluster.py).
        """
        prefix = f"BEFLOW_{_beflow_stage(pool).upper()}_WORKER"
        cores = str(self.n_cores)
        env = {f"{prefix}_N_CORES": cores}
        env |= {name: cores for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        if self.max_memory is not None:
            env[f"{prefix}_MAX_MEM"] = str(self.max_memory)
        return env

    @classmethod
    def from_environment(cls, pool: Pool) -> "BespokeWorkerConfig":
        """The config of this worker process's pool, from its BEFLOW_* variables."""
        settings, stage = Settings(), _beflow_stage(pool)
        return cls(
            n_cores=settings.pool(stage, "n_cores") or 1,
            max_memory=settings.pool(stage, "max_mem"),
        )

    @classmethod
    def from_config(
        cls, pool: Pool, n_cores: int | None = None, max_memory: float | None = None
    ) -> "BespokeWorkerConfig":
        """The pool's config: the given values, else BEFLOW_* variables, else dask.config."""
        return cls(
            n_cores=pool_setting(pool, "n-cores", n_cores),
            max_memory=pool_setting(pool, "max-memory", max_memory),
        )
