"""Checks on what the user hands us: the molecule and the force field.

Every failure raises `InputError` with a one-line message meant for the user.
Atom indices are 0-based, in the atom order of the mapped SMILES.
"""

import contextlib
import warnings

import networkx
from openff.toolkit import ForceField, Molecule
from rdkit import RDLogger

from bespoke_dask.errors import InputError, one_line

# Force-field sections whose every term must be covered, and the terms they cover.
_COVERED_TERMS = {
    "vdW": lambda molecule: [(atom.molecule_atom_index,) for atom in molecule.atoms],
    "Bonds": lambda molecule: [(bond.atom1_index, bond.atom2_index) for bond in molecule.bonds],
    "Angles": lambda molecule: [_indices(angle) for angle in molecule.angles],
    "ProperTorsions": lambda molecule: [_indices(proper) for proper in molecule.propers],
}


def mapped_smiles_from_input(smiles: str) -> str:
    """The mapped, explicit-H SMILES of one molecule given as SMILES (mapped or not).

    A fully mapped input keeps its atom order; otherwise atoms follow the SMILES.
    """
    molecule = _parse(smiles)
    components = networkx.number_connected_components(molecule.to_networkx())
    if components > 1:
        raise InputError(f"'{smiles}' has {components} components; submit one molecule at a time")
    molecule.properties.pop("atom_map", None)
    return molecule.to_smiles(mapped=True)


def load_force_field(name_or_offxml: str, allow_cosmetic_attributes: bool = False) -> ForceField:
    """An installed offxml (e.g. `openff_unconstrained-2.2.0.offxml`), a path, or OFFXML text."""
    try:
        return ForceField(name_or_offxml, allow_cosmetic_attributes=allow_cosmetic_attributes)
    except Exception as error:
        if _is_offxml_text(name_or_offxml):  # the toolkit's message would repeat the whole text
            raise InputError("cannot load force field: the OFFXML text is not valid SMIRNOFF") from None
        raise InputError(f"cannot load force field '{name_or_offxml}': {one_line(error).split(': ', 1)[-1]}") from None


def check_force_field(mapped_smiles: str, force_field: str) -> None:
    """Raise `InputError` naming the atoms `force_field` has no vdW/bond/angle/torsion parameters for."""
    molecule = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True)
    labels = load_force_field(force_field).label_molecules(molecule.to_topology())[0]
    missing = {
        section: _uncovered(terms(molecule), labels.get(section, {}))
        for section, terms in _COVERED_TERMS.items()
    }
    missing = {section: terms for section, terms in missing.items() if terms}
    if not missing:
        return
    atoms = ", ".join(f"{index} ({molecule.atoms[index].symbol})" for index in _culprits(missing))
    raise InputError(
        f"force field {_describe(force_field)} has no {'/'.join(missing)} parameters for atom(s) {atoms}"
    )


def check_target_torsions(smarts: list[str]) -> None:
    """Raise `InputError` unless each SMARTS parses and tags exactly the two atoms of a bond (:1, :2)."""
    from rdkit import Chem

    if not smarts:
        raise InputError("no target torsion SMARTS given")
    for pattern in smarts:
        with _quiet_rdkit():
            query = Chem.MolFromSmarts(pattern)
        if query is None:
            raise InputError(f"target torsion {pattern!r} is not valid SMARTS")
        tags = sorted(atom.GetAtomMapNum() for atom in query.GetAtoms() if atom.GetAtomMapNum())
        if tags != [1, 2]:
            raise InputError(f"target torsion {pattern!r} must tag the two atoms of its bond :1 and :2, once each")
        first, second = (atom.GetIdx() for atom in sorted(query.GetAtoms(), key=lambda a: a.GetAtomMapNum())[-2:])
        if query.GetBondBetweenAtoms(first, second) is None:
            raise InputError(f"target torsion {pattern!r}: the atoms tagged :1 and :2 are not bonded")


def check_size(mapped_smiles: str, max_atoms: int | None) -> None:
    """Raise `InputError` if the molecule has more than `max_atoms` atoms (hydrogens included)."""
    n_atoms = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True).n_atoms
    if max_atoms is not None and n_atoms > max_atoms:
        raise InputError(
            f"the molecule has {n_atoms} atoms, more than the limit of {max_atoms} "
            "(raise bespoke-dask.max-atoms, e.g. DASK_BESPOKE_DASK__MAX_ATOMS=500)"
        )


def _parse(smiles: str) -> Molecule:
    """The molecule of `smiles`, in the map order when every atom is mapped."""
    try:
        with warnings.catch_warnings(), _quiet_rdkit():
            warnings.simplefilter("ignore")
            molecule = Molecule.from_smiles(smiles, allow_undefined_stereo=True)
            atom_map = molecule.properties.get("atom_map", {})
            if molecule.n_atoms and sorted(atom_map.values()) == list(range(1, molecule.n_atoms + 1)):
                molecule = Molecule.from_mapped_smiles(smiles, allow_undefined_stereo=True)
    except Exception as error:
        reason = "radicals are not supported" if "radical" in str(error).lower() else None
        raise InputError(f"could not parse SMILES '{smiles}'" + (f": {reason}" if reason else "")) from None
    if molecule.n_atoms == 0:
        raise InputError(f"could not parse SMILES '{smiles}'")
    return molecule


@contextlib.contextmanager
def _quiet_rdkit():
    """Keep RDKit's parse errors off stderr (the InputError says it)."""
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


def _indices(atoms) -> tuple[int, ...]:
    return tuple(atom.molecule_atom_index for atom in atoms)


def _uncovered(terms: list[tuple[int, ...]], labelled: dict) -> list[tuple[int, ...]]:
    """The terms (in either direction) that no parameter was assigned to."""
    covered = {key for term in labelled for key in (tuple(term), tuple(reversed(term)))}
    return [term for term in terms if term not in covered]


def _culprits(missing: dict[str, list[tuple[int, ...]]]) -> list[int]:
    """Fewest atoms that touch every uncovered term (greedy set cover), sorted."""
    terms = [set(term) for section in missing.values() for term in section]
    chosen: list[int] = []
    while terms:
        counts: dict[int, int] = {}
        for term in terms:
            for atom in term:
                counts[atom] = counts.get(atom, 0) + 1
        best = max(sorted(counts), key=lambda atom: counts[atom])
        chosen.append(best)
        terms = [term for term in terms if best not in term]
    return sorted(chosen)


def _describe(name_or_offxml: str) -> str:
    """A short name for a force field given as a name, a path or OFFXML text."""
    return "(OFFXML text)" if _is_offxml_text(name_or_offxml) else f"'{name_or_offxml}'"


def _is_offxml_text(name_or_offxml: str) -> bool:
    return "<" in name_or_offxml
