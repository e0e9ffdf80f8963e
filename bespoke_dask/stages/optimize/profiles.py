"""MM torsion profiles of QC scans, and how far they are from the QC ones.

The protocol (`PROFILE_PROTOCOL`, research/forcebalance.md §6 "td_relax"): only the driven
dihedral is held at its grid angle by a stiff harmonic restraint, everything else is minimised
with OpenMM, and the MM energy is reported without the restraint. Each grid point is minimised
from its QC geometry and, as torsiondrive does, from its grid neighbours' minima turned rigidly
to its angle; the lowest minimum counts, and the neighbour starts are repeated while any point
improves. This is what an MM torsion drive, and so MD, sees. QC starts alone are not enough:
a fit can then put a deep MM minimum where no QC start reaches it (acetanilide: 12 kcal/mol
below the reported profile, tests/stages/optimize/test_real_scan.py). Everything is
deterministic: the starts are the QC geometries and what they lead to, never earlier fits.

How far a profile is from QC is metrics.py's concern.

Units: schema geometries are flat bohr and schema energies hartree; everything this module
returns is in kcal/mol, geometries in bohr as (n_points, n_atoms, 3) arrays.
"""

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import networkx
import numpy as np
import openmm
import qcelemental
from openff.toolkit import ForceField, Molecule
from openff.units import unit

from bespoke_dask.schema import (
    BespokeTorsion,
    LeastSquaresSettings,
    TorsionProfileSettings,
    TorsionScanResult,
)
from bespoke_dask.stages.charges import charged_molecule
from bespoke_dask.stages.molecule import load_force_field as read_force_field

HARTREE_TO_KCAL = qcelemental.constants.hartree2kcalmol
BOHR_TO_NM = qcelemental.constants.bohr2angstroms / 10.0
KJ_PER_KCAL = 4.184
DEFAULT_RESTRAINT_K = LeastSquaresSettings.model_fields["restraint_k"].default  # kcal/mol/rad^2
DEFAULT_ENERGY_CUTOFF = TorsionProfileSettings.model_fields["energy_cutoff"].default  # kcal/mol
MINIMIZER_TOLERANCE = 0.01  # kJ/mol/nm, RMS force at which OpenMM's minimiser stops
MAX_GRID_DEVIATION = 10.0  # degrees; a QC geometry further from its grid angle is an error
MAX_SWEEPS = 10  # neighbour-start sweeps per relaxed scan; each only revisits points next to an improved one
SWEEP_TOLERANCE = 1e-3  # kcal/mol; a neighbour start must lower a point's restrained minimum by more
SCREEN_TOLERANCE = 1.0  # kJ/mol/nm; neighbour starts are first minimised this loosely...
SCREEN_SLACK = 5e-4  # kcal/mol; ...and polished when that close to an improvement (loose minima: 99% < 2e-4 high)

_BASE_GROUP, _SPLIT_GROUP, _RESTRAINT_GROUP = 0, 1, 2

Torsion = tuple[int, int, int, int]


def load_force_field(force_field: "str | ForceField") -> ForceField:
    """A `ForceField` from OFFXML text or an installed file name (cosmetic attributes allowed)."""
    if isinstance(force_field, ForceField):
        return force_field
    return read_force_field(force_field, allow_cosmetic_attributes=True)


def dihedrals(geometries: np.ndarray, torsions: Sequence[Torsion]) -> np.ndarray:
    """Dihedral angles (radians, IUPAC sign as OpenMM) of (n, n_atoms, 3) geometries -> (n, n_torsions)."""
    atoms = np.asarray(torsions, dtype=int).reshape(-1, 4)
    p0, p1, p2, p3 = (geometries[:, atoms[:, i]] for i in range(4))
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=-1) * np.einsum("...i,...i", b1, n2)
    x = np.einsum("...i,...i", n1, n2)
    return np.arctan2(y, x)


def qc_energies(scan: TorsionScanResult) -> np.ndarray:
    """The QC energies of a scan's grid points in kcal/mol (absolute)."""
    return np.array([point.energy for point in scan.grid]) * HARTREE_TO_KCAL


