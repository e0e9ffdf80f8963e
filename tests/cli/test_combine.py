"""`combine`: the bespoke torsions of several fits in one force field that types every molecule."""

import pytest
from openff.toolkit import ForceField
from typer.testing import CliRunner

from bespoke_dask import BespokeWorkflowFactory
from bespoke_dask.cli import app
from bespoke_dask.schema import NoFragmentation
from bespoke_dask.stages.fragment import fragment, parent_molecule
from bespoke_dask.errors import InputError
from bespoke_dask.schema import BespokeTorsion
from bespoke_dask.stages.force_field import build_force_field, combine_force_fields
from bespoke_dask.stages.smirks import torsions_about
from bespoke_dask.stages.targets import bespoke_targets

SAGE = "openff_unconstrained-2.2.0.offxml"
SETTINGS = BespokeWorkflowFactory(fragmentation=NoFragmentation())
runner = CliRunner()


def combine(*args: str):
    return runner.invoke(app, ["combine", *args])


def bespoke(smiles: str):
    """(the molecule, its one target bond, its bespoke parameters with made-up fitted k's)."""
    workflow = SETTINGS.optimization_schema_from_smiles(smiles)
    (target,) = bespoke_targets(workflow, fragment(workflow))
    (bond,) = target.parameters[0].parent_bonds
    fitted = [
        p.model_copy(update={"k": [0.1 * len(smiles) * n * (i + 1) for n in p.periodicities]})
        for i, p in enumerate(target.parameters)
    ]
    return parent_molecule(workflow.smiles), bond, fitted, workflow.smiles


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """Two refit force fields: the ether's, and the ethylbenzene's that also holds the ether's SMIRKS."""
    ether, ethylbenzene = bespoke("COCC"), bespoke("CCc1ccccc1")
    refit_elsewhere = ether[2][0].model_copy(update={"k": [9.0] * len(ether[2][0].k)})
    directory = tmp_path_factory.mktemp("fits")
    paths = directory / "1.offxml", directory / "2.offxml"
    paths[0].write_text(build_force_field(SAGE, ether[2]))
    paths[1].write_text(build_force_field(SAGE, ethylbenzene[2] + [refit_elsewhere]))
    return paths, ether, ethylbenzene


def test_combined_force_field_types_each_molecules_bond_with_its_bespoke_torsion(fits, tmp_path):
    (first, second), ether, ethylbenzene = fits
    output = tmp_path / "combined.offxml"
    result = combine("--ff", str(first), "--ff", str(second), "--output", str(output))
    assert result.exit_code == 0, result.output
    n = len(ether[2]) + len(ethylbenzene[2])
    assert result.output.startswith(f"{n} bespoke torsions from 2 force fields")
    combined = ForceField(str(output))  # no allow_cosmetic_attributes: there are none
    torsions = combined["ProperTorsions"].parameters
    assert len(torsions) == len(ForceField(SAGE)["ProperTorsions"].parameters) + n
    assert [p.smirks for p in torsions][-n:] == [p.smirks for p in ether[2] + ethylbenzene[2]]
    first = ether[2][0]
    assert [k.m for k in torsions[first.smirks].k] == pytest.approx(first.k)  # the first fit wins
    for molecule, bond, parameters, _ in (ether, ethylbenzene):
        labels = combined.label_molecules(molecule.to_topology())[0]["ProperTorsions"]
        typed = {(labels.get(t) or labels[t[::-1]]).smirks for t in torsions_about(molecule, bond)}
        assert typed == {p.smirks for p in parameters}


def test_combine_refuses_a_smirks_that_would_retype_another_molecule(fits):
    """A generic ether SMIRKS in ethylbenzene's fit would retype the ether's bond: refused, naming the torsion."""
    (first, second), ether, ethylbenzene = fits
    generic = BespokeTorsion(
        smirks="[*:1]~[#6X4:2]-[#8X2:3]~[*:4]", periodicities=[1], phases=[0.0], k=[5.0], idivf=[1.0]
    )
    greedy = build_force_field(SAGE, ethylbenzene[2] + [generic])
    assert combine_force_fields([first.read_text(), second.read_text()], [[ether[3]], [ethylbenzene[3]]])
    with pytest.raises(InputError, match="would change torsion"):
        combine_force_fields([first.read_text(), greedy], [[ether[3]], [ethylbenzene[3]]])


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
