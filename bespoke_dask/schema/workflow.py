"""The workflow: everything needed to fit bespoke torsions for one molecule, as JSON."""

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from bespoke_dask.schema.base import UNHASHED, SchemaModel

DEFAULT_TARGET_TORSION = "[!#1]~[!$(*#*)&!D1:1]-,=;!@[!$(*#*)&!D1:2]~[!#1]"
DEFAULT_FORCE_FIELD = "openff_unconstrained-2.2.0.offxml"


class QCSpec(SchemaModel):
    """Which program, method and basis compute the reference energies (lower-cased)."""

    program: str = "psi4"
    method: str = "b3lyp-d3bj"
    basis: str | None = "dzvp"

    @field_validator("basis", mode="before")
    @classmethod
    def _no_basis(cls, value: str | None) -> str | None:
        return None if value is None or str(value).lower() in ("none", "") else value

    @field_validator("program", "method", "basis")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @model_validator(mode="after")
    def _one_xtb_spelling(self) -> "QCSpec":
        """`GFN2-xTB` (QCArchive) and `gfn2xtb` (BespokeFit) are one method: one store key."""
        if self.program == "xtb" and self.method.startswith("gfn"):
            self.method = self.method.replace("-", "")
        return self


class WBOFragmentation(SchemaModel):
    """openff-fragmenter's Wiberg-bond-order fragmenter (AM1 bond orders through sqm)."""

    type: Literal["wbo"] = "wbo"
    threshold: float = 0.03
    keep_non_rotor_ring_substituents: bool = False


class PfizerFragmentation(SchemaModel):
    """openff-fragmenter's Pfizer fragmenter (keeps the first neighbour shell; fast)."""

    type: Literal["pfizer"] = "pfizer"


class NoFragmentation(SchemaModel):
    """Scan each target bond in the whole molecule."""

    type: Literal["none"] = "none"


Fragmentation = Annotated[
    Union[WBOFragmentation, PfizerFragmentation, NoFragmentation],
    Field(discriminator="type"),
]


def check_grid_spacing(spacing: int) -> int:
    """`spacing` (degrees) if torsiondrive can scan at it, else ValueError saying why."""
    if spacing <= 0 or 180 % spacing:
        raise ValueError(
            f"grid spacing {spacing} must divide 180 (e.g. 15, 30, 45, 60, 90): torsiondrive files each "
            "result under the nearest multiple of the spacing, so a grid point that is none would be scanned for ever"
        )
    return spacing


GridSpacing = Annotated[int, AfterValidator(check_grid_spacing)]  # degrees


class TorsionDriveSettings(SchemaModel):
    """How each torsion is scanned (torsiondrive)."""

    grid_spacing: GridSpacing = 15
    scan_range: tuple[int, int] | None = None
    n_conformers: int = 10
    energy_decrease_thresh: float | None = None
    energy_upper_limit: float | None = None


class ConstrainedOptimizationSettings(SchemaModel):
    """geomeTRIC settings for each constrained optimization of a scan."""

    coordsys: str = "dlc"
    enforce: float = 0.1
    reset: bool = True
    qccnv: bool = True
    epsilon: float = 0.0
    maxiter: int = 300
    convergence_set: str = "GAU"


class TorsionProfileSettings(SchemaModel):
    """How scan points are weighted in the fit (ForceBalance's TorsionProfile target)."""

    attenuate: bool = True
    energy_denominator: float = Field(1.0, description="kcal/mol")
    energy_cutoff: float = Field(10.0, description="kcal/mol; points above get no weight")
    restrain_k: float = Field(1.0, description="kcal/mol/A^2, ForceBalance's tether")


class ForceBalanceSettings(SchemaModel):
    """ForceBalance with BespokeFit's default options."""

    type: Literal["forcebalance"] = "forcebalance"
    max_iterations: int = 10
    penalty_type: Literal["L1", "L2"] = "L1"
    trust0: float = -0.25
    mintrust: float = 0.05
    error_tolerance: float = 1.0
    adaptive_factor: float = 0.2
    adaptive_damping: float = 1.0
    eig_lowerbound: float = 0.01
    finite_difference_h: float = 0.01
    convergence_objective: float = 0.01
    convergence_step: float = 0.01
    convergence_gradient: float = 0.01


