"""Plain torsion-scan JSON (reference scans a user already has, e.g. DFT) as our scan results.

A file holds one scan or a list of them:

    {"smiles": "CC(=O)Nc1ccccc1",                 # SMILES, or mapped SMILES giving the atom order
     "elements": ["C", "C", "O", ...],            # with an unmapped SMILES: symbols in geometry order
     "dihedral": [1, 3, 5, 6],                    # the 4 driven atoms, 0-based in the geometry's order
     "qc_spec": {"program": "psi4", "method": "wb97x-d3bj", "basis": "def2-tzvpd"},
     "grid": [{"angle": -165.0,                   # degrees (optional: measured from the geometry)
               "geometry": [[x, y, z], ...],      # angstrom, one row per atom
               "energy": -515.123456}, ...]}      # hartree

With an unmapped SMILES the atom order of the geometries is found by matching the SMILES onto the
bonds perceived from the first geometry. The
grid spacing is the smallest gap between angles; a grid covering the circle is a full scan, and
-180 is the same angle as 180. Like `cache update` for QCArchive records, the result carries the
scan task a workflow with these settings computes for that bond, so seeding it saves that QC.
"""

import json
from pathlib import Path

import networkx
import numpy as np
from networkx.algorithms import isomorphism
from openff.toolkit import Molecule
from openff.units import unit
from pydantic import Field, ValidationError
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

from bespoke_dask.errors import InputError
from bespoke_dask.schema import BespokeWorkflow, GridPoint, QCSpec, TorsionScanResult, WorkflowSettings
from bespoke_dask.schema.base import SchemaModel
from bespoke_dask.stages.targets import scan_task

ANGSTROM_IN_BOHR = unit.Quantity(1.0, unit.angstrom).m_as(unit.bohr)


class PlainGridPoint(SchemaModel):
    """One optimized structure of a plain scan."""

    angle: float | None = Field(None, description="degrees; measured from the geometry when missing")
    geometry: list[list[float]] = Field(description="angstrom, one [x, y, z] per atom")
    energy: float = Field(description="hartree")


class PlainTorsionScan(SchemaModel):
    """A torsion scan as plain JSON (see the module docstring)."""

    smiles: str
    elements: list[str] | None = Field(None, description="element symbols in geometry order; needed with an unmapped SMILES")
    dihedral: tuple[int, int, int, int]
    qc_spec: QCSpec
    grid: list[PlainGridPoint] = Field(min_length=2)


def read_plain_scans(path: str | Path) -> list[PlainTorsionScan]:
    """The scans of a plain-scan JSON file (one scan or a list)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise InputError(f"{path} is not JSON: {error}") from None
    items = data if isinstance(data, list) else [data]
    try:
        return [PlainTorsionScan.model_validate(item) for item in items]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputError(f"{path} is not a plain torsion scan: {where}: {first['msg']}") from None


def is_plain_scan_data(data) -> bool:
    """Does parsed JSON look like plain scans (rather than QCSchema torsiondrive records)?"""
    items = data if isinstance(data, list) else [data]
    return bool(items) and all(isinstance(item, dict) and {"smiles", "dihedral", "grid"} <= set(item) for item in items)


def scan_result_from_plain(scan: PlainTorsionScan, settings: WorkflowSettings, name: str = "scan") -> TorsionScanResult:
    """The scan result a plain scan stands for; `InputError` naming it if it cannot be read."""
    geometries = [np.asarray(point.geometry, dtype=float) for point in scan.grid]
    molecule = _molecule(scan.smiles, scan.elements, geometries[0], name)
    if any(g.shape != (molecule.n_atoms, 3) for g in geometries):
        raise InputError(f"{name}: every geometry needs {molecule.n_atoms} rows of x, y, z")
    dihedral = tuple(int(atom) for atom in scan.dihedral)
    _check_chain(molecule, dihedral, name)
    grid = sorted(
        (
            GridPoint(angle=_angle(point, geometry, dihedral), energy=point.energy,
                      geometry=(geometry * ANGSTROM_IN_BOHR).ravel().tolist())
            for point, geometry in zip(scan.grid, geometries)
        ),
        key=lambda point: point.angle,
    )
    spacing, scan_range = _grid_shape([point.angle for point in grid], name)
    workflow = BespokeWorkflow(
        smiles=molecule.to_smiles(mapped=True),
        qc_spec=scan.qc_spec,
        torsiondrive=settings.torsiondrive.model_copy(update={"grid_spacing": spacing, "scan_range": scan_range}),
        optimization=settings.optimization,
    )
    return TorsionScanResult(
        task=scan_task(workflow, molecule, dihedral[1:3]),
        mapped_smiles=workflow.smiles,
        dihedral=dihedral,
        grid=grid,
        n_optimizations=len(grid),
    )


def bond_smarts(scan: TorsionScanResult) -> str:
    """A target-torsion SMARTS that tags exactly the scanned bond (and its symmetry copies) of its molecule."""
    rdmol = Molecule.from_mapped_smiles(scan.mapped_smiles, allow_undefined_stereo=True).to_rdkit()
    for atom in rdmol.GetAtoms():
        atom.SetAtomMapNum(0)
    for number, atom in enumerate(scan.dihedral[1:3], start=1):
        rdmol.GetAtomWithIdx(atom).SetAtomMapNum(number)
    return Chem.MolToSmarts(rdmol)


def normalised_angle(angle: float) -> float:
    """`angle` (degrees) in (-180, 180]: -180 is 180, as torsiondrive's grid has it."""
    wrapped = (float(angle) + 180.0) % 360.0 - 180.0
    return 180.0 if abs(wrapped + 180.0) < 1e-6 else round(wrapped, 6)


