"""One bespoke SMIRKS per torsion type, on real molecules and their real fragments (Pfizer)."""

import pytest
from openff.toolkit import ForceField

from bespoke_dask.schema import BespokeWorkflow, NoFragmentation, PfizerFragmentation
from bespoke_dask.stages.fragment import fragment, parent_molecule
from bespoke_dask.stages.molecule import mapped_smiles_from_input
from bespoke_dask.stages.smirks import matches, oriented, torsion_types, torsions_about
from bespoke_dask.stages.targets import bespoke_targets

SAGE = "openff_unconstrained-2.2.0.offxml"


def _workflow(smiles: str, fragmentation=PfizerFragmentation()) -> BespokeWorkflow:
    return BespokeWorkflow(smiles=mapped_smiles_from_input(smiles), fragmentation=fragmentation)


def _types_of(smiles: str, fragmentation=PfizerFragmentation()):
    """[(fragment, its molecule, the parent, torsion types)] of every fragment of `smiles`."""
    workflow = _workflow(smiles, fragmentation)
    parent = parent_molecule(workflow.smiles)
    found = []
    for item in fragment(workflow).fragments:
        molecule = parent_molecule(item.smiles)
        types = torsion_types(parent, [item.parent_bond], molecule, item.bond_indices, item.atom_map)
        found.append((item, molecule, parent, types))
    return found


def _assert_exact(item, molecule, parent, types):
    """Each type's SMIRKS matches exactly its torsions in parent and fragment; together they cover the bond."""
    for torsion_type in types:
        assert matches(parent, torsion_type.smirks) == set(torsion_type.parent_torsions)
        assert matches(molecule, torsion_type.smirks) == set(torsion_type.fragment_torsions)
        mapped = {oriented(item.atom_map[a] for a in t) for t in torsion_type.fragment_torsions}
        assert mapped == set(torsion_type.parent_torsions)  # the same torsions, seen from both molecules
        assert "/" not in torsion_type.smirks and "\\" not in torsion_type.smirks
    assert set().union(*(t.parent_torsions for t in types)) == torsions_about(parent, item.parent_bond)
    assert set().union(*(t.fragment_torsions for t in types)) == torsions_about(molecule, item.bond_indices)


@pytest.mark.parametrize(
    "smiles, bond_types",
    [
        ("CC(=O)Nc1ccccc1", {"amide C-N": 4, "N-aryl": 2}),  # cis/trans O=C-N-H and friends
        ("CS(=O)(=O)Nc1ccccc1", {"S-N": 4, "N-aryl": 2}),  # the two S=O are one type
        ("c1ccc(-c2ccccc2)cc1", {"biaryl": 1}),  # symmetric: all four torsions are one type
        ("CCc1ccccc1", {"benzylic CH2-c": 2}),  # C-CH2-c:c and H-CH2-c:c, each ring side alike
    ],
)
def test_one_smirks_per_torsion_type(smiles, bond_types):
    found = _types_of(smiles)
    assert sorted(len(types) for *_, types in found) == sorted(bond_types.values())
    for entry in found:
        _assert_exact(*entry)


def test_a_capped_fragment_shares_only_what_the_parent_has():
    """Butanamide's C(=O)-N fragment caps the ethyl's end: the SMIRKS leaves out the H count that differs."""
    found = _types_of("CCCC(=O)NC")
    capped = [(item, m, p, types) for item, m, p, types in found if m.n_atoms < p.n_atoms]
    assert capped, "Pfizer keeps the whole molecule: no capped fragment to test"
    for entry in capped:
        _assert_exact(*entry)


def test_later_types_do_not_shadow_earlier_ones():
    """With every bespoke parameter appended, each torsion about each target bond carries its own type."""
    workflow = _workflow("CC(=O)Nc1ccc(cc1)S(=O)(=O)NC")
    targets = bespoke_targets(workflow, fragment(workflow))
    parameters = list({p.smirks: p for t in targets for p in t.parameters}.values())
    from bespoke_dask.stages.force_field import build_force_field, proper_labels

    force_field = ForceField(build_force_field(SAGE, parameters))
    labels = proper_labels(force_field, parent_molecule(workflow.smiles))
    for parameter in parameters:
        assert {t for t, smirks in labels.items() if smirks == parameter.smirks} == set(parameter.parent_torsions)


def test_symmetric_bonds_share_their_types():
    workflow = _workflow("CC(=O)Nc1ccc(cc1)NC(C)=O")
    targets = bespoke_targets(workflow, fragment(workflow))
    assert len(targets) == 2
    for target in targets:
        assert all(len(parameter.parent_bonds) == 2 for parameter in target.parameters)


def test_types_without_fragmentation_cover_the_whole_molecule():
    for entry in _types_of("CCOc1ccccc1", NoFragmentation()):
        _assert_exact(*entry)
