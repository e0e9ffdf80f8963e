"""Bespoke targets: the parameters to fit for each fragment and the canonical scan that fits them.

Each target bond of the parent gets one bespoke parameter per torsion type (smirks.py), started
from the base force field's parameter on those torsions with all of its terms, plus k = 0 for
the workflow's other periodicities. Before any QC runs, the bespoke force field is checked on the
parent and on every fragment (`check_labels`): each torsion about a target bond carries its own
bespoke parameter. Units: k in kcal/mol, phases in degrees.
"""

from collections import Counter

from openff.toolkit import ForceField, Molecule
from rdkit import Chem

from bespoke_dask.schema import (
    BespokeTorsion,
    BespokeWorkflow,
    FragmentationResult,
    TorsionScanTask,
    TorsionTarget,
)
from bespoke_dask.stages.force_field import build_force_field, proper_labels, torsion_terms
from bespoke_dask.stages.fragment import Bond, parent_molecule, symmetry_classes, target_bonds, whole_parent
from bespoke_dask.stages.molecule import load_force_field
from bespoke_dask.stages.smirks import BespokeSmirksError, oriented, torsion_types, torsions_about


def bespoke_targets(workflow: BespokeWorkflow, fragmentation: FragmentationResult) -> list[TorsionTarget]:
    """One target per fragment: its bespoke parameters and its canonical scan.

    A torsion type met again (same SMIRKS from another fragment) is one parameter, fitted to
    both scans; identical targets appear once.
    """
    parent = parent_molecule(fragmentation.parent_smiles)
    base = load_force_field(workflow.initial_force_field)
    labels = base.label_molecules(parent.to_topology())[0]["ProperTorsions"]
    base_labels = {oriented(atoms): parameter for atoms, parameter in labels.items()}
    equivalent = _equivalent_bonds(parent, target_bonds(parent, workflow.target_torsion_smirks))
    parameters: dict[str, BespokeTorsion] = {}
    planned: list[tuple[list[str], TorsionScanTask]] = []
    fragments = []
    for fragment in fragmentation.fragments:
        molecule = parent_molecule(fragment.smiles)
        bonds = equivalent[tuple(sorted(fragment.parent_bond))]
        try:
            types = torsion_types(parent, bonds, molecule, fragment.bond_indices, fragment.atom_map)
        except BespokeSmirksError:
            # The fragment cannot tell the bond's torsions from others' (a cut chain made it
            # symmetric with another bond, e.g. CCCOCC's O-C cut to CCOCC): scan it in the parent.
            fragment, molecule = whole_parent(fragmentation.parent_smiles, parent, fragment.parent_bond), parent
            types = torsion_types(parent, bonds, molecule, fragment.bond_indices, fragment.atom_map)
        fragments.append(fragment)
        for torsion_type in types:
            known = parameters.get(torsion_type.smirks)
            parameters[torsion_type.smirks] = _parameter(torsion_type, bonds, known, base_labels, workflow.periodicities)
        planned.append(([t.smirks for t in types], scan_task(workflow, molecule, fragment.bond_indices)))
    targets: list[TorsionTarget] = []
    for smirks, scan in planned:
        target = TorsionTarget(parameters=[parameters[s] for s in smirks], scan=scan)
        if target not in targets:
            targets.append(target)
    force_field = load_force_field(build_force_field(workflow.initial_force_field, list(parameters.values())))
    check_labels(force_field, parent, list(parameters.values()))
    for fragment in fragments:
        check_fragment_labels(force_field, parent_molecule(fragment.smiles), fragment.bond_indices, parameters)
    return targets


def _equivalent_bonds(parent: Molecule, bonds: list[Bond]) -> dict[Bond, list[Bond]]:
    """For each target bond, every target bond symmetric to it (itself included)."""
    ranks = symmetry_classes(parent)
    classes: dict[tuple, list[Bond]] = {}
    for bond in bonds:
        classes.setdefault(tuple(sorted(ranks[i] for i in bond)), []).append(bond)
    return {bond: classes[tuple(sorted(ranks[i] for i in bond))] for bond in bonds}


def _parameter(torsion_type, bonds, known: BespokeTorsion | None, base_labels, periodicities) -> BespokeTorsion:
    """The bespoke parameter of a torsion type; a type met before gains the new torsions and bonds."""
    if known is not None:
        return known.model_copy(
            update={
                "parent_bonds": sorted(set(known.parent_bonds) | set(bonds)),
                "parent_torsions": sorted(set(known.parent_torsions) | set(torsion_type.parent_torsions)),
            }
        )
    base = _base_parameter(base_labels, torsion_type.parent_torsions)
    return BespokeTorsion(
        smirks=torsion_type.smirks,
        parent_bonds=sorted(bonds),
        parent_torsions=list(torsion_type.parent_torsions),
        base_id=None if base is None else base.id,
        **initial_terms(base, periodicities),
    )


