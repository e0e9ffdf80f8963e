"""Bespoke torsion SMIRKS, their canonical scans, and the force field that carries them.

A bespoke SMIRKS `[*:1]~[B:2]-!@[C:3]~[*:4]` fully specifies the two central atoms (element,
connectivity X, H count, formal charge, aromaticity, smallest ring size or `!R`) and lists
every neighbour of each as a recursive SMARTS (neighbour element and aromaticity, bond order),
so one parameter covers every torsion about the bond, in the parent and in its fragment.
Units: k in kcal/mol, phases in degrees. Atom indices are 0-based in the molecule's mapped SMILES.
"""

import re

from openff.toolkit import Molecule
from openff.units import unit
from rdkit import Chem

from bespoke_dask.errors import InputError
from bespoke_dask.schema import (
    BespokeTorsion,
    BespokeWorkflow,
    FragmentationResult,
    TorsionScanTask,
    TorsionTarget,
)
from bespoke_dask.stages.fragment import Bond, parent_molecule
from bespoke_dask.stages.molecule import load_force_field

_BOND_SYMBOLS = {
    Chem.BondType.SINGLE: "-",
    Chem.BondType.DOUBLE: "=",
    Chem.BondType.TRIPLE: "#",
    Chem.BondType.AROMATIC: ":",
}


class BespokeSmirksError(ValueError):
    """A generated bespoke SMIRKS fails to cover the torsions it was made for."""


def bespoke_targets(workflow: BespokeWorkflow, fragmentation: FragmentationResult) -> list[TorsionTarget]:
    """One bespoke parameter and one canonical scan per fragment.

    Fragments whose SMIRKS come out identical share one parameter (fitted jointly);
    identical (parameter, scan) pairs appear once.
    """
    parent = parent_molecule(fragmentation.parent_smiles)
    base = load_force_field(workflow.initial_force_field)
    torsion_labels = base.label_molecules(parent.to_topology())[0]["ProperTorsions"]
    parameters: dict[str, BespokeTorsion] = {}
    targets: list[TorsionTarget] = []
    for fragment in fragmentation.fragments:
        fragment_molecule = parent_molecule(fragment.smiles)
        smirks = torsion_smirks(parent, fragment.parent_bond)
        check_covers(smirks, parent, fragment.parent_bond)
        check_covers(smirks, fragment_molecule, fragment.bond_indices)
        if smirks not in parameters:
            parameters[smirks] = BespokeTorsion(
                smirks=smirks,
                parent_bonds=matched_bonds(parent, smirks),
                **initial_terms(torsion_labels, parent, fragment.parent_bond, workflow.periodicities),
            )
        scan = scan_task(workflow, fragment_molecule, fragment.bond_indices)
        target = TorsionTarget(parameter=parameters[smirks], scan=scan)
        if target not in targets:
            targets.append(target)
    return targets


def torsion_smirks(molecule: Molecule, bond: Bond) -> str:
    """The bespoke SMIRKS of `bond`, in the orientation that sorts first (deterministic)."""
    rdmol = molecule.to_rdkit()
    rdbond = rdmol.GetBondBetweenAtoms(*bond)
    central = _BOND_SYMBOLS[rdbond.GetBondType()] + ("@" if rdbond.IsInRing() else "!@")
    left, right = (_atom_smarts(rdmol.GetAtomWithIdx(index)) for index in bond)
    return min(f"[*:1]~[{a}:2]{central}[{b}:3]~[*:4]" for a, b in ((left, right), (right, left)))


def _atom_smarts(atom: Chem.Atom) -> str:
    """Central-atom primitives plus every neighbour as a recursive SMARTS."""
    ring_size = atom.GetOwningMol().GetRingInfo().MinAtomRingSize(atom.GetIdx())
    primitives = (
        f"#{atom.GetAtomicNum()}X{atom.GetDegree()}H{atom.GetTotalNumHs(includeNeighbors=True)}"
        f"{atom.GetFormalCharge():+d}"
        f"&{'a' if atom.GetIsAromatic() else 'A'}"  # '&' because a bare 'Ar...' would read as argon
        f"&{f'r{ring_size}' if ring_size else '!R'}"
    )
    neighbours = sorted(
        f"({_BOND_SYMBOLS[bond.GetBondType()]}{_neighbour_smarts(bond.GetOtherAtom(atom))})"
        for bond in atom.GetBonds()
    )
    return primitives + (f"$(*{''.join(neighbours)})" if neighbours else "")


