"""Fragmentation with the real openff-fragmenter (one WBO run, on a small molecule)."""

import json

import pytest
from openff.toolkit import Molecule

from bespoke_dask.schema import (
    BespokeWorkflow,
    NoFragmentation,
    PfizerFragmentation,
    WBOFragmentation,
)
from bespoke_dask.stages.fragment import fragment, parent_molecule, target_bonds, unique_target_bonds
from bespoke_dask.stages.molecule import mapped_smiles_from_input

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"


def _workflow(smiles: str, fragmentation=PfizerFragmentation(), **settings) -> BespokeWorkflow:
    return BespokeWorkflow(smiles=mapped_smiles_from_input(smiles), fragmentation=fragmentation, **settings)


def _environment(molecule: Molecule, atom: int) -> tuple[str, list[str]]:
    """An atom's element and its neighbours' elements: what a fragment must keep of a central atom."""
    neighbours = sorted(neighbour.symbol for neighbour in molecule.atoms[atom].bonded_atoms)
    return molecule.atoms[atom].symbol, neighbours


def _check_fragments(workflow: BespokeWorkflow, result) -> None:
    """Each fragment's central bond is the parent bond it stands for, atom for atom."""
    parent = parent_molecule(workflow.smiles)
    assert result.parent_smiles == workflow.smiles
    for item in result.fragments:
        molecule = parent_molecule(item.smiles)
        assert molecule.get_bond_between(*item.bond_indices)
        for fragment_atom, parent_atom in zip(item.bond_indices, item.parent_bond):
            assert _environment(molecule, fragment_atom) == _environment(parent, parent_atom)


def test_pfizer_paracetamol_gives_acetanilide_for_both_bonds():
    workflow = _workflow(PARACETAMOL)
    result = fragment(workflow)
    _check_fragments(workflow, result)
    parent = parent_molecule(workflow.smiles)
    bonds = {tuple(sorted(parent.atoms[i].symbol for i in item.parent_bond)) for item in result.fragments}
    assert bonds == {("C", "N")} and len(result.fragments) == 2
    acetanilide = Molecule.from_smiles("CC(=O)Nc1ccccc1")
    assert all(parent_molecule(item.smiles).is_isomorphic_with(acetanilide) for item in result.fragments)
    assert result.provenance["openff-fragmenter"]
    assert json.loads(result.provenance["fragmenter-options"])["scheme"] == "Pfizer"


def test_no_fragmentation_scans_the_whole_parent():
    workflow = _workflow(PARACETAMOL, NoFragmentation())
    result = fragment(workflow)
    assert [item.parent_bond for item in result.fragments] == [(1, 3), (3, 4)]
    assert all(item.smiles == workflow.smiles for item in result.fragments)
    assert all(item.bond_indices == item.parent_bond for item in result.fragments)


@pytest.mark.parametrize("smiles", ["CCO", "c1ccccc1", "CC(=O)[O-]"])
def test_nothing_to_fit(smiles):
    # the default SMARTS needs a heavy atom beyond each end of the bond: CCO has none
    assert fragment(_workflow(smiles)).fragments == []
    assert fragment(_workflow(smiles, NoFragmentation())).fragments == []


def test_symmetric_bonds_are_scanned_once():
    workflow = _workflow("CC(=O)Nc1ccc(cc1)NC(C)=O")  # two equivalent acetamido groups
    parent = parent_molecule(workflow.smiles)
    assert len(target_bonds(parent, workflow.target_torsion_smirks)) == 4
    assert len(unique_target_bonds(parent, workflow.target_torsion_smirks)) == 2
    result = fragment(workflow)
    _check_fragments(workflow, result)
    assert len(result.fragments) == 2


def test_custom_target_smarts():
    workflow = _workflow(PARACETAMOL, target_torsion_smirks=["[#6X3:1](=[#8])-[#7:2]"])
    result = fragment(workflow)
    assert [item.parent_bond for item in result.fragments] == [(1, 3)]
    with pytest.raises(ValueError, match="exactly two atoms"):
        fragment(_workflow(PARACETAMOL, target_torsion_smirks=["[#6:1](=[#8:3])-[#7:2]"]))


def test_wbo_fragmenter_maps_back_to_our_atom_order():
    # N-methylacetamide: small enough for AM1 in a few seconds; openff-fragmenter re-orders its atoms
    workflow = _workflow("CNC(C)=O", WBOFragmentation(threshold=0.05))
    result = fragment(workflow)
    _check_fragments(workflow, result)
    (item,) = result.fragments
    assert item.parent_bond == (1, 2)
    assert parent_molecule(item.smiles).is_isomorphic_with(parent_molecule(workflow.smiles))
    options = json.loads(result.provenance["fragmenter-options"])
    assert options["scheme"] == "WBO" and options["threshold"] == 0.05