def qc_geometries(scan: TorsionScanResult) -> np.ndarray:
    """The QC geometries of a scan's grid points, (n_points, n_atoms, 3) in bohr."""
    return np.array([point.geometry for point in scan.grid]).reshape(len(scan.grid), -1, 3)


@dataclass(frozen=True)
class SplitTerm:
    """One k of a bespoke parameter, i.e. one column of the linear torsion model."""

    parameter: int  # index into the split parameters
    periodicity: int
    phase: float  # radians
    idivf: float
    torsions: tuple[Torsion, ...]


@dataclass(frozen=True)
class _Minimum:
    geometry: np.ndarray  # (n_atoms, 3), bohr
    energy: float  # kcal/mol, without the restraint
    base_energy: float  # kcal/mol, without the restraint and the split terms
    objective: float  # kcal/mol, with the restraint: what the minimiser lowered


@dataclass(frozen=True)
class RelaxedScan:
    """Torsion-restrained MM relaxations of every grid point of one scan."""

    geometries: np.ndarray  # (n_points, n_atoms, 3), bohr
    energies: np.ndarray  # kcal/mol, full MM energy without the restraint
    base_energies: np.ndarray  # kcal/mol, without the restraint and the split torsion terms


class ScanModel:
    """One OpenMM Context for one scan: the force field's System, the driven-dihedral restraint,
    and optionally the terms of some bespoke parameters moved into a force of their own.

    Split terms make MM energies linear in their k's: E = base(x) + features(x) @ k.
    """

    def __init__(
        self,
        force_field: "str | ForceField",
        scan: TorsionScanResult,
        restraint_k: float = DEFAULT_RESTRAINT_K,
        split: Sequence[BespokeTorsion] = (),
    ):
        force_field = load_force_field(force_field)
        molecule = charged_molecule(scan.mapped_smiles)
        self.scan = scan
        self._moving = _moving_atoms(molecule, scan.dihedral)
        self.terms = _split_terms(force_field, molecule, split)
        base = _without_parameters(force_field, [parameter.smirks for parameter in split])
        system = base.create_openmm_system(molecule.to_topology(), charge_from_molecules=[molecule])
        for force in system.getForces():
            force.setForceGroup(_BASE_GROUP)
        self._split_force = _split_force(self.terms)
        system.addForce(self._split_force)
        system.addForce(_restraint_force(scan.dihedral, restraint_k))
        platform = openmm.Platform.getPlatformByName("Reference")
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
        self.set_k([k for parameter in split for k in parameter.k])

    def set_k(self, k: Sequence[float]) -> None:
        """Set the split k's (kcal/mol, in `terms` order)."""
        if len(k) != len(self.terms):
            raise ValueError(f"expected {len(self.terms)} k's, got {len(k)}")
        index = 0
        for term, value in zip(self.terms, k):
            for torsion in term.torsions:
                k_kj = value / term.idivf * KJ_PER_KCAL
                self._split_force.setTorsionParameters(index, *torsion, term.periodicity, term.phase, k_kj)
                index += 1
        if index:
            self._split_force.updateParametersInContext(self.context)

    def relax(self) -> RelaxedScan:
        """Restrained minima of every grid point: the lowest of a start from its QC geometry and
        starts from its grid neighbours' minima rotated to its angle (see the module docstring)."""
        angles = [point.angle for point in self.scan.grid]
        minima = [self._minimise(angle, start) for angle, start in zip(angles, qc_geometries(self.scan))]
        neighbours = _grid_neighbours(angles)
        changed = list(range(len(angles)))
        for _ in range(MAX_SWEEPS):
            improved = set()
            for source in changed:
                for target in neighbours[source]:
                    trial = self._neighbour_start(minima[source].geometry, angles[target], minima[target].objective)
                    if trial is not None and trial.objective < minima[target].objective - SWEEP_TOLERANCE:
                        minima[target] = trial
                        improved.add(target)
            changed = sorted(improved)
            if not changed:
                break
        return RelaxedScan(
            np.array([m.geometry for m in minima]),
            np.array([m.energy for m in minima]),
            np.array([m.base_energy for m in minima]),
        )

    def _neighbour_start(self, geometry: np.ndarray, angle: float, current: float) -> "_Minimum | None":
        """The minimum from a neighbour's `geometry` turned to `angle`, if it may beat `current`
        (kcal/mol): screened with a loose minimiser tolerance, polished only if it may."""
        screened = self._minimise(angle, self._rotated(geometry, angle), SCREEN_TOLERANCE)
        if screened.objective >= current - SWEEP_TOLERANCE + SCREEN_SLACK:
            return None
        return self._minimise(angle, screened.geometry)

    def _minimise(self, angle: float, start: np.ndarray, tolerance: float = MINIMIZER_TOLERANCE) -> "_Minimum":
        self.context.setParameter("bespoke_dask_theta0", math.radians(angle))
        self.context.setPositions(start * BOHR_TO_NM)
        openmm.LocalEnergyMinimizer.minimize(self.context, tolerance, 0)
        state = self.context.getState(getPositions=True)
        positions = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        base = self._energy({_BASE_GROUP})
        energy = base + self._energy({_SPLIT_GROUP})
        return _Minimum(positions / BOHR_TO_NM, energy, base, energy + self._energy({_RESTRAINT_GROUP}))

    def _rotated(self, geometry: np.ndarray, angle: float) -> np.ndarray:
        """`geometry` with the atoms on the third atom's side of the driven bond turned rigidly
        about that bond so that the driven dihedral is at `angle` (degrees)."""
        _, b, c, _ = self.scan.dihedral
        current = dihedrals(geometry[None], [self.scan.dihedral])[0, 0]
        return _rotate(geometry, b, c, self._moving, math.radians(angle) - current)

    def features(self, geometries: np.ndarray) -> np.ndarray:
        """dE/dk of the split terms at (n, n_atoms, 3) geometries (bohr): (n, n_terms), dimensionless."""
        columns = [_term_feature(term, geometries) for term in self.terms]
        return np.array(columns).T.reshape(len(geometries), len(self.terms))

    def _energy(self, groups: set[int]) -> float:
        state = self.context.getState(getEnergy=True, groups=groups)
        return state.getPotentialEnergy().value_in_unit(openmm.unit.kilocalorie_per_mole)


