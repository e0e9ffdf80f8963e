"""Fit results, their quality metrics, and the executor's per-workflow output.

Energies and errors are in kcal/mol, times in seconds.
"""

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from bespoke_dask.schema.base import SchemaModel
from bespoke_dask.schema.tasks import PartialCharges, TorsionScanResult, TorsionScanTask
from bespoke_dask.schema.workflow import BespokeWorkflow, QCSpec

if TYPE_CHECKING:
    from openff.toolkit import ForceField

Status = Literal["waiting", "running", "errored", "success", "cancelled"]
FINISHED: tuple[Status, ...] = ("success", "errored", "cancelled")
StageType = Literal["fragmentation", "qc-generation", "optimization"]

PROFILE_PROTOCOL = (
    "MM profile: restrained minima with only the driven dihedral held at each grid angle, each the lowest "
    "of a start from the point's QC geometry and starts from its grid neighbours' minima turned to its angle "
    "(repeated while any point improves); MM and QC profiles aligned at the scan's QC minimum; "
    "rmse and max_error over the grid points within energy_cutoff (default 10 kcal/mol, the fit's window) "
    "of the QC minimum, rmse_all and max_error_all over every grid point"
)


class BespokeTorsion(SchemaModel):
    """A bespoke proper-torsion parameter: one type of torsion about a target bond.

    It covers `parent_torsions` (parent atom indices, oriented with b < c) about `parent_bonds`,
    and the same torsions of the fragment that was scanned for them. It starts from the base
    force field's parameter `base_id` on those torsions, with all of its terms.
    """

    smirks: str
    parent_bonds: list[tuple[int, int]] = []
    parent_torsions: list[tuple[int, int, int, int]] = []
    base_id: str | None = Field(None, description="id of the base force field's parameter it starts from")
    periodicities: list[int]
    phases: list[float] = Field(description="degrees")
    k: list[float] = Field(description="kcal/mol")
    idivf: list[float]
    k_uncertainty: list[float] | None = Field(
        None, description="kcal/mol; posterior standard deviation of each k, where the fit gives one"
    )
    k_determined: list[bool] | None = Field(
        None, description="False where the scan data leave a k to its prior"
    )


class TorsionTarget(SchemaModel):
    """The bespoke parameters of one target bond and the scan that will fit them (made after fragmentation)."""

    parameters: list[BespokeTorsion]
    scan: TorsionScanTask


class FitTarget(SchemaModel):
    """A finished scan, the SMIRKS of the bespoke parameters of its bond, and the MM charges of
    its molecule."""

    smirks: list[str]
    scan: TorsionScanResult
    charges: PartialCharges | None = Field(None, description="AM1-BCC, computed ahead; None: the fit computes them")


class ProfileError(SchemaModel):
    """How far an MM torsion profile is from the QC one (kcal/mol), see `PROFILE_PROTOCOL`.

    `rmse` and `max_error` are over the grid points inside the fitting window (QC energy at most
    the workflow's `energy_cutoff` above the QC minimum); the `_all` fields over every grid point.
    """

    rmse: float = Field(description="kcal/mol, grid points inside the fitting window")
    max_error: float = Field(description="kcal/mol, grid points inside the fitting window")
    n_points: int | None = Field(None, description="grid points inside the fitting window")
    rmse_all: float | None = Field(None, description="kcal/mol, every grid point")
    max_error_all: float | None = Field(None, description="kcal/mol, every grid point")
    n_points_all: int | None = Field(None, description="grid points")


class TorsionMetrics(SchemaModel):
    """Base, initial and bespoke profile errors for one scan, and the profiles themselves.

    Energies are kcal/mol per grid point, each profile aligned at the scan's QC minimum.
    """

    smirks: list[str]
    mapped_smiles: str
    dihedral: tuple[int, int, int, int]
    base: ProfileError | None = Field(None, description="the base force field as it is")
    initial: ProfileError | None = Field(None, description="the bespoke parameters at their starting values")
    final: ProfileError | None = Field(None, description="the refit force field")
    angles: list[float] = Field([], description="degrees")
    qc_energies: list[float] = []
    base_energies: list[float] = []
    initial_energies: list[float] = []
    final_energies: list[float] = []


