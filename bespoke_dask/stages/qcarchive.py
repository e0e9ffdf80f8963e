"""Finished torsiondrives from QCArchive (QCSchema `TorsionDriveResult` records) as our scan results.

A record becomes the `TorsionScanResult` a workflow would have computed itself: its task is the
one `targets.scan_task` makes for the record's molecule and central bond, so seeding the store
with it saves that workflow the QC. What the record says decides the molecule, the grid (spacing
and range) and the QC spec; the starting conformers, the energy thresholds and the geomeTRIC
settings come from the workflow settings given (QCArchive records do not state them comparably).
Units: geometries in bohr, energies in hartree, angles in degrees. Atom indices are 0-based in
the record's own atom order, which the result keeps.
"""

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from openff.toolkit import Molecule
from openff.toolkit.utils.exceptions import NotBondedError
from openff.units import unit
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D

from bespoke_dask.errors import InputError
from bespoke_dask.schema import BespokeWorkflow, GridPoint, QCSpec, TorsionScanResult, WorkflowSettings
from bespoke_dask.stages.scan_file import normalised_angle
from bespoke_dask.stages.targets import scan_task
from bespoke_dask.stages.torsiondrive import grid_angles

CMILES = "canonical_isomeric_explicit_hydrogen_mapped_smiles"
BOHR_IN_ANGSTROM = unit.Quantity(1.0, unit.bohr).m_as(unit.angstrom)


class UnusableRecord(Exception):
    """A well-formed record that cannot seed a scan; the message says why."""


class SkippedTorsionDrive(UserWarning):
    """A record that cannot seed a scan (not 1-D, failed, incomplete); the others carry on."""


def read_torsiondrives(path: str | Path) -> dict[str, dict]:
    """The records of a JSON file holding a list of records, one record, or a dict of them, by name."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:  # not JSON, or not text
        raise InputError(f"{path} is not JSON: {error}") from None
    return torsiondrives_by_name(data, source=str(path))


def torsiondrives_by_name(data: Any, source: str = "the input") -> dict[str, dict]:
    """Name each record: its key in a dict of records, else its position ("record 1", ...)."""
    if _is_record(data):
        return {"record 1": _as_dict(data)}
    if isinstance(data, Mapping) and data and all(_is_record(value) for value in data.values()):
        return {str(name): _as_dict(record) for name, record in data.items()}
    if isinstance(data, list) and data and all(_is_record(record) for record in data):
        return {f"record {number}": _as_dict(record) for number, record in enumerate(data, start=1)}
    raise InputError(f"{source} holds no QCSchema TorsionDriveResult records (or not only them)")


def scan_results_from_torsiondrives(
    records: Mapping[str, Any] | list[Any], settings: WorkflowSettings
) -> list[TorsionScanResult]:
    """One scan result per usable record (dicts or qcelemental models), in input order.

    `settings` (a workflow or a `BespokeWorkflowFactory`) gives the conformer count, the energy
    thresholds and the geomeTRIC settings of the scans.

    Records that are not 1-D scans, failed, or miss grid points are skipped with a
    `SkippedTorsionDrive` warning; a record that cannot be read raises `InputError` naming it.
    """
    named = records if isinstance(records, Mapping) else torsiondrives_by_name(list(records))
    results = []
    for name, record in named.items():
        try:
            results.append(scan_result_from_torsiondrive(_as_dict(record), settings, name))
        except UnusableRecord as skip:
            warnings.warn(f"skipped {name}: {skip}", SkippedTorsionDrive, stacklevel=2)
    return results


def scan_result_from_torsiondrive(
    record: dict, settings: WorkflowSettings, name: str = "record"
) -> TorsionScanResult:
    """The scan result one record stands for; `UnusableRecord` if it cannot seed one."""
    keywords = _field(record, name, "keywords")
    dihedrals = _field(keywords, name, "dihedrals")
    if len(dihedrals) != 1:
        raise UnusableRecord(f"a {len(dihedrals)}-D scan; only 1-D scans can be seeded")
    if record.get("success") is False:
        raise UnusableRecord("the torsiondrive did not succeed")
    molecule = record_molecule(record, name)
    dihedral = _dihedral(molecule, dihedrals[0], name)
    spacing = int(_field(keywords, name, "grid_spacing")[0])
    ranges = keywords.get("dihedral_ranges")
    scan_range = tuple(int(bound) for bound in ranges[0]) if ranges else None
    grid = record_grid(record, molecule, name)
    _check_complete(grid, spacing, scan_range)
    workflow = BespokeWorkflow(
        smiles=molecule.to_smiles(mapped=True),
        qc_spec=record_qc_spec(record, name),
        torsiondrive=settings.torsiondrive.model_copy(
            update={"grid_spacing": spacing, "scan_range": scan_range}
        ),
        optimization=settings.optimization,
    )
    history = record.get("optimization_history") or {}
    return TorsionScanResult(
        task=scan_task(workflow, molecule, dihedral[1:3]),
        mapped_smiles=workflow.smiles,
        dihedral=dihedral,
        grid=grid,
        n_optimizations=sum(map(len, history.values())) or len(grid),
    )


def record_molecule(record: dict, name: str = "record") -> Molecule:
    """The record's molecule in its own atom order: from its cmiles, else from its connectivity."""
    initial = _field(record, name, "initial_molecule")
    molecule = initial[0] if isinstance(initial, list) else initial
    if not isinstance(molecule, Mapping):
        raise InputError(f"{name}: initial_molecule is not a QCSchema molecule")
    cmiles = (molecule.get("identifiers") or {}).get(CMILES) or (molecule.get("extras") or {}).get(CMILES)
    built = _from_cmiles(cmiles, name) if cmiles else _from_connectivity(molecule, name)
    symbols = [str(symbol).capitalize() for symbol in _field(molecule, name, "symbols")]
    if [atom.symbol for atom in built.atoms] != symbols:
        raise InputError(f"{name}: the molecule's {CMILES} does not match its atoms")
    return built