def _term_feature(term: SplitTerm, geometries: np.ndarray) -> np.ndarray:
    """sum over the term's torsions of (1 + cos(n phi - phase)) / idivf, per geometry."""
    if not term.torsions:
        return np.zeros(len(geometries))
    phi = dihedrals(geometries, term.torsions)
    return ((1.0 + np.cos(term.periodicity * phi - term.phase)) / term.idivf).sum(axis=1)


def _grid_neighbours(angles: Sequence[float]) -> list[list[int]]:
    """For each grid point, the points one grid step away (periodic over 360 degrees)."""
    if len(angles) < 2:
        return [[] for _ in angles]
    wrapped = np.asarray(angles, dtype=float) % 360.0
    gaps = np.abs((wrapped[:, None] - wrapped[None, :] + 180.0) % 360.0 - 180.0)
    step = gaps[gaps > 1e-6].min()
    return [[j for j in range(len(angles)) if j != i and gaps[i, j] <= step + 1e-6] for i in range(len(angles))]


def _moving_atoms(molecule: Molecule, dihedral: Torsion) -> np.ndarray:
    """The atoms on the third atom's side of the driven bond (empty if the bond is in a ring)."""
    graph = molecule.to_networkx()
    _, b, c, _ = dihedral
    graph.remove_edge(b, c)
    side = networkx.node_connected_component(graph, c)
    return np.array([] if b in side else sorted(side), dtype=int)


