"""The bespoke force field: a base force field with bespoke torsions appended, read back, combined.

Bespoke parameters have ids b1, b2, ...; appended last, they win over the base's generic ones.
Units: k in kcal/mol, phases in degrees.
"""

import re

from openff.toolkit import Molecule
from openff.units import unit

from bespoke_dask.errors import InputError
from bespoke_dask.schema import BespokeTorsion
from bespoke_dask.stages.molecule import load_force_field
from bespoke_dask.stages.smirks import BespokeSmirksError, oriented

_KCAL = unit.kilocalorie / unit.mole


def build_force_field(base: str, parameters: list[BespokeTorsion], parameterize: bool = False) -> str:
    """OFFXML text: `base` with each bespoke torsion appended to `<ProperTorsions>` (ids b1, b2, ...).

    A SMIRKS already in `base` is moved to the end. With `parameterize`, each gets ForceBalance's
    cosmetic `parameterize="k1, k2, ..."`; otherwise the output has no cosmetic attributes at all.
    """
    force_field = load_force_field(base, allow_cosmetic_attributes=True)
    handler = force_field.get_parameter_handler("ProperTorsions")
    unique: dict[str, BespokeTorsion] = {}
    for parameter in parameters:
        unique.setdefault(parameter.smirks, parameter)
    for number, parameter in enumerate(unique.values(), start=1):
        if "/" in parameter.smirks or "\\" in parameter.smirks:
            raise BespokeSmirksError(f"bespoke SMIRKS {parameter.smirks} has '/' or '\\', which ForceBalance cannot fit")
        if parameter.smirks in handler.parameters:
            del handler.parameters[parameter.smirks]
        handler.add_parameter(parameter_kwargs=_parameter_kwargs(parameter, f"b{number}"))
        if parameterize:
            names = ", ".join(f"k{i}" for i in range(1, len(parameter.k) + 1))
            handler.parameters[parameter.smirks].add_cosmetic_attribute("parameterize", names)
    return force_field.to_string(discard_cosmetic_attributes=not parameterize)


def _parameter_kwargs(parameter: BespokeTorsion, parameter_id: str) -> dict:
    """ProperTorsions keyword arguments; k and phase as lists of scalar Quantities."""
    return {
        "smirks": parameter.smirks,
        "id": parameter_id,
        "periodicity": list(parameter.periodicities),
        "phase": [phase * unit.degree for phase in parameter.phases],
        "k": [k * _KCAL for k in parameter.k],
        "idivf": [float(idivf) for idivf in parameter.idivf],
    }


def torsion_terms(parameter) -> dict:
    """`periodicities`/`phases`/`k`/`idivf` of a toolkit ProperTorsion parameter, as stored."""
    if parameter.k is None:
        raise BespokeSmirksError(f"proper torsion {parameter.smirks} has bond-order-interpolated k")
    return {
        "periodicities": [int(n) for n in parameter.periodicity],
        "phases": [phase.m_as(unit.degree) for phase in parameter.phase],
        "k": [k.m_as(_KCAL) for k in parameter.k],
        "idivf": [float(idivf) for idivf in (parameter.idivf or [1.0] * len(parameter.k))],
    }


def read_bespoke_parameters(offxml: str, parameters: list[BespokeTorsion] | list[str]) -> list[BespokeTorsion]:
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
        values = torsion_terms(handler.parameters[smirks])
        if isinstance(item, str):
            found.append(BespokeTorsion(smirks=smirks, **values))
        else:
            found.append(item.model_copy(update={**values, "k_uncertainty": None, "k_determined": None}))
    return found


def bespoke_parameters(offxml: str) -> list[BespokeTorsion]:
    """The bespoke torsions (ids b1, b2, ...) of a force field, in file order, without parent bonds."""
    force_field = load_force_field(offxml, allow_cosmetic_attributes=True)
    return _bespoke_in(force_field.get_parameter_handler("ProperTorsions"))


def _bespoke_in(handler) -> list[BespokeTorsion]:
    return [
        BespokeTorsion(smirks=parameter.smirks, **torsion_terms(parameter))
        for parameter in handler.parameters
        if re.fullmatch(r"b\d+", parameter.id or "")
    ]


def proper_labels(force_field, molecule: Molecule) -> dict[tuple[int, int, int, int], str]:
    """{oriented torsion: SMIRKS of the proper-torsion parameter that labels it}."""
    labels = force_field.label_molecules(molecule.to_topology())[0]["ProperTorsions"]
    return {oriented(atoms): parameter.smirks for atoms, parameter in labels.items()}


def combine_force_fields(force_fields: list[str], molecules: list[list[str]] | None = None) -> str:
    """OFFXML text: the first force field without its bespoke torsions, then every bespoke torsion
    (ids b1, b2, ...) of every input in order, renumbered b1, b2, ...; no cosmetic attributes.

    Inputs are installed names, paths or OFFXML texts. A SMIRKS met again keeps its first terms.
    With `molecules` (mapped SMILES, one list per force field), each molecule must get exactly the
    proper torsions from the combined force field that it gets from its own: a SMIRKS of one
    molecule that would change another molecule's torsions raises `InputError` naming both.
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
    combined = build_force_field(base.to_string(discard_cosmetic_attributes=True), parameters)
    for offxml, mapped in zip(force_fields, molecules or []):
        for smiles in mapped:
            _check_same_torsions(combined, offxml, smiles)
    return combined


def _check_same_torsions(combined: str, own: str, mapped_smiles: str) -> None:
    """Raise `InputError` unless `mapped_smiles` gets the same proper torsions (SMIRKS and terms) from both."""
    molecule = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True)
    mine, theirs = load_force_field(own, allow_cosmetic_attributes=True), load_force_field(combined)
    own_labels, combined_labels = proper_labels(mine, molecule), proper_labels(theirs, molecule)
    for torsion, smirks in own_labels.items():
        if combined_labels[torsion] != smirks:
            raise InputError(
                f"combining would change torsion {torsion} of {molecule.to_smiles()}: its own force field "
                f"types it {smirks}, the combined one {combined_labels[torsion]} (from another molecule)"
            )