def _neighbour_smarts(atom: Chem.Atom) -> str:
    """Element and aromaticity only: a fragment may cap this atom's own substituents."""
    if atom.GetAtomicNum() == 1:
        return "[#1]"
    return f"[#{atom.GetAtomicNum()}{'a' if atom.GetIsAromatic() else 'A'}]"


def torsions_about(molecule: Molecule, bond: Bond) -> set[tuple[int, int, int, int]]:
    """Every proper torsion a-b-c-d about bond (b, c), each in the direction with b < c."""
    b, c = sorted(bond)
    outer = {
        center: [atom.molecule_atom_index for atom in molecule.atoms[center].bonded_atoms]
        for center in (b, c)
    }
    return {(a, b, c, d) for a in outer[b] for d in outer[c] if a != c and d != b and a != d}


def matched_bonds(molecule: Molecule, smirks: str) -> list[tuple[int, int]]:
    """The central bonds (sorted pairs, sorted) of every torsion `smirks` matches."""
    matches = molecule.chemical_environment_matches(smirks)
    return sorted({tuple(sorted(match[1:3])) for match in matches})


def check_covers(smirks: str, molecule: Molecule, bond: Bond) -> None:
    """Raise `BespokeSmirksError` unless `smirks` matches every torsion about `bond`.

    Also refuses '/' and '\\' in `smirks`: ForceBalance splits parameter ids on '/'.
    """
    if "/" in smirks or "\\" in smirks:
        raise BespokeSmirksError(f"bespoke SMIRKS {smirks} has '/' or '\\', which ForceBalance cannot fit")
    matched = {_forward(match) for match in molecule.chemical_environment_matches(smirks)}
    missing = torsions_about(molecule, bond) - matched
    if missing:
        raise BespokeSmirksError(
            f"bespoke SMIRKS {smirks} misses torsions {sorted(missing)} about bond {bond} "
            f"of {molecule.to_smiles(mapped=True)}"
        )


def _forward(torsion: tuple[int, ...]) -> tuple[int, ...]:
    return torsion if torsion[1] < torsion[2] else tuple(reversed(torsion))


def initial_terms(torsion_labels: dict, molecule: Molecule, bond: Bond, periodicities: list[int]) -> dict:
    """Starting `periodicities`/`phases`/`k`/`idivf` from the base parameter on `bond`.

    The base parameter is the one on the torsions about the bond with the most terms (then the
    most heavy-atom torsions, then the most torsions). Its k/idivf and phase are kept for the listed
    periodicities; the others start at k = 0 with phase 0 (odd n) or 180 (even n); idivf is 1.
    """
    base = _base_parameter(torsion_labels, molecule, bond)
    terms = _terms(base) if base is not None else {}
    phases = [terms.get(n, (None, 0.0 if n % 2 else 180.0))[1] for n in periodicities]
    return {
        "periodicities": list(periodicities),
        "phases": phases,
        "k": [terms.get(n, (0.0, None))[0] for n in periodicities],
        "idivf": [1.0] * len(periodicities),
    }


def _base_parameter(torsion_labels: dict, molecule: Molecule, bond: Bond):
    """The base force field's proper-torsion parameter that stands for `bond` (None if none)."""
    about = torsions_about(molecule, bond)
    tally: dict[str, list] = {}
    for atoms, parameter in torsion_labels.items():
        torsion = _forward(tuple(atoms))
        if torsion not in about:
            continue
        heavy = all(molecule.atoms[i].atomic_number > 1 for i in (torsion[0], torsion[3]))
        entry = tally.setdefault(parameter.smirks, [parameter, 0, 0])
        entry[1] += heavy
        entry[2] += 1
    if not tally:
        return None
    parameter, _, _ = max(tally.values(), key=lambda entry: (len(entry[0].periodicity), entry[1], entry[2]))
    return parameter


def _terms(parameter) -> dict[int, tuple[float, float]]:
    """{periodicity: (k / idivf in kcal/mol, phase in degrees)}; empty for bond-order-interpolated k."""
    if parameter.k is None:
        return {}
    idivf = parameter.idivf or [1.0] * len(parameter.k)
    return {
        n: (k.m_as(unit.kilocalorie / unit.mole) / divisor, phase.m_as(unit.degree))
        for n, k, phase, divisor in zip(parameter.periodicity, parameter.k, parameter.phase, idivf)
    }


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