class LeastSquaresSettings(SchemaModel):
    """Linear least squares of the torsion k's with a Gaussian prior, re-relaxed until self-consistent."""

    type: Literal["lsq"] = "lsq"
    max_iterations: int = 20
    tolerance: float = Field(1e-3, description="kcal/mol; stop when no k moves more")
    objective_tolerance: float = Field(
        1e-2, description="relative; stop when a step lowers, or the linearised problem promises, less"
    )
    max_step_halvings: int = Field(4, description="halvings of a step that raises the relaxed objective")
    restraint_k: float = Field(1000.0, description="kcal/mol/rad^2 on the driven dihedral")
    reference: Literal["minimum", "offset"] = Field(
        "minimum",
        description="MM and QC profiles both referenced to the QC-minimum grid point (as the metrics "
        "and ForceBalance's TorsionProfile), or compared up to a fitted weighted-mean offset per scan",
    )
    hold_undetermined: bool = Field(
        False,
        description="hold k's the scans leave to the prior exactly at their starting values (off: the prior "
        "keeps them near their start, and combinations the scans do determine still move)",
    )


Optimizer = Annotated[
    Union[ForceBalanceSettings, LeastSquaresSettings], Field(discriminator="type")
]


class StageTimeouts(SchemaModel):
    """Time limits in seconds; None takes `bespoke-dask.timeouts.*` from the settings.

    A task past its limit is stopped (its process killed) and its workflow errors.
    """

    fragmentation: float | None = Field(None, gt=0, description="s, fragmenting the molecule")
    qc: float | None = Field(None, gt=0, description="s, one constrained QC optimization")
    torsiondrive: float | None = Field(None, gt=0, description="s, one whole torsion scan")
    fit: float | None = Field(None, gt=0, description="s, the fit (lsq or ForceBalance)")


class WorkflowSettings(SchemaModel):
    """Every setting of a bespoke torsion fit, independent of the molecule."""

    initial_force_field: str = Field(
        DEFAULT_FORCE_FIELD, description="installed offxml name, or the offxml text itself"
    )
    target_torsion_smirks: list[str] = [DEFAULT_TARGET_TORSION]
    fragmentation: Fragmentation = WBOFragmentation()
    qc_spec: QCSpec = QCSpec()
    torsiondrive: TorsionDriveSettings = TorsionDriveSettings()
    optimization: ConstrainedOptimizationSettings = ConstrainedOptimizationSettings()
    target: TorsionProfileSettings = TorsionProfileSettings()
    optimizer: Optimizer = Field(
        default_factory=LeastSquaresSettings,
        description="lsq by default: see the README's fit-quality benchmark",
    )
    periodicities: list[int] = [1, 2, 3, 4]
    prior_width: float = Field(6.0, description="kcal/mol; Gaussian prior width of each k")
    cache_only: bool = Field(
        False, description="run no QC: every scan must be in the store already, else the workflow fails naming them"
    )
    # How to run, not what to compute: in no task's key.
    timeouts: StageTimeouts = Field(default_factory=StageTimeouts, json_schema_extra=UNHASHED)
    allow_partial: bool = Field(
        False,
        json_schema_extra=UNHASHED,
        description="fit the torsions whose scans succeeded and list the failed ones, instead of erroring",
    )


class BespokeWorkflow(WorkflowSettings):
    """One molecule and every setting of its bespoke torsion fit."""

    id: str | None = None
    smiles: str = Field(description="mapped SMILES of the molecule, explicit hydrogens")

    def without_fit_settings(self) -> "BespokeWorkflow":
        """This workflow with no id and default fit settings: all that fragments and scans depend on.

        Keys built from it let workflows that differ only in how they fit share fragmentation.
        """
        return self.model_copy(
            update={name: WorkflowSettings.model_fields[name].get_default(call_default_factory=True)
                    for name in FIT_SETTINGS} | {"id": None}
        )

    def fragmentation_input(self) -> "BespokeWorkflow":
        """This workflow with only what fragmentation reads (the molecule, the target torsions and
        the fragmenter's settings); every other setting at its default.

        Keys built from it let workflows at other QC levels, scan or fit settings share fragments.
        """
        return BespokeWorkflow(**{name: getattr(self, name) for name in FRAGMENTATION_INPUTS})


# What the fragment stage reads: a second QC level or scan setting does not fragment again.
FRAGMENTATION_INPUTS = ("smiles", "target_torsion_smirks", "fragmentation")

# Settings only the optimize stage (or the coordinator) reads: fragments and scans do not depend on them.
FIT_SETTINGS = ("optimizer", "target", "prior_width", "cache_only")


# BespokeFit's name for the same object.
BespokeOptimizationSchema = BespokeWorkflow
