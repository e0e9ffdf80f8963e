"""Bespoke SMIRNOFF torsion fitting on Dask distributed."""

from bespoke_dask.config import BespokeWorkerConfig
from bespoke_dask.executor import BespokeDaskExecutor, retrieve, submit, wait_until_complete
from bespoke_dask.schema import BespokeExecutorOutput, BespokeOptimizationSchema, BespokeWorkflow
from bespoke_dask.workflows import BespokeWorkflowFactory

__all__ = [
    "BespokeDaskExecutor",
    "BespokeExecutorOutput",
    "BespokeOptimizationSchema",
    "BespokeWorkerConfig",
    "BespokeWorkflow",
    "BespokeWorkflowFactory",
    "retrieve",
    "submit",
    "wait_until_complete",
]
