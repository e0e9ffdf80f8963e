"""pydantic models for everything that crosses a process boundary."""

from bespoke_dask.schema.base import SCHEMA_VERSION, UNHASHED, SchemaModel
from bespoke_dask.schema.drawings import Drawing, DrawingRequest, Drawings
from bespoke_dask.schema.results import (
    BespokeExecutorOutput,
    BespokeTorsion,
    FINISHED,
    FitResult,
    FitTarget,
    ProfileError,
    ScanProgress,
    SkippedTorsion,
    StageStatus,
    Status,
    TorsionMetrics,
    TorsionTarget,
    WorkflowRecord,
)
from bespoke_dask.schema.tasks import (
    ConstrainedOptimization,
    Fragment,
    FragmentationResult,
    GridPoint,
    OptimizationResult,
    PartialCharges,
    ScannedMolecule,
    ScanState,
    ScanStep,
    TorsionScanResult,
    TorsionScanTask,
)
from bespoke_dask.schema.workflow import (
    DEFAULT_FORCE_FIELD,
    DEFAULT_TARGET_TORSION,
    BespokeOptimizationSchema,
    BespokeWorkflow,
    ConstrainedOptimizationSettings,
    ForceBalanceSettings,
    LeastSquaresSettings,
    NoFragmentation,
    PfizerFragmentation,
    QCSpec,
    StageTimeouts,
    TorsionDriveSettings,
    TorsionProfileSettings,
    WBOFragmentation,
    WorkflowSettings,
)

__all__ = [name for name in dir() if not name.startswith("_")]
