"""Bespoke torsion SMIRKS: one per type of torsion about a target bond.

The torsions a-b-c-d about a bond are grouped by graph symmetry in the parent; each group gets a
SMIRKS that matches exactly its torsions, in the parent and in the fragment scanned for it, and
no other torsion of either. Its atoms are decorated with what the fragment and the parent agree
on (element, connectivity X, H count, formal charge, aromaticity, smallest ring size), and with
their neighbour shells, as many as it takes to tell the groups apart (a spanning tree of the
shared atoms, as a recursive SMARTS). Groups that no shell the two molecules share can tell
apart are one type (the fragment cannot see the difference) and share one SMIRKS.

Atom indices are 0-based in each molecule's mapped SMILES; torsions are oriented with b < c.
"""

from collections import deque
from dataclasses import dataclass

from openff.toolkit import Molecule
from rdkit import Chem

Torsion = tuple[int, int, int, int]
Bond = tuple[int, int]

MAX_SHELLS = 4  # neighbour shells tried around the outer atoms before groups are merged

_BOND_SYMBOLS = {
    Chem.BondType.SINGLE: "-",
    Chem.BondType.DOUBLE: "=",
    Chem.BondType.TRIPLE: "#",
    Chem.BondType.AROMATIC: ":",
}


class BespokeSmirksError(ValueError):
    """A bespoke SMIRKS does not cover exactly the torsions it was made for."""


@dataclass(frozen=True)
class TorsionType:
    """One symmetry-unique type of torsion about a bond, and its SMIRKS."""

    smirks: str
    parent_torsions: tuple[Torsion, ...]
    fragment_torsions: tuple[Torsion, ...]


def oriented(torsion) -> Torsion:
    """The torsion in the direction with b < c."""
    torsion = tuple(int(i) for i in torsion)
    return torsion if torsion[1] < torsion[2] else torsion[::-1]


def torsions_about(molecule: Molecule, bond: Bond) -> set[Torsion]:
    """Every proper torsion a-b-c-d about bond (b, c), each oriented with b < c."""
    b, c = sorted(bond)
    outer = {center: [atom.molecule_atom_index for atom in molecule.atoms[center].bonded_atoms] for center in (b, c)}
    return {(a, b, c, d) for a in outer[b] for d in outer[c] if a != c and d != b and a != d}


def matches(molecule: Molecule, smirks: str) -> set[Torsion]:
    """The torsions of `molecule` that `smirks` matches, oriented."""
    return {oriented(match) for match in molecule.chemical_environment_matches(smirks)}


def torsion_types(
    parent: Molecule,
    parent_bonds: list[Bond],
    fragment: Molecule,
    fragment_bond: Bond,
    to_parent: dict[int, int],
) -> list[TorsionType]:
    """The torsion types about `fragment_bond`, which stands for the symmetric `parent_bonds`.

    `to_parent` maps fragment atoms to parent atoms. Raises `BespokeSmirksError` if a torsion
    about the bond has an atom the fragment did not take from the parent.
    """
    to_fragment = {parent_atom: atom for atom, parent_atom in to_parent.items()}
    groups = _symmetry_groups(parent, parent_bonds)
    fragment_groups = [_in_fragment(group, to_fragment, fragment_bond) for group in groups]
    environments = _Environments(parent, fragment, to_parent)
    for shells in range(MAX_SHELLS + 1):
        smirks = [environments.smirks(group[0], shells) for group in fragment_groups]
        if _exclusive(smirks, groups, fragment_groups, parent, fragment):
            return _types(smirks, groups, fragment_groups)
    return _merged(smirks, groups, fragment_groups, parent, fragment)