def _rotate(geometry: np.ndarray, b: int, c: int, atoms: np.ndarray, theta: float) -> np.ndarray:
    """`geometry` with `atoms` turned by `theta` (radians) about the axis from atom b to atom c."""
    if not len(atoms):
        return geometry
    axis = geometry[c] - geometry[b]
    axis /= np.linalg.norm(axis)
    cos, sin = math.cos(theta), math.sin(theta)
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    rotation = cos * np.eye(3) + sin * cross + (1.0 - cos) * np.outer(axis, axis)
    rotated = geometry.copy()
    rotated[atoms] = (geometry[atoms] - geometry[c]) @ rotation.T + geometry[c]
    return rotated


def check_grid_angles(scan: TorsionScanResult) -> None:
    """Raise if a QC geometry's driven dihedral is not at its grid angle (a sign or index mix-up)."""
    measured = np.degrees(dihedrals(qc_geometries(scan), [scan.dihedral])[:, 0])
    for point, angle in zip(scan.grid, measured):
        if abs((angle - point.angle + 180.0) % 360.0 - 180.0) > MAX_GRID_DEVIATION:
            raise ValueError(
                f"the QC geometry of grid point {point.angle} has dihedral {scan.dihedral} at {angle:.1f} degrees"
            )


def _split_terms(force_field: ForceField, molecule: Molecule, split: Sequence[BespokeTorsion]) -> list[SplitTerm]:
    """The columns of the linear model: each k of each split parameter and the torsions it types."""
    if not split:
        return []
    labels = force_field.label_molecules(molecule.to_topology())[0]["ProperTorsions"]
    handler = force_field.get_parameter_handler("ProperTorsions")
    terms = []
    for index, parameter in enumerate(split):
        if parameter.smirks not in handler.parameters:
            raise ValueError(f"the force field has no proper torsion {parameter.smirks}")
        if list(handler.parameters[parameter.smirks].periodicity) != list(parameter.periodicities):
            raise ValueError(f"the force field's {parameter.smirks} has other periodicities than the parameter")
        torsions = tuple(sorted(atoms for atoms, typed in labels.items() if typed.smirks == parameter.smirks))
        for periodicity, phase, idivf in zip(parameter.periodicities, parameter.phases, parameter.idivf):
            terms.append(SplitTerm(index, periodicity, math.radians(phase), idivf, torsions))
    return terms


def _without_parameters(force_field: ForceField, smirks: Sequence[str]) -> ForceField:
    """A copy of `force_field` in which the proper torsions `smirks` keep their atoms but have k = 0."""
    if not smirks:
        return force_field
    force_field = copy.deepcopy(force_field)
    handler = force_field.get_parameter_handler("ProperTorsions")
    for pattern in smirks:
        parameter = handler.parameters[pattern]
        parameter.k = [0.0 * unit.kilocalorie_per_mole for _ in parameter.k]
    return force_field


def _split_force(terms: Sequence[SplitTerm]) -> openmm.PeriodicTorsionForce:
    force = openmm.PeriodicTorsionForce()
    force.setForceGroup(_SPLIT_GROUP)
    for term in terms:
        for torsion in term.torsions:
            force.addTorsion(*torsion, term.periodicity, term.phase, 0.0)
    return force


def _restraint_force(dihedral: Torsion, restraint_k: float) -> openmm.CustomTorsionForce:
    """0.5 k (theta - theta0)^2 on the driven dihedral; theta0 is a Context parameter (radians)."""
    force = openmm.CustomTorsionForce(
        "0.5*bespoke_dask_restraint_k*d^2; d = min(a, 2*pi - a); a = abs(theta - bespoke_dask_theta0);"
        f" pi = {math.pi}"
    )
    force.addGlobalParameter("bespoke_dask_restraint_k", restraint_k * KJ_PER_KCAL)
    force.addGlobalParameter("bespoke_dask_theta0", 0.0)
    force.addTorsion(*dihedral, [])
    force.setForceGroup(_RESTRAINT_GROUP)
    return force


def relaxed_profile(
    force_field: "str | ForceField", scan: TorsionScanResult, restraint_k: float = DEFAULT_RESTRAINT_K
) -> RelaxedScan:
    """Torsion-restrained relaxed MM profile of `scan` under `force_field` (OFFXML text or file name)."""
    check_grid_angles(scan)
    return ScanModel(force_field, scan, restraint_k).relax()
