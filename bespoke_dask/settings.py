"""BespokeFit's BEFLOW_* environment variables that still mean something here.

Everything else is Dask configuration (`bespoke-dask.*` in dask.config); a variable set here
overrides it. This module imports no Dask, so stage code may read it.
"""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """BEFLOW_* variables; None means "not set: use dask.config"."""

    model_config = SettingsConfigDict(env_prefix="BEFLOW_", extra="ignore")

    fragmenter_worker_n_cores: int | None = None
    fragmenter_worker_max_mem: float | None = None
    fragmenter_worker_n_tasks: int | None = None
    qc_compute_worker_n_cores: int | None = None
    qc_compute_worker_max_mem: float | None = None
    qc_compute_worker_n_tasks: int | None = None
    optimizer_worker_n_cores: int | None = None
    optimizer_worker_max_mem: float | None = None
    optimizer_worker_n_tasks: int | None = None
    keep_tmp_files: bool = False
    optimizer_keep_files: bool = False
    # ours, in BespokeFit's style
    n_fragmenter_workers: int | None = None
    n_qc_compute_workers: int | None = None
    n_optimizer_workers: int | None = None
    scheduler_address: str | None = None

    def pool(self, stage: str, field: str):
        """e.g. `pool("qc_compute", "n_cores")` -> BEFLOW_QC_COMPUTE_WORKER_N_CORES."""
        return getattr(self, f"{stage}_worker_{field}")
