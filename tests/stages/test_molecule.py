"""Input checks: SMILES, force fields, force-field coverage (real openff-toolkit)."""

from pathlib import Path

import pytest
from openff.toolkit import ForceField, Molecule

from bespoke_dask.errors import InputError
from bespoke_dask.stages.molecule import check_force_field, load_force_field, mapped_smiles_from_input

SAGE = "openff_unconstrained-2.2.0.offxml"


def _error(function, *args) -> str:
    with pytest.raises(InputError) as raised:
        function(*args)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_unmapped_smiles_becomes_mapped_explicit_h():
    mapped = mapped_smiles_from_input("CC(=O)Nc1ccc(O)cc1")
    molecule = Molecule.from_mapped_smiles(mapped)
    assert molecule.n_atoms == 20
    assert molecule.is_isomorphic_with(Molecule.from_smiles("CC(=O)Nc1ccc(O)cc1"))


def test_fully_mapped_smiles_keeps_its_atom_order():
    mapped = mapped_smiles_from_input("[H:3][C:1]([H:4])([H:5])[O:2][H:6]")
    symbols = [atom.symbol for atom in Molecule.from_mapped_smiles(mapped).atoms]
    assert symbols == ["C", "O", "H", "H", "H", "H"]


def test_undefined_stereo_is_allowed():
    assert Molecule.from_mapped_smiles(mapped_smiles_from_input("FC(Cl)Br"), allow_undefined_stereo=True)


@pytest.mark.parametrize("smiles", ["C1CC", "not a smiles", ""])
def test_unparsable_smiles(smiles):
    assert _error(mapped_smiles_from_input, smiles) == f"could not parse SMILES '{smiles}'"


def test_radical():
    message = _error(mapped_smiles_from_input, "[CH3]")
    assert message == "could not parse SMILES '[CH3]': radicals are not supported"


def test_several_components():
    message = _error(mapped_smiles_from_input, "CCO.O")
    assert message == "'CCO.O' has 2 components; submit one molecule at a time"


def test_force_field_by_name_path_or_text(tmp_path: Path):
    text = ForceField(SAGE).to_string()
    (tmp_path / "ff.offxml").write_text(text)
    for source in (SAGE, str(tmp_path / "ff.offxml"), text):
        assert "ProperTorsions" in load_force_field(source).registered_parameter_handlers


def test_unknown_force_field():
    assert "'no-such-ff.offxml'" in _error(load_force_field, "no-such-ff.offxml")
    assert "not valid SMIRNOFF" in _error(load_force_field, "<SMIRNOFF>" + "x" * 1000)


def test_sage_covers_paracetamol():
    check_force_field(mapped_smiles_from_input("CC(=O)Nc1ccc(O)cc1"), SAGE)


@pytest.mark.parametrize(
    ("smiles", "culprit"),
    [("OB(O)c1ccccc1", "1 (B)"), ("C[Si](C)(C)O", "1 (Si)")],
)
def test_force_field_gaps_name_the_atom(smiles, culprit):
    message = _error(check_force_field, mapped_smiles_from_input(smiles), SAGE)
    assert message.endswith(f"atom(s) {culprit}")
    assert "vdW" in message and SAGE in message