def build_force_field(base: str, parameters: list[BespokeTorsion], parameterize: bool = False) -> str:
    """OFFXML text: `base` with each bespoke torsion appended to `<ProperTorsions>` (ids b1, b2, ...).

    Appended last, a bespoke parameter wins over the generic ones. A SMIRKS already in `base` is
    moved to the end. With `parameterize`, each gets ForceBalance's cosmetic
    `parameterize="k1, k2, ..."`; otherwise the output has no cosmetic attributes at all.
    """
    force_field = load_force_field(base, allow_cosmetic_attributes=True)
    handler = force_field.get_parameter_handler("ProperTorsions")
    unique: dict[str, BespokeTorsion] = {}
    for parameter in parameters:
        unique.setdefault(parameter.smirks, parameter)
    for number, parameter in enumerate(unique.values(), start=1):
        if parameter.smirks in handler.parameters:
            del handler.parameters[parameter.smirks]
        handler.add_parameter(parameter_kwargs=_parameter_kwargs(parameter, f"b{number}"))
        if parameterize:
            names = ", ".join(f"k{i}" for i in range(1, len(parameter.k) + 1))
            handler.parameters[parameter.smirks].add_cosmetic_attribute("parameterize", names)
    return force_field.to_string(discard_cosmetic_attributes=not parameterize)


def _parameter_kwargs(parameter: BespokeTorsion, parameter_id: str) -> dict:
    """ProperTorsions keyword arguments; k and phase as lists of scalar Quantities (P9)."""
    return {
        "smirks": parameter.smirks,
        "id": parameter_id,
        "periodicity": list(parameter.periodicities),
        "phase": [phase * unit.degree for phase in parameter.phases],
        "k": [k * unit.kilocalorie / unit.mole for k in parameter.k],
        "idivf": [float(idivf) for idivf in parameter.idivf],
    }


def read_bespoke_parameters(
    offxml: str, parameters: list[BespokeTorsion] | list[str]
) -> list[BespokeTorsion]:
    """The current terms of bespoke torsions in an OFFXML (name, path or text; cosmetic attributes allowed).

    Given `BespokeTorsion`s, each comes back with its terms replaced (other fields kept, the
    fit statistics cleared); given SMIRKS, new `BespokeTorsion`s without `parent_bonds`.
    """
    force_field = load_force_field(offxml, allow_cosmetic_attributes=True)
    handler = force_field.get_parameter_handler("ProperTorsions")
    found = []
    for item in parameters:
        smirks = item if isinstance(item, str) else item.smirks
        if smirks not in handler.parameters:
            raise BespokeSmirksError(f"no proper torsion {smirks} in the force field")
        values = _read_terms(handler.parameters[smirks])
        if isinstance(item, str):
            found.append(BespokeTorsion(smirks=smirks, **values))
        else:
            found.append(item.model_copy(update={**values, "k_uncertainty": None, "k_determined": None}))
    return found


def _read_terms(parameter) -> dict:
    if parameter.k is None:
        raise BespokeSmirksError(f"proper torsion {parameter.smirks} has bond-order-interpolated k")
    return {
        "periodicities": [int(n) for n in parameter.periodicity],
        "phases": [phase.m_as(unit.degree) for phase in parameter.phase],
        "k": [k.m_as(unit.kilocalorie / unit.mole) for k in parameter.k],
        "idivf": [float(idivf) for idivf in (parameter.idivf or [1.0] * len(parameter.k))],
    }


def combine_force_fields(force_fields: list[str]) -> str:
    """OFFXML text: the first force field without its bespoke torsions, then every bespoke torsion
    (ids b1, b2, ...) of every input in order, renumbered b1, b2, ...; no cosmetic attributes.

    Inputs are installed names, paths or OFFXML texts. A SMIRKS met again keeps its first terms.
    """
    if not force_fields:
        raise InputError("no force fields to combine")
    base = load_force_field(force_fields[0], allow_cosmetic_attributes=True)
    handler = base.get_parameter_handler("ProperTorsions")
    parameters = _bespoke_in(handler)
    for parameter in parameters:
        del handler.parameters[parameter.smirks]
    for offxml in force_fields[1:]:
        parameters += bespoke_parameters(offxml)
    return build_force_field(base.to_string(discard_cosmetic_attributes=True), parameters)


def bespoke_parameters(offxml: str) -> list[BespokeTorsion]:
    """The bespoke torsions (ids b1, b2, ...) of a force field, in file order, without parent bonds."""
    force_field = load_force_field(offxml, allow_cosmetic_attributes=True)
    return _bespoke_in(force_field.get_parameter_handler("ProperTorsions"))


def _bespoke_in(handler) -> list[BespokeTorsion]:
    return [
        BespokeTorsion(smirks=parameter.smirks, **_read_terms(parameter))
        for parameter in handler.parameters
        if re.fullmatch(r"b\d+", parameter.id or "")
    ]
