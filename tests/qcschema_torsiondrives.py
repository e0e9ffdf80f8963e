"""A real torsiondrive as QCArchive holds it: our own GFN2-xTB scan written as a QCSchema record.

The record lists the atoms in the order of another SMILES spelling than our scan's, as a
QCArchive record made from someone else's input would.
"""

import numpy as np
from openff.toolkit import Molecule
from qcelemental.models import Molecule as QCMolecule
from qcelemental.models.procedures import TorsionDriveResult

from bespoke_dask import BespokeWorkflowFactory
from bespoke_dask.schema import NoFragmentation, TorsionDriveSettings, TorsionScanResult, TorsionScanTask
from bespoke_dask.stages import torsiondrive
from bespoke_dask.stages.fragment import parent_molecule, target_bonds
from bespoke_dask.stages.qc import optimize_constrained
from bespoke_dask.stages.qcarchive import CMILES
from bespoke_dask.stages.targets import scan_task

# methyl ethyl ether and the settings that scan its one target bond, O-CH2, in seconds
ETHER = "COCC"
ETHER_SETTINGS = BespokeWorkflowFactory.from_name("debug").model_copy(
    update={
        "fragmentation": NoFragmentation(),
        "torsiondrive": TorsionDriveSettings(grid_spacing=60, n_conformers=1),
    }
)
RECORD_SMILES = "CCOC"  # the record's atom order: C C O C H..., not ours


def ether_task() -> TorsionScanTask:
    """The scan a workflow with `ETHER_SETTINGS` asks for."""
    workflow = ETHER_SETTINGS.optimization_schema_from_smiles(ETHER)
    molecule = parent_molecule(workflow.smiles)
    (bond,) = target_bonds(molecule, workflow.target_torsion_smirks)
    return scan_task(workflow, molecule, bond)


def ether_scan() -> TorsionScanResult:
    """The scan run serially (seconds)."""
    return torsiondrive.run_torsiondrive(ether_task(), lambda jobs: [optimize_constrained(j) for j in jobs])


def torsiondrive_record(scan: TorsionScanResult, smiles: str = RECORD_SMILES) -> TorsionDriveResult:
    """`scan` as a QCSchema TorsionDriveResult with the atoms in the order of `smiles`."""
    ours = Molecule.from_mapped_smiles(scan.mapped_smiles)
    theirs = Molecule.from_smiles(smiles)
    _, to_theirs = Molecule.are_isomorphic(ours, theirs, return_atom_map=True)
    order = sorted(to_theirs, key=to_theirs.get)  # order[their index] = our index

    def molecule(geometry: list[float]) -> QCMolecule:
        return qcschema_molecule(theirs, np.reshape(geometry, (-1, 3))[order])

    lowest = min(scan.grid, key=lambda point: point.energy)
    return TorsionDriveResult(
        keywords={
            "dihedrals": [[to_theirs[i] for i in scan.dihedral]],
            "grid_spacing": [scan.task.grid_spacing],
        },
        input_specification={"driver": "gradient", "model": {"method": "GFN2XTB", "basis": None}},
        initial_molecule=[molecule(lowest.geometry)],
        optimization_spec={"procedure": "geomeTRIC", "keywords": {"program": "xtb", "coordsys": "dlc"}},
        final_energies={_grid_id(point.angle): point.energy for point in scan.grid},
        final_molecules={_grid_id(point.angle): molecule(point.geometry) for point in scan.grid},
        optimization_history={},
        success=True,
        provenance={"creator": "bespoke_dask tests"},
    )


def qcschema_molecule(molecule: Molecule, geometry: np.ndarray) -> QCMolecule:
    """A QCSchema molecule (bohr) with QCArchive's cmiles and the bond orders as connectivity."""
    return QCMolecule(
        symbols=[atom.symbol for atom in molecule.atoms],
        geometry=geometry,
        connectivity=[(bond.atom1_index, bond.atom2_index, bond.bond_order) for bond in molecule.bonds],
        molecular_charge=0,
        molecular_multiplicity=1,
        identifiers={CMILES: molecule.to_smiles(mapped=True)},
        fix_com=True,
        fix_orientation=True,
    )


def _grid_id(angle: float) -> str:
    return str(round(angle))  # as qcengine's torsiondrive procedure writes it
