"""`combine`: the bespoke torsions of several fits in one force field that types every molecule."""

import pytest
from openff.toolkit import ForceField
from typer.testing import CliRunner

from bespoke_dask import BespokeWorkflowFactory
from bespoke_dask.cli import app
from bespoke_dask.schema import NoFragmentation
from bespoke_dask.stages.fragment import fragment, parent_molecule
from bespoke_dask.stages.smirks import bespoke_targets, build_force_field, torsions_about

SAGE = "openff_unconstrained-2.2.0.offxml"
SETTINGS = BespokeWorkflowFactory(fragmentation=NoFragmentation())
runner = CliRunner()


def combine(*args: str):
    return runner.invoke(app, ["combine", *args])


def bespoke(smiles: str):
    """(the molecule, its one target bond, its bespoke parameter with made-up fitted k's)."""
    workflow = SETTINGS.optimization_schema_from_smiles(smiles)
    (target,) = bespoke_targets(workflow, fragment(workflow))
    (bond,) = target.parameter.parent_bonds
    fitted = target.parameter.model_copy(update={"k": [0.1 * len(smiles) * n for n in (1, 2, 3, 4)]})
    return parent_molecule(workflow.smiles), bond, fitted


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """Two refit force fields: the ether's, and the ethylbenzene's that also holds the ether's SMIRKS."""
    ether, ethylbenzene = bespoke("COCC"), bespoke("CCc1ccccc1")
    refit_elsewhere = ether[2].model_copy(update={"k": [9.0, 9.0, 9.0, 9.0]})
    directory = tmp_path_factory.mktemp("fits")
    paths = directory / "1.offxml", directory / "2.offxml"
    paths[0].write_text(build_force_field(SAGE, [ether[2]]))
    paths[1].write_text(build_force_field(SAGE, [ethylbenzene[2], refit_elsewhere]))
    return paths, ether, ethylbenzene


def test_combined_force_field_types_each_molecules_bond_with_its_bespoke_torsion(fits, tmp_path):
    (first, second), ether, ethylbenzene = fits
    output = tmp_path / "combined.offxml"
    result = combine("--ff", str(first), "--ff", str(second), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 bespoke torsions from 2 force fields")
    combined = ForceField(str(output))  # no allow_cosmetic_attributes: there are none
    torsions = combined["ProperTorsions"].parameters
    assert len(torsions) == len(ForceField(SAGE)["ProperTorsions"].parameters) + 2
    bespoke = [(p.id, p.smirks) for p in torsions][-2:]
    assert bespoke == [("b1", ether[2].smirks), ("b2", ethylbenzene[2].smirks)]
    assert [k.m for k in torsions[ether[2].smirks].k] == pytest.approx(ether[2].k)  # the first fit wins
    for (molecule, bond, _), bespoke_id in ((ether, "b1"), (ethylbenzene, "b2")):
        labels = combined.label_molecules(molecule.to_topology())[0]["ProperTorsions"]
        about = torsions_about(molecule, bond)
        assert {(labels.get(torsion) or labels[torsion[::-1]]).id for torsion in about} == {bespoke_id}


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give force fields to combine"),
        (["--ff", "no-such.offxml"], "no-such.offxml"),
        (["--id", "1", "--directory", "no-such-executor"], "no running executor"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = combine("--output", str(tmp_path / "out.offxml"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.offxml").exists()
