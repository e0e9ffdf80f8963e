"""The array evaluation of geomeTRIC's primitive internal coordinates against geomeTRIC's own
per-primitive methods, on real coordinate systems (DLC and TRIC) of real molecules."""

import numpy as np
import pytest
from geometric.internal import Angle, DelocalizedInternalCoordinates, LinearAngle
from geometric.molecule import Molecule as GeometricMolecule
from openff.toolkit import Molecule

from bespoke_dask.stages import geometric_vectorized

TOLERANCE = 1e-11
# N-methylbenzamide (out-of-plane angles at the ring and amide), acetonitrile (a linear angle).
SMILES = ["CNC(=O)c1ccccc1", "CC#N", "CCOC(=O)NC"]
COORDSYS = {"dlc": {"connect": True, "addcart": False}, "tric": {"connect": False, "addcart": False}}


def primitives(smiles: str, coordsys: str):
    """geomeTRIC's primitive coordinates of `smiles` (built as geomeTRIC builds them) and its
    conformer, flat, in bohr."""
    molecule = Molecule.from_smiles(smiles)
    molecule.generate_conformers(n_conformers=1)
    structure = GeometricMolecule()
    structure.elem = [atom.symbol for atom in molecule.atoms]
    structure.xyzs = [molecule.conformers[0].m_as("angstrom")]
    structure.build_topology()
    coordinates = DelocalizedInternalCoordinates(structure, build=True, **COORDSYS[coordsys])
    return coordinates.Prims, molecule.conformers[0].m_as("bohr").ravel()


def geomeTRICs_own(prims, xyz, other=None):
    """Values (or differences to `other`) and derivatives, one primitive at a time."""
    values = [p.value(xyz) if other is None else p.calcDiff(xyz, other) for p in prims.Internals]
    return np.array(values), np.array([p.derivative(xyz) for p in prims.Internals])


@pytest.mark.parametrize("coordsys", COORDSYS)
@pytest.mark.parametrize("smiles", SMILES)
def test_values_differences_and_derivatives_match_geometric(smiles, coordsys):
    prims, xyz = primitives(smiles, coordsys)
    random = np.random.default_rng(7)
    for _ in range(5):
        moved = xyz + random.normal(scale=0.3, size=xyz.shape)
        values, derivatives = geomeTRICs_own(prims, moved)
        differences, _ = geomeTRICs_own(prims, moved, xyz)
        np.testing.assert_allclose(geometric_vectorized.calculate(prims, moved), values, atol=TOLERANCE)
        np.testing.assert_allclose(geometric_vectorized.calc_diff(prims, moved, xyz), differences, atol=TOLERANCE)
        np.testing.assert_allclose(geometric_vectorized.derivatives(prims, moved), derivatives, atol=TOLERANCE)


def test_the_molecules_cover_every_kind_and_a_fallback():
    kinds = {type(p) for smiles in SMILES for p in primitives(smiles, "dlc")[0].Internals}
    assert set(geometric_vectorized.KINDS) <= kinds
    assert LinearAngle in kinds  # acetonitrile's C-C#N: geomeTRIC's own method


def test_a_periodic_difference_across_pi_is_the_short_way_round():
    prims, xyz = primitives("CCOC(=O)NC", "dlc")
    dihedrals = geometric_vectorized.layout(prims).rows[geometric_vectorized.Dihedral]
    # Mirror the molecule: every dihedral changes sign, many of them across +-pi.
    mirrored = (xyz.reshape(-1, 3) * [1, 1, -1]).ravel()
    differences, _ = geomeTRICs_own(prims, mirrored, xyz)
    ours = geometric_vectorized.calc_diff(prims, mirrored, xyz)
    np.testing.assert_allclose(ours, differences, atol=TOLERANCE)
    assert np.all(np.abs(ours[dihedrals]) <= np.pi + TOLERANCE)


def test_a_straight_angle_takes_geometrics_own_normal():
    """At 180 degrees an angle's normal is geomeTRIC's choice: its own method answers."""
    prims, xyz = primitives("CNC(=O)c1ccccc1", "dlc")
    row, angle = next((r, p) for r, p in enumerate(prims.Internals) if type(p) is Angle)
    straight = xyz.reshape(-1, 3).copy()
    straight[angle.c] = 2 * straight[angle.b] - straight[angle.a]  # c opposite a through b
    _, derivatives = geomeTRICs_own(prims, straight.ravel())
    ours = geometric_vectorized.derivatives(prims, straight.ravel())
    assert geometric_vectorized.calculate(prims, straight.ravel())[row] == pytest.approx(np.pi)
    np.testing.assert_allclose(ours[row], derivatives[row], atol=TOLERANCE)


def test_the_layout_follows_a_changed_list_of_primitives():
    prims, xyz = primitives("CCOC(=O)NC", "dlc")
    before = geometric_vectorized.calculate(prims, xyz)
    dropped = prims.Internals.pop(0)
    np.testing.assert_allclose(geometric_vectorized.calculate(prims, xyz), before[1:], atol=TOLERANCE)
    prims.Internals.append(dropped)
    assert geometric_vectorized.calculate(prims, xyz)[-1] == pytest.approx(before[0])
