"""Settings: per-pool worker shapes from dask.config (shipped YAML < user config < arguments)."""

import os
from pathlib import Path
from typing import Literal

import dask.config
import yaml
from pydantic import BaseModel, Field

Pool = Literal["fragmenter", "qc", "optimizer"]
POOLS: tuple[Pool, ...] = ("fragmenter", "qc", "optimizer")

# BespokeFit names each pool's settings BEFLOW_<STAGE>_WORKER_*; these are its stage names.
_BEFLOW_STAGE = {"fragmenter": "FRAGMENTER", "qc": "QC_COMPUTE", "optimizer": "OPTIMIZER"}

_defaults = yaml.safe_load((Path(__file__).parent / "bespoke_dask.yaml").read_text())
dask.config.update_defaults(_defaults)


class BespokeWorkerConfig(BaseModel):
    """What each worker of a pool hands to its stage: cores and memory (GiB) per task."""

    n_cores: int = Field(1, ge=1)
    max_memory: float | None = Field(None, gt=0, description="GiB; None: no limit")

    def environment(self, pool: Pool) -> dict[str, str]:
        """Environment of a worker process serving `pool` (read back by `from_environment`)."""
        stage = _BEFLOW_STAGE[pool]
        env = {
            f"BEFLOW_{stage}_WORKER_N_CORES": str(self.n_cores),
            "OMP_NUM_THREADS": str(self.n_cores),
        }
        if self.max_memory is not None:
            env[f"BEFLOW_{stage}_WORKER_MAX_MEM"] = str(self.max_memory)
        return env

    @classmethod
    def from_environment(cls, pool: Pool) -> "BespokeWorkerConfig":
        """The config of this process's pool, from BEFLOW_* variables (defaults if unset)."""
        stage = _BEFLOW_STAGE[pool]
        cores = os.environ.get(f"BEFLOW_{stage}_WORKER_N_CORES")
        memory = os.environ.get(f"BEFLOW_{stage}_WORKER_MAX_MEM")
        return cls(
            n_cores=int(cores) if cores else 1,
            max_memory=float(memory) if memory else None,
        )

    @classmethod
    def from_config(cls, pool: Pool) -> "BespokeWorkerConfig":
        """The pool's config from dask.config, overridden by BEFLOW_* variables."""
        config = dask.config.get(f"bespoke-dask.pools.{pool}")
        stage = _BEFLOW_STAGE[pool]
        cores = os.environ.get(f"BEFLOW_{stage}_WORKER_N_CORES", config["n-cores"])
        memory = os.environ.get(f"BEFLOW_{stage}_WORKER_MAX_MEM", config["max-memory"])
        return cls(n_cores=int(cores), max_memory=None if memory is None else float(memory))


def pool_size(pool: Pool) -> int:
    """Number of workers of `pool` from dask.config, overridden by BEFLOW_N_*_WORKERS."""
    variable = f"BEFLOW_N_{_BEFLOW_STAGE[pool]}_WORKERS"
    return int(os.environ.get(variable, dask.config.get(f"bespoke-dask.pools.{pool}.n-workers")))