def _base_parameter(base_labels: dict, torsions):
    """The base parameter on most of `torsions` (then the one with the most terms); None if none."""
    tally = Counter(base_labels[t].smirks for t in torsions if t in base_labels)
    if not tally:
        return None
    by_smirks = {base_labels[t].smirks: base_labels[t] for t in torsions if t in base_labels}
    return max(by_smirks.values(), key=lambda p: (tally[p.smirks], len(p.periodicity)))


def initial_terms(base, periodicities: list[int]) -> dict:
    """Starting `periodicities`/`phases`/`k`/`idivf`: every term of `base` as it is, plus k = 0 for
    each of `periodicities` it lacks (phase 0 for odd n, 180 for even n; idivf 1)."""
    terms = {}
    if base is not None and base.k is not None:
        values = torsion_terms(base)
        terms = {n: (phase, k, idivf) for n, phase, k, idivf in zip(*values.values())}
    for n in periodicities:
        terms.setdefault(n, (0.0 if n % 2 else 180.0, 0.0, 1.0))
    order = sorted(terms)
    return {
        "periodicities": order,
        "phases": [terms[n][0] for n in order],
        "k": [terms[n][1] for n in order],
        "idivf": [terms[n][2] for n in order],
    }


def check_labels(force_field: ForceField, parent: Molecule, parameters: list[BespokeTorsion]) -> None:
    """Raise `BespokeSmirksError` naming the bond unless, in `parent`, each bespoke parameter types
    exactly its `parent_torsions` and every torsion about its `parent_bonds` carries a bespoke parameter.
    Parameters that record no parent torsions (made by hand) are not checked."""
    labels = proper_labels(force_field, parent)
    bespoke = {parameter.smirks for parameter in parameters}
    for parameter in parameters:
        if not parameter.parent_torsions:
            continue
        typed = {t for t, smirks in labels.items() if smirks == parameter.smirks}
        expected = set(map(tuple, parameter.parent_torsions))
        for bond in parameter.parent_bonds:
            about = torsions_about(parent, bond)
            wrong = sorted(t for t in about if (t in expected) != (labels[t] == parameter.smirks))
            untyped = sorted(t for t in about if labels[t] not in bespoke)
            if wrong or untyped:
                raise BespokeSmirksError(
                    f"bond {tuple(bond)} of {parent.to_smiles()}: torsions {wrong or untyped} do not carry "
                    f"their bespoke parameter {parameter.smirks}"
                )
        if typed - expected:
            raise BespokeSmirksError(
                f"bespoke parameter {parameter.smirks} also types torsions {sorted(typed - expected)} "
                f"of {parent.to_smiles()}, outside its bonds {parameter.parent_bonds}"
            )


def check_fragment_labels(force_field: ForceField, fragment: Molecule, bond: Bond, parameters) -> None:
    """Raise `BespokeSmirksError` unless every torsion about the fragment's central bond carries one
    of the bespoke parameters (`parameters`: SMIRKS or a {SMIRKS: ...} mapping)."""
    labels = proper_labels(force_field, fragment)
    untyped = sorted(t for t in torsions_about(fragment, bond) if labels[t] not in parameters)
    if untyped:
        raise BespokeSmirksError(
            f"torsions {untyped} about bond {tuple(bond)} of fragment {fragment.to_smiles()} "
            f"carry no bespoke parameter"
        )


def scan_task(workflow: BespokeWorkflow, molecule: Molecule, bond: Bond) -> TorsionScanTask:
    """The canonical 1-D scan of `bond` in `molecule` with the workflow's QC settings."""
    settings = workflow.torsiondrive
    return TorsionScanTask(
        smiles=canonical_torsion_smiles(molecule, bond),
        grid_spacing=settings.grid_spacing,
        scan_range=settings.scan_range,
        n_conformers=settings.n_conformers,
        energy_decrease_thresh=settings.energy_decrease_thresh,
        energy_upper_limit=settings.energy_upper_limit,
        qc_spec=workflow.qc_spec,
        optimization=workflow.optimization,
    )


def canonical_torsion_smiles(molecule: Molecule, bond: Bond) -> str:
    """Canonical isomeric explicit-H SMILES with only the central atoms mapped (1 and 2).

    Of the two ways to number the bond, the one whose SMILES sorts first is kept, so the same
    bond of the same molecule gives the same string whatever the input atom order.
    """
    rdmol = molecule.to_rdkit()
    for atom in rdmol.GetAtoms():
        atom.SetAtomMapNum(0)
    candidates = []
    for first, second in (bond, bond[::-1]):
        rdmol.GetAtomWithIdx(first).SetAtomMapNum(1)
        rdmol.GetAtomWithIdx(second).SetAtomMapNum(2)
        candidates.append(Chem.MolToSmiles(rdmol, isomericSmiles=True, allHsExplicit=True))
    return min(candidates)


__all__ = [
    "BespokeSmirksError",
    "bespoke_targets",
    "canonical_torsion_smiles",
    "check_fragment_labels",
    "check_labels",
    "initial_terms",
    "scan_task",
]