def _angle(point: PlainGridPoint, geometry: np.ndarray, dihedral) -> float:
    if point.angle is not None:
        return normalised_angle(point.angle)
    from bespoke_dask.stages.optimize.profiles import dihedrals

    return normalised_angle(round(float(np.degrees(dihedrals(geometry[None], [dihedral])[0, 0]))))


def _grid_shape(angles: list[float], name: str) -> tuple[int, tuple[int, int] | None]:
    """Grid spacing (degrees) and scan range (None for the whole circle) of sorted angles."""
    if len(set(angles)) != len(angles):
        raise InputError(f"{name}: two grid points at one angle ({angles})")
    gaps = np.diff(angles)
    spacing = round(float(gaps.min()))
    if spacing <= 0 or np.any(np.abs(gaps / spacing - np.round(gaps / spacing)) > 1e-3):
        raise InputError(f"{name}: the angles {angles} are not on one grid")
    if len(angles) * spacing >= 360:
        return spacing, None
    if np.any(np.round(gaps / spacing) != 1):
        raise InputError(f"{name}: the scan has gaps ({angles})")
    return spacing, (round(angles[0]), round(angles[-1]))


def _molecule(smiles: str, elements: list[str] | None, geometry: np.ndarray, name: str) -> Molecule:
    """The molecule in the geometry's atom order: a mapped SMILES gives it; otherwise it is matched."""
    try:
        parsed = Molecule.from_smiles(smiles, allow_undefined_stereo=True)
    except Exception:
        raise InputError(f"{name}: cannot read SMILES '{smiles}'") from None
    atom_map = parsed.properties.get("atom_map")
    if atom_map and len(atom_map) == parsed.n_atoms:
        return Molecule.from_mapped_smiles(smiles, allow_undefined_stereo=True)
    return _matched_to_geometry(parsed, elements, geometry, name)


def _matched_to_geometry(molecule: Molecule, elements: list[str] | None, geometry: np.ndarray, name: str) -> Molecule:
    """`molecule` renumbered to the atom order of `geometry` (angstrom): bonds perceived from the
    geometry, then the SMILES graph matched onto them, element by element."""
    if not elements:
        raise InputError(f"{name}: an unmapped SMILES needs 'elements' (one symbol per geometry row)")
    if len(elements) != molecule.n_atoms or len(geometry) != molecule.n_atoms:
        raise InputError(
            f"{name}: the SMILES has {molecule.n_atoms} atoms, 'elements' {len(elements)}, the geometry {len(geometry)}"
        )
    perceived = Chem.RWMol()
    for symbol in elements:
        perceived.AddAtom(Chem.Atom(str(symbol).capitalize()))
    conformer = Chem.Conformer(len(elements))
    for index, position in enumerate(geometry):
        conformer.SetAtomPosition(index, Point3D(*map(float, position)))
    perceived.AddConformer(conformer)
    rdDetermineBonds.DetermineConnectivity(perceived)
    matcher = isomorphism.GraphMatcher(
        _graph(molecule.to_rdkit()), _graph(perceived), node_match=lambda a, b: a["element"] == b["element"]
    )
    mapping = next(matcher.isomorphisms_iter(), None)
    if mapping is None:
        raise InputError(f"{name}: the bonds of the first geometry do not match the SMILES")
    return molecule.remap(mapping, current_to_new=True)


def _graph(rdmol) -> networkx.Graph:
    graph = networkx.Graph()
    graph.add_nodes_from((atom.GetIdx(), {"element": atom.GetAtomicNum()}) for atom in rdmol.GetAtoms())
    graph.add_edges_from((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()) for bond in rdmol.GetBonds())
    return graph


def _check_chain(molecule: Molecule, dihedral, name: str) -> None:
    for first, second in zip(dihedral, dihedral[1:]):
        if not (0 <= first < molecule.n_atoms and 0 <= second < molecule.n_atoms):
            raise InputError(f"{name}: dihedral {list(dihedral)} has an atom outside the molecule")
        if not any(set((b.atom1_index, b.atom2_index)) == {first, second} for b in molecule.bonds):
            raise InputError(f"{name}: dihedral {list(dihedral)} is not a chain of bonded atoms")
