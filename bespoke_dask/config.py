"""Per-pool worker shapes: shipped YAML < user dask config < BEFLOW_* variables < arguments."""

from pathlib import Path
from typing import Literal

import dask.config
import yaml
from pydantic import BaseModel, Field

from bespoke_dask.settings import Settings

Pool = Literal["fragmenter", "qc", "optimizer"]
POOLS: tuple[Pool, ...] = ("fragmenter", "qc", "optimizer")

# BespokeFit names each pool's settings BEFLOW_<STAGE>_WORKER_*; these are its stage names.
STAGE_NAMES: dict[Pool, str] = {"fragmenter": "fragmenter", "qc": "qc_compute", "optimizer": "optimizer"}

_defaults = yaml.safe_load((Path(__file__).parent / "bespoke_dask.yaml").read_text())
dask.config.update_defaults(_defaults)


class BespokeWorkerConfig(BaseModel):
    """What each worker of a pool hands to its stage: cores and memory (GiB) per task."""

    n_cores: int = Field(1, ge=1)
    max_memory: float | None = Field(None, gt=0, description="GiB per task; None: no limit")

    def environment(self, pool: Pool) -> dict[str, str]:
        """Environment of a worker process serving `pool` (read back by `from_environment`)."""
        prefix = f"BEFLOW_{STAGE_NAMES[pool].upper()}_WORKER"
        env = {f"{prefix}_N_CORES": str(self.n_cores), "OMP_NUM_THREADS": str(self.n_cores)}
        if self.max_memory is not None:
            env[f"{prefix}_MAX_MEM"] = str(self.max_memory)
        return env

    @classmethod
    def from_environment(cls, pool: Pool) -> "BespokeWorkerConfig":
        """The config of this worker process's pool, from its BEFLOW_* variables."""
        settings, stage = Settings(), STAGE_NAMES[pool]
        return cls(
            n_cores=settings.pool(stage, "n_cores") or 1,
            max_memory=settings.pool(stage, "max_mem"),
        )

    @classmethod
    def from_config(cls, pool: Pool) -> "BespokeWorkerConfig":
        """The pool's config from dask.config, overridden by BEFLOW_* variables."""
        return cls(n_cores=pool_setting(pool, "n-cores"), max_memory=pool_setting(pool, "max-memory"))


_BEFLOW_FIELDS = {"n-cores": "n_cores", "max-memory": "max_mem", "n-tasks": "n_tasks"}


def pool_setting(pool: Pool, name: str):
    """`bespoke-dask.pools.<pool>.<name>`, overridden by the matching BEFLOW_* variable."""
    settings = Settings()
    if name == "n-workers":
        override = getattr(settings, f"n_{STAGE_NAMES[pool]}_workers")
    elif name in _BEFLOW_FIELDS:
        override = settings.pool(STAGE_NAMES[pool], _BEFLOW_FIELDS[name])
    else:
        override = None
    return dask.config.get(f"bespoke-dask.pools.{pool}.{name}") if override is None else override
