"""Bespoke SMIRNOFF torsion fitting on Dask distributed.

The public names load on first use, so a worker importing a stage module does not pay for
(or depend on) the executor.
"""

import importlib

_EXPORTS = {
    "BespokeDaskExecutor": "bespoke_dask.executor",
    "cancel": "bespoke_dask.executor",
    "connect": "bespoke_dask.executor",
    "list_workflows": "bespoke_dask.executor",
    "retrieve": "bespoke_dask.executor",
    "submit": "bespoke_dask.executor",
    "wait_until_complete": "bespoke_dask.executor",
    "BespokeWorkerConfig": "bespoke_dask.config",
    "BespokeExecutorOutput": "bespoke_dask.schema",
    "BespokeOptimizationSchema": "bespoke_dask.schema",
    "BespokeWorkflow": "bespoke_dask.schema",
    "BespokeWorkflowFactory": "bespoke_dask.workflows",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bespoke_dask' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
