"""Synthetic torsion scans with known bespoke k's, for testing the fitters without QC.

conftest.py turns these into session fixtures; tests import the constants and helpers from here.

The "QC" profile of a scan is made here, independently of profiles.py: the molecule is driven
to each grid angle with RDKit, relaxed by OpenMM with only the driven dihedral restrained
(harmonic, RESTRAINT_K) under Sage plus a bespoke torsion at known k's, and the energy without
the restraint is stored in hartree, the geometry in bohr. A fitter given this scan and the same
protocol should find the known k's with an RMSE of ~0.

Only the AM1-BCC charges are shared with the code under test (`am1bcc_charges`, one sqm run
per molecule and process).
"""

import math

import numpy as np
import openmm
from openff.toolkit import ForceField, Molecule
from openff.units import unit
from rdkit.Chem import rdMolTransforms

from bespoke_dask.schema import (
    BespokeTorsion,
    ConstrainedOptimizationSettings,
    GridPoint,
    QCSpec,
    TorsionScanResult,
    TorsionScanTask,
)
from bespoke_dask.stages.charges import am1bcc_charges

SAGE = "openff_unconstrained-2.2.0.offxml"
HARTREE_TO_KCAL = 627.5094737775374  # qcelemental's CODATA 2014 value, as the code under test
BOHR_TO_ANGSTROM = 0.52917721067
RESTRAINT_K = 1000.0  # kcal/mol/rad^2, LeastSquaresSettings' default
GRID_SPACING = 30  # degrees

# 1-propanol: C0 C1 C2 O3 ... H11 (on O). Two single-torsion parameters, every k identifiable.
PROPANOL = "[C:1]([C:2]([C:3]([O:4][H:12])([H:10])[H:11])([H:8])[H:9])([H:5])([H:6])[H:7]"
CCCO_DIHEDRAL = (0, 1, 2, 3)
CCOH_DIHEDRAL = (1, 2, 3, 11)
CCCO = BespokeTorsion(
    smirks="[#6X4H3:1]-[#6X4H2:2]-[#6X4H2:3]-[#8X2H1:4]",
    periodicities=[1, 2, 3],
    phases=[0.0, 180.0, 0.0],
    k=[1.2, 0.6, 0.9],
    idivf=[1.0, 1.0, 1.0],
)
CCOH = BespokeTorsion(
    smirks="[#6X4:1]-[#6X4H2:2]-[#8X2H1:3]-[#1:4]",
    periodicities=[1, 2, 3],
    phases=[0.0, 180.0, 0.0],
    k=[0.8, 0.4, 0.5],
    idivf=[1.0, 1.0, 1.0],
)

# Phenol: O0 c1 (ipso) c2 (ortho) ... H7 (on O). One wildcard parameter on both c-c-O-H
# torsions, which sit at phi and phi + 180: the odd k's cannot be seen (P15).
PHENOL = "[O:1]([c:2]1[c:3]([H:9])[c:4]([H:10])[c:5]([H:11])[c:6]([H:12])[c:7]1[H:13])[H:8]"
PHENOL_DIHEDRAL = (2, 1, 0, 7)
PHENOL_TORSION = BespokeTorsion(
    smirks="[*:1]~[#6X3:2]-[#8X2H1:3]-[*:4]",
    periodicities=[1, 2, 3, 4],
    phases=[0.0, 180.0, 0.0, 180.0],
    k=[0.0, 1.8, 0.0, 0.3],
    idivf=[1.0, 1.0, 1.0, 1.0],
)


def build_force_field(base: str, parameters: list[BespokeTorsion], parameterize: bool = False) -> str:
    """Stand-in for bespoke_dask.stages.smirks.build_force_field: `parameters` appended to ProperTorsions."""
    force_field = ForceField(base, allow_cosmetic_attributes=True)
    handler = force_field.get_parameter_handler("ProperTorsions")
    for parameter in parameters:
        handler.add_parameter(
            parameter_kwargs={
                "smirks": parameter.smirks,
                "periodicity": list(parameter.periodicities),
                "phase": [phase * unit.degree for phase in parameter.phases],
                "k": [k * unit.kilocalorie_per_mole for k in parameter.k],
                "idivf": list(parameter.idivf),
            }
        )
        if parameterize:
            k_names = ", ".join(f"k{i + 1}" for i in range(len(parameter.k)))
            handler.parameters[parameter.smirks].add_cosmetic_attribute("parameterize", k_names)
    return force_field.to_string(discard_cosmetic_attributes=not parameterize)