def record_qc_spec(record: dict, name: str = "record") -> QCSpec:
    """Program (from the optimization keywords, else the record's extras), method and basis."""
    keywords = (record.get("optimization_spec") or {}).get("keywords") or {}
    program = keywords.get("program") or (record.get("extras") or {}).get("program")
    if not program:
        raise InputError(f"{name}: no QC program in optimization_spec.keywords or extras")
    model = _field(_field(record, name, "input_specification"), name, "model")
    return QCSpec(program=program, method=_field(model, name, "method"), basis=model.get("basis"))


def record_grid(record: dict, molecule: Molecule, name: str = "record") -> list[GridPoint]:
    """The lowest-energy structure per angle (hartree, bohr), sorted by angle."""
    energies = _field(record, name, "final_energies")
    structures = _field(record, name, "final_molecules")
    grid = []
    for key, energy in energies.items():
        if key not in structures:
            raise UnusableRecord(f"no final molecule at grid point {key}")
        geometry = np.asarray(_field(structures[key], name, "geometry"), dtype=float).ravel()
        if geometry.size != 3 * molecule.n_atoms:
            raise InputError(f"{name}: the final molecule at {key} has {geometry.size // 3} atoms")
        grid.append(GridPoint(angle=_angle(key, name), energy=float(energy), geometry=geometry.tolist()))
    return sorted(grid, key=lambda point: point.angle)


def _check_complete(grid: list[GridPoint], spacing: int, scan_range: tuple[int, int] | None) -> None:
    missing = grid_angles(spacing, scan_range) - {round(point.angle) for point in grid}
    if missing:
        raise UnusableRecord(f"the scan misses grid angles {sorted(missing)}")


def _from_cmiles(cmiles: str, name: str) -> Molecule:
    try:
        molecule = Molecule.from_mapped_smiles(cmiles, allow_undefined_stereo=True)
        molecule.properties.pop("atom_map", None)  # the atom order is the map order now
        return molecule
    except Exception:
        raise InputError(f"{name}: cannot read its {CMILES} '{cmiles}'") from None


def _from_connectivity(molecule: Mapping, name: str) -> Molecule:
    """Bonds from the connectivity; bond orders and formal charges re-derived from the total charge
    (QCSchema has no formal charges); stereo from the geometry."""
    connectivity = molecule.get("connectivity")
    if not connectivity:
        raise InputError(f"{name}: its molecule has neither {CMILES} nor connectivity")
    editable = Chem.RWMol()
    for symbol in molecule["symbols"]:
        editable.AddAtom(Chem.Atom(str(symbol).capitalize()))
    for first, second, _ in connectivity:
        editable.AddBond(int(first), int(second), Chem.BondType.SINGLE)
    rdmol = editable.GetMol()
    conformer = Chem.Conformer(rdmol.GetNumAtoms())
    geometry = np.reshape(np.asarray(molecule["geometry"], dtype=float), (-1, 3)) * BOHR_IN_ANGSTROM
    for index, position in enumerate(geometry):
        conformer.SetAtomPosition(index, Point3D(*position))
    rdmol.AddConformer(conformer)
    try:
        rdDetermineBonds.DetermineBondOrders(rdmol, charge=round(molecule.get("molecular_charge") or 0))
        Chem.AssignStereochemistryFrom3D(rdmol)
        return Molecule.from_rdkit(rdmol, allow_undefined_stereo=True, hydrogens_are_explicit=True)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{name}: cannot perceive its molecule from connectivity: {reason}") from None


def _dihedral(molecule: Molecule, atoms: list[int], name: str) -> tuple[int, int, int, int]:
    dihedral = tuple(int(atom) for atom in atoms)
    if len(dihedral) != 4 or not all(_bonded(molecule, a, b) for a, b in zip(dihedral, dihedral[1:])):
        raise InputError(f"{name}: dihedral {list(dihedral)} is not a chain of bonded atoms")
    return dihedral


def _bonded(molecule: Molecule, a: int, b: int) -> bool:
    if not (0 <= a < molecule.n_atoms and 0 <= b < molecule.n_atoms):
        return False
    try:
        molecule.get_bond_between(a, b)
    except NotBondedError:
        return False
    return True


def _angle(key: str, name: str) -> float:
    """A grid id as qcengine ("-165") or QCFractal ("[-165]") writes it, in (-180, 180]."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", str(key))
    if len(numbers) != 1:
        raise InputError(f"{name}: grid point '{key}' is not one angle")
    return normalised_angle(float(numbers[0]))


def _field(data: Mapping, name: str, key: str):
    if not isinstance(data, Mapping) or data.get(key) is None:
        raise InputError(f"{name}: the record has no '{key}'")
    return data[key]


def _is_record(data: Any) -> bool:
    return hasattr(data, "final_energies") or (isinstance(data, Mapping) and "final_energies" in data)


def _as_dict(record: Any) -> dict:
    """A record as plain JSON data (qcelemental models serialised first)."""
    return json.loads(record.json()) if hasattr(record, "json") else record
