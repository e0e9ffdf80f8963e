"""Work items passed between stages: fragments, torsion scans and their constrained optimizations.

Units: geometries are flat lists of 3N coordinates in bohr, energies in hartree, angles in degrees.
Atom indices are 0-based in the atom order of the model's own mapped SMILES.
"""

from typing import Any

from pydantic import Field, field_validator

from bespoke_dask.schema.base import SchemaModel
from bespoke_dask.schema.workflow import ConstrainedOptimizationSettings, QCSpec


class Fragment(SchemaModel):
    """A fragment standing for one rotatable bond of the parent."""

    smiles: str = Field(description="mapped SMILES of the fragment")
    bond_indices: tuple[int, int] = Field(description="the central bond, fragment atom indices")
    parent_bond: tuple[int, int] = Field(description="the same bond, parent atom indices")
    atom_map: dict[int, int] = Field(
        description="fragment atom index -> the same atom's parent index, for every fragment atom "
        "taken from the parent (capping atoms have none)"
    )


class FragmentationResult(SchemaModel):
    """The fragments of a molecule, one per symmetry-unique target bond."""

    parent_smiles: str = Field(description="mapped SMILES of the parent")
    fragments: list[Fragment]
    provenance: dict[str, str] = {}


class TorsionScanTask(SchemaModel):
    """A 1-D torsion scan in canonical form: two requests for the same scan compare equal.

    `smiles` is the canonical isomeric explicit-H SMILES with only the two central atoms
    mapped (1 and 2), as BespokeFit keys its QC cache. A `scan_range` covering the whole
    circle is the full scan (None), so both spellings share one key. A scan computed elsewhere
    (a reference scan, a QCArchive record) may have any `grid_spacing`; torsiondrive runs only
    those that divide 180 (`check_grid_spacing`, in `torsiondrive.start`).
    """

    smiles: str
    grid_spacing: int
    scan_range: tuple[int, int] | None = None

    @field_validator("scan_range")
    @classmethod
    def _full_circle_is_no_range(cls, scan_range: tuple[int, int] | None) -> tuple[int, int] | None:
        if scan_range is not None and scan_range[1] - scan_range[0] >= 360 - 1e-9:
            return None
        return scan_range
    n_conformers: int
    energy_decrease_thresh: float | None = None
    energy_upper_limit: float | None = None
    qc_spec: QCSpec
    optimization: ConstrainedOptimizationSettings


class ConstrainedOptimization(SchemaModel):
    """One geomeTRIC optimization with the driven dihedral held at `angle`."""

    mapped_smiles: str
    geometry: list[float] = Field(description="start geometry, bohr")
    dihedral: tuple[int, int, int, int]
    angle: float = Field(description="degrees")
    qc_spec: QCSpec
    optimization: ConstrainedOptimizationSettings


class OptimizationResult(SchemaModel):
    """The end of one constrained optimization."""

    initial_geometry: list[float] = Field(description="bohr")
    final_geometry: list[float] = Field(description="bohr")
    energy: float = Field(description="hartree")
    n_gradients: int


class ScanState(SchemaModel):
    """Where a torsiondrive stands: the td_api state plus the jobs it is waiting for."""

    task: TorsionScanTask
    mapped_smiles: str = Field(description="the scanned molecule, atom order of all geometries")
    dihedral: tuple[int, int, int, int]
    td_state: dict[str, Any]
    pending: list[str] = Field([], description="td_api grid id of each job of the current wavefront")
    n_optimizations: int = 0
    grid_points: int = Field(0, description="grid angles the scan covers")
    grid_points_done: int = Field(0, description="grid angles with a finished optimization")


class GridPoint(SchemaModel):
    """The lowest-energy optimized structure at one grid angle."""

    angle: float = Field(description="degrees")
    energy: float = Field(description="hartree")
    geometry: list[float] = Field(description="bohr")


class TorsionScanResult(SchemaModel):
    """A finished torsion scan."""

    task: TorsionScanTask
    mapped_smiles: str
    dihedral: tuple[int, int, int, int]
    grid: list[GridPoint] = Field(description="sorted by angle")
    n_optimizations: int


class ScannedMolecule(SchemaModel):
    """The molecule of a torsion scan, whatever the scan's settings: its task's `smiles`."""

    smiles: str


class PartialCharges(SchemaModel):
    """MM partial charges of one molecule (elementary charge), in its mapped SMILES's atom order."""

    mapped_smiles: str
    charges: list[float]


class ScanStep(SchemaModel):
    """One turn of a torsiondrive: the next wavefront of jobs, or the finished result."""

    state: ScanState
    jobs: list[ConstrainedOptimization] = []
    result: TorsionScanResult | None = None
