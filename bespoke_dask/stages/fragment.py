"""Fragmentation: one fragment per symmetry-unique target bond of the parent.

openff-fragmenter re-orders the parent canonically and labels fragment atoms with the
(1-based) map index of the parent atom they came from; capping atoms carry no map index.
Here everything is translated back to the workflow's own atom order: `Fragment.parent_bond`
indexes the workflow's mapped SMILES, `Fragment.bond_indices` the fragment's mapped SMILES, and
`bond_indices[i]` is the same atom as `parent_bond[i]`; `Fragment.atom_map` maps every fragment
atom taken from the parent to its parent index.
"""

import json
import warnings

from openff.toolkit import Molecule
from rdkit import Chem

from bespoke_dask.schema import (
    BespokeWorkflow,
    Fragment,
    FragmentationResult,
    NoFragmentation,
    PfizerFragmentation,
    WBOFragmentation,
)

Bond = tuple[int, int]


def fragment(workflow: BespokeWorkflow) -> FragmentationResult:
    """Fragment the workflow's molecule around each symmetry-unique target bond."""
    parent = parent_molecule(workflow.smiles)
    bonds = unique_target_bonds(parent, workflow.target_torsion_smirks)
    provenance = _provenance(workflow)
    if not bonds or isinstance(workflow.fragmentation, NoFragmentation):
        fragments = [whole_parent(workflow.smiles, parent, bond) for bond in bonds]
    else:
        fragments, provenance["fragmenter-options"] = _fragmenter_fragments(parent, bonds, workflow)
    return FragmentationResult(parent_smiles=workflow.smiles, fragments=fragments, provenance=provenance)


def whole_parent(parent_smiles: str, parent: Molecule, bond: Bond) -> Fragment:
    """The parent itself as the fragment of one of its bonds."""
    identity = {atom: atom for atom in range(parent.n_atoms)}
    return Fragment(smiles=parent_smiles, bond_indices=bond, parent_bond=bond, atom_map=identity)


def parent_molecule(mapped_smiles: str) -> Molecule:
    """The molecule of a mapped SMILES, in its map order, without an `atom_map` property."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True)


def target_bonds(molecule: Molecule, smarts: list[str]) -> list[Bond]:
    """Bonds (sorted atom pairs, sorted) between the atoms tagged 1 and 2 of any SMARTS."""
    bonds = set()
    for pattern in smarts:
        for match in molecule.chemical_environment_matches(pattern):
            if len(match) != 2:
                raise ValueError(f"target torsion SMARTS {pattern!r} must tag exactly two atoms")
            bonds.add(tuple(sorted(match)))
    return sorted(bonds)


def unique_target_bonds(molecule: Molecule, smarts: list[str]) -> list[Bond]:
    """The target bonds with graph-symmetry duplicates dropped (the lowest indices kept)."""
    ranks = symmetry_classes(molecule)
    unique: dict[Bond, Bond] = {}
    for bond in target_bonds(molecule, smarts):
        unique.setdefault(tuple(sorted(ranks[i] for i in bond)), bond)
    return list(unique.values())


def symmetry_classes(molecule: Molecule) -> list[int]:
    """Per atom, its graph-symmetry class (RDKit canonical rank without tie breaking)."""
    return list(Chem.CanonicalRankAtoms(molecule.to_rdkit(), breakTies=False))


def _fragmenter_fragments(
    parent: Molecule, bonds: list[Bond], workflow: BespokeWorkflow
) -> tuple[list[Fragment], str]:
    """openff-fragmenter's fragment for each of `bonds` (parent indices), and its options as JSON."""
    result = _fragmenter(workflow).fragment(parent, target_bond_smarts=workflow.target_torsion_smirks)
    options = dict(result.provenance["options"])
    options.pop("functional_groups", None)
    # fragmenter parent atom i has map index i + 1; `ours[i]` is the same atom in `parent`
    ours = _atom_map(parent_molecule(result.parent_smiles), parent)
    theirs = {atom: index for index, atom in ours.items()}
    by_bond = {frozenset(bond): fragment for bond, fragment in result.fragments_by_bond.items()}
    fragments = []
    for bond in bonds:
        key = frozenset(theirs[atom] + 1 for atom in bond)
        if key not in by_bond:
            raise RuntimeError(f"openff-fragmenter returned no fragment for bond {bond}")
        fragments.append(_fragment(by_bond[key].smiles, bond, ours))
    return fragments, json.dumps(options, sort_keys=True)


def _fragmenter(workflow: BespokeWorkflow):
    """The openff-fragmenter engine for the workflow's settings."""
    from openff.fragmenter.fragment import PfizerFragmenter, WBOFragmenter

    settings = workflow.fragmentation
    if isinstance(settings, WBOFragmentation):
        return WBOFragmenter(
            threshold=settings.threshold,
            keep_non_rotor_ring_substituents=settings.keep_non_rotor_ring_substituents,
        )
    if isinstance(settings, PfizerFragmentation):
        return PfizerFragmenter()
    raise ValueError(f"unknown fragmentation {settings.type!r}")


def _atom_map(molecule: Molecule, parent: Molecule) -> dict[int, int]:
    """For each atom of `molecule`, the same atom in `parent` (an isomorphism)."""
    same, atom_map = Molecule.are_isomorphic(molecule, parent, return_atom_map=True)
    if not same:
        raise RuntimeError("openff-fragmenter changed the parent molecule")
    return atom_map


def _fragment(fragmenter_smiles: str, parent_bond: Bond, ours: dict[int, int]) -> Fragment:
    """A `Fragment` from openff-fragmenter's SMILES (atoms labelled by parent map index)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        molecule = Molecule.from_smiles(fragmenter_smiles, allow_undefined_stereo=True)
    to_parent = {atom: ours[index - 1] for atom, index in molecule.properties.pop("atom_map").items()}
    to_fragment = {parent_atom: atom for atom, parent_atom in to_parent.items()}
    bond = tuple(to_fragment[atom] for atom in parent_bond)
    return Fragment(
        smiles=molecule.to_smiles(mapped=True), bond_indices=bond, parent_bond=parent_bond, atom_map=to_parent
    )


def _provenance(workflow: BespokeWorkflow) -> dict[str, str]:
    """Tool versions and the fragmentation settings."""
    import openff.fragmenter
    import openff.toolkit
    import rdkit

    return {
        "fragmentation": workflow.fragmentation.model_dump_json(),
        "openff-fragmenter": openff.fragmenter.__version__,
        "openff-toolkit": openff.toolkit.__version__,
        "rdkit": rdkit.__version__,
    }