def with_k(parameter: BespokeTorsion, k: list[float]) -> BespokeTorsion:
    return parameter.model_copy(update={"k": list(k)})


def charged(mapped_smiles: str) -> Molecule:
    molecule = Molecule.from_mapped_smiles(mapped_smiles)
    molecule.partial_charges = unit.Quantity(np.array(am1bcc_charges(mapped_smiles)), unit.elementary_charge)
    return molecule


def openmm_system(mapped_smiles: str, force_field: str) -> openmm.System:
    """The full OpenFF System (all forces in group 0), built directly with the toolkit."""
    molecule = charged(mapped_smiles)
    return ForceField(force_field, allow_cosmetic_attributes=True).create_openmm_system(
        molecule.to_topology(), charge_from_molecules=[molecule]
    )


def reference_context(system: openmm.System) -> openmm.Context:
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))


def single_points(mapped_smiles: str, force_field: str, geometries_bohr: np.ndarray) -> np.ndarray:
    """Unrestrained MM energies (kcal/mol) of (n, n_atoms, 3) geometries, no minimisation."""
    context = reference_context(openmm_system(mapped_smiles, force_field))
    energies = []
    for geometry in geometries_bohr:
        context.setPositions(geometry * BOHR_TO_ANGSTROM / 10.0)
        energy = context.getState(getEnergy=True).getPotentialEnergy()
        energies.append(energy.value_in_unit(openmm.unit.kilocalorie_per_mole))
    return np.array(energies)


def synthetic_scan(
    mapped_smiles: str, dihedral: tuple[int, int, int, int], force_field: str, grid_spacing: int = GRID_SPACING
) -> TorsionScanResult:
    """A torsion scan whose "QC" energies are restrained MM relaxations under `force_field`."""
    system = openmm_system(mapped_smiles, force_field)
    restraint = openmm.CustomTorsionForce("0.5*k_r*atan2(sin(theta - theta0), cos(theta - theta0))^2")
    restraint.addGlobalParameter("k_r", RESTRAINT_K * 4.184)
    restraint.addGlobalParameter("theta0", 0.0)
    restraint.addTorsion(*dihedral, [])
    restraint.setForceGroup(1)
    system.addForce(restraint)
    context = reference_context(system)

    molecule = Molecule.from_mapped_smiles(mapped_smiles)
    molecule.generate_conformers(n_conformers=1)
    rdmol = molecule.to_rdkit()
    grid = []
    for angle in range(-180 + grid_spacing, 181, grid_spacing):
        conformer = rdmol.GetConformer()
        rdMolTransforms.SetDihedralDeg(conformer, *dihedral, float(angle))
        context.setParameter("theta0", math.radians(angle))
        context.setPositions(conformer.GetPositions() / 10.0)
        openmm.LocalEnergyMinimizer.minimize(context, 1e-4, 0)
        state = context.getState(getEnergy=True, getPositions=True, groups={0})
        positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom)
        energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilocalorie_per_mole)
        grid.append(
            GridPoint(
                angle=float(angle),
                energy=energy / HARTREE_TO_KCAL,
                geometry=(positions / BOHR_TO_ANGSTROM).flatten().tolist(),
            )
        )
    task = TorsionScanTask(
        smiles=mapped_smiles,
        grid_spacing=grid_spacing,
        n_conformers=1,
        qc_spec=QCSpec(program="openmm", method="synthetic", basis=None),
        optimization=ConstrainedOptimizationSettings(),
    )
    return TorsionScanResult(
        task=task, mapped_smiles=mapped_smiles, dihedral=dihedral, grid=grid, n_optimizations=len(grid)
    )