def _symmetry_groups(parent: Molecule, bonds: list[Bond]) -> list[list[Torsion]]:
    """The torsions about `bonds` grouped by the symmetry classes of their atoms (either direction)."""
    ranks = list(Chem.CanonicalRankAtoms(parent.to_rdkit(), breakTies=False))
    groups: dict[tuple, list[Torsion]] = {}
    for bond in bonds:
        for torsion in sorted(torsions_about(parent, bond)):
            key = min(tuple(ranks[i] for i in torsion), tuple(ranks[i] for i in torsion[::-1]))
            groups.setdefault(key, []).append(torsion)
    return [groups[key] for key in sorted(groups)]


def _in_fragment(group: list[Torsion], to_fragment: dict[int, int], bond: Bond) -> list[Torsion]:
    """The group's torsions present in the fragment, in fragment indices: those about its central bond,
    and about any symmetric copy of that bond the fragment also holds (e.g. the parent itself)."""
    found = [oriented(to_fragment[atom] for atom in torsion) for torsion in group if all(a in to_fragment for a in torsion)]
    if not any(set(torsion[1:3]) == set(bond) for torsion in found):
        raise BespokeSmirksError(f"the fragment lacks the atoms of parent torsions {group}")
    return found


def _exclusive(smirks, groups, fragment_groups, parent, fragment) -> bool:
    """Does every SMIRKS match exactly its group, in the parent and in the fragment?"""
    return all(
        matches(parent, pattern) == set(group) and matches(fragment, pattern) == set(fragment_group)
        for pattern, group, fragment_group in zip(smirks, groups, fragment_groups)
    )


def _types(smirks, groups, fragment_groups) -> list[TorsionType]:
    return [
        TorsionType(pattern, tuple(sorted(group)), tuple(sorted(fragment_group)))
        for pattern, group, fragment_group in zip(smirks, groups, fragment_groups)
    ]


def _merged(smirks, groups, fragment_groups, parent, fragment) -> list[TorsionType]:
    """Merge groups whose most specific SMIRKS still match each other's torsions into one type.

    Groups are merged transitively; the merged type keeps the SMIRKS of its first group, which must
    then match exactly the union in both molecules.
    """
    owner = list(range(len(groups)))

    def root(index: int) -> int:
        while owner[index] != index:
            index = owner[index]
        return index

    parent_of = {t: i for i, group in enumerate(groups) for t in group}
    fragment_of = {t: i for i, group in enumerate(fragment_groups) for t in group}
    for index, pattern in enumerate(smirks):
        hits = [parent_of.get(t) for t in matches(parent, pattern)] + [fragment_of.get(t) for t in matches(fragment, pattern)]
        for other in hits:
            if other is None:
                raise BespokeSmirksError(f"bespoke SMIRKS {pattern} matches torsions about other bonds")
            owner[root(other)] = root(index)
    merged: dict[int, list[int]] = {}
    for index in range(len(groups)):
        merged.setdefault(root(index), []).append(index)
    types = []
    for members in merged.values():
        members.sort()
        group = sorted(t for i in members for t in groups[i])
        fragment_group = sorted(t for i in members for t in fragment_groups[i])
        pattern = smirks[members[0]]
        if matches(parent, pattern) != set(group) or matches(fragment, pattern) != set(fragment_group):
            raise BespokeSmirksError(f"no SMIRKS tells torsions {group} apart from the others about their bond")
        types.append(TorsionType(pattern, tuple(group), tuple(fragment_group)))
    return types