class SkippedTorsion(SchemaModel):
    """The bespoke parameters of a target bond not fitted because its scan failed."""

    smirks: list[str]
    smiles: str = Field(description="the scanned fragment, central bond mapped")
    error: str


class FitResult(SchemaModel):
    """What the optimize stage returns."""

    optimizer: str
    parameters: list[BespokeTorsion]
    initial_parameters: list[BespokeTorsion] = Field([], description="the parameters at their starting values")
    kept_base: list[str] = Field(
        [], description="SMIRKS of parameters held at the base terms: their fit was worse than the base on its scan"
    )
    force_field: str = Field(description="the refit force field as OFFXML, no cosmetic attributes")
    metrics: list[TorsionMetrics] = []
    base: ProfileError | None = Field(
        None, description="the workflow's initial force field as it is (e.g. Sage), without the bespoke SMIRKS"
    )
    initial: ProfileError | None = Field(
        None, description="the base plus the bespoke SMIRKS at their starting k's: where the fit starts"
    )
    final: ProfileError | None = Field(None, description="the refit force field")
    protocol: str = PROFILE_PROTOCOL
    wall_time: float = 0.0
    message: str | None = Field(None, description="e.g. 'nothing to fit'")
    provenance: dict[str, str] = Field({}, description="versions of the packages that made the fit")
    skipped: list[SkippedTorsion] = Field(
        [], description="torsions left out because their scan failed (workflows with allow_partial)"
    )


class ScanProgress(SchemaModel):
    """How far one torsiondrive has come."""

    smiles: str
    status: Status = "waiting"
    grid_points_done: int = 0
    grid_points: int = 0
    optimizations: int = 0
    error: str | None = None
    angles: list[float] = Field([], description="degrees, grid points with a QC energy so far")
    energies: list[float] = Field([], description="kcal/mol above the lowest so far, per angle")
    retries: list[str] = Field([], description="optimizations run again, and why")


class StageStatus(SchemaModel):
    """Status of one stage of a workflow."""

    type: StageType
    status: Status = "waiting"
    error: str | None = None
    started_at: float | None = Field(None, description="unix time")
    ended_at: float | None = Field(None, description="unix time")
    scans: list[ScanProgress] = []
    retries: list[str] = Field([], description="tasks run again after their worker died, and why")


class BespokeExecutorOutput(SchemaModel):
    """Everything known about one submitted workflow (BespokeFit's `BespokeExecutorOutput`)."""

    id: str
    smiles: str
    stages: list[StageStatus] = Field(
        default_factory=lambda: [
            StageStatus(type="fragmentation"),
            StageStatus(type="qc-generation"),
            StageStatus(type="optimization"),
        ]
    )
    results: FitResult | None = None
    readable_smiles: dict[str, str] = Field(
        {}, description="the molecule's, its scans' and its fit's SMILES without atom maps and hydrogens"
    )
    depiction: str | None = Field(None, description="SVG drawing of the molecule")
    qc_spec: QCSpec | None = None

    @property
    def status(self) -> Status:
        statuses = [stage.status for stage in self.stages]
        for final in ("cancelled", "errored"):
            if final in statuses:
                return final
        if all(status == "success" for status in statuses):
            return "success"
        if all(status == "waiting" for status in statuses):
            return "waiting"
        return "running"

    @property
    def error(self) -> str | None:
        """The first stage error, prefixed with the stage that raised it."""
        for stage in self.stages:
            if stage.error:
                return f"{stage.type}: {stage.error}"
        return None

    @property
    def refit_force_field(self) -> str | None:
        return None if self.results is None else self.results.force_field

    @property
    def bespoke_force_field(self) -> "ForceField | None":
        """The refit force field as an openff-toolkit `ForceField`."""
        if self.refit_force_field is None:
            return None
        from openff.toolkit import ForceField

        return ForceField(self.refit_force_field)

    def readable(self, smiles: str) -> str:
        """`smiles` without atom maps and hydrogens, once the executor has drawn it."""
        return self.readable_smiles.get(smiles, smiles)

    def stage(self, stage_type: StageType) -> StageStatus:
        return next(stage for stage in self.stages if stage.type == stage_type)


class WorkflowRecord(SchemaModel):
    """A submitted workflow and what has become of it, as the executor keeps it on disk."""

    workflow: BespokeWorkflow
    output: BespokeExecutorOutput