class _Environments:
    """Atom SMARTS from what the fragment and the parent agree on around mapped atoms."""

    def __init__(self, parent: Molecule, fragment: Molecule, to_parent: dict[int, int]):
        self.parent = parent.to_rdkit()
        self.fragment = fragment.to_rdkit()
        self.to_parent = to_parent

    def smirks(self, torsion: Torsion, shells: int) -> str:
        """The SMIRKS of `torsion` (fragment indices) with `shells` neighbour shells on its outer atoms.

        The central atoms always carry their first shell. Of the two directions, the SMIRKS that
        sorts first is kept (deterministic).
        """
        candidates = []
        for atoms in (torsion, torsion[::-1]):
            depths = (shells, max(shells, 1), max(shells, 1), shells)
            smarts = [self._atom(atom, depth, set(atoms)) for atom, depth in zip(atoms, depths)]
            bonds = [self._bond(first, second) for first, second in zip(atoms, atoms[1:])]
            candidates.append(
                f"[{smarts[0]}:1]{bonds[0]}[{smarts[1]}:2]{bonds[1]}[{smarts[2]}:3]{bonds[2]}[{smarts[3]}:4]"
            )
        return min(candidates)

    def _atom(self, atom: int, depth: int, excluded: set[int]) -> str:
        """Shared primitives of `atom`, plus a spanning tree of its shared neighbours to `depth`."""
        primitives = self._primitives(atom)
        tree = self._tree(atom, depth, excluded)
        return primitives + (f"&$(*{tree})" if tree else "")

    def _tree(self, root: int, depth: int, excluded: set[int]) -> str:
        """Branches `(bond[atom](...))` of a breadth-first spanning tree of shared atoms around `root`."""
        children: dict[int, list[int]] = {root: []}
        seen, queue = set(excluded) | {root}, deque([(root, 0)])
        while queue:
            atom, level = queue.popleft()
            if level == depth:
                continue
            for neighbour in self._shared_neighbours(atom):
                if neighbour not in seen:
                    seen.add(neighbour)
                    children[atom].append(neighbour)
                    children[neighbour] = []
                    queue.append((neighbour, level + 1))
        return self._branches(root, children)

    def _branches(self, atom: int, children: dict[int, list[int]]) -> str:
        parts = sorted(
            f"({self._bond(atom, child)}[{self._primitives(child)}]{self._branches(child, children)})"
            for child in children[atom]
        )
        return "".join(parts)

    def _shared_neighbours(self, atom: int) -> list[int]:
        """Fragment neighbours of `atom` taken from the parent and bonded there too (no caps)."""
        parent_atom = self.to_parent[atom]
        shared = []
        for neighbour in self.fragment.GetAtomWithIdx(atom).GetNeighbors():
            index = neighbour.GetIdx()
            if index in self.to_parent and self.parent.GetBondBetweenAtoms(parent_atom, self.to_parent[index]):
                shared.append(index)
        return sorted(shared)

    def _primitives(self, atom: int) -> str:
        """The atom's primitives that are the same in the fragment and in the parent, '&'-joined."""
        mine = _primitives(self.fragment.GetAtomWithIdx(atom))
        theirs = _primitives(self.parent.GetAtomWithIdx(self.to_parent[atom]))
        return "&".join(value for value, other in zip(mine, theirs) if value == other)

    def _bond(self, first: int, second: int) -> str:
        mine = self.fragment.GetBondBetweenAtoms(first, second)
        theirs = self.parent.GetBondBetweenAtoms(self.to_parent[first], self.to_parent[second])
        same = mine.GetBondType() == theirs.GetBondType() and mine.IsInRing() == theirs.IsInRing()
        if not same or mine.GetBondType() not in _BOND_SYMBOLS:
            return "~"
        return _BOND_SYMBOLS[mine.GetBondType()] + (";@" if mine.IsInRing() else ";!@")


def _primitives(atom: Chem.Atom) -> tuple[str, ...]:
    """Element, connectivity, H count, formal charge, aromaticity and smallest ring (or none)."""
    ring_size = atom.GetOwningMol().GetRingInfo().MinAtomRingSize(atom.GetIdx())
    return (
        f"#{atom.GetAtomicNum()}",
        f"X{atom.GetDegree()}",
        f"H{atom.GetTotalNumHs(includeNeighbors=True)}",
        f"{atom.GetFormalCharge():+d}",
        "a" if atom.GetIsAromatic() else "A",
        f"r{ring_size}" if ring_size else "!R",
    )
