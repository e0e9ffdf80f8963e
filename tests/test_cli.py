"""The command line: bad input gives one line and exit code 2; nothing to fit is a clean success."""

import pytest
from openff.toolkit import ForceField
from typer.testing import CliRunner

from bespoke_dask.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["executor", "run", *args])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--smiles", "C1CC(C"], "could not parse"),
        (["--smiles", "CCO.O"], "components"),
        (["--smiles", "CC(=O)Nc1ccccc1", "--qc-spec", "gaussian", "hf", "sto-3g"], "gaussian"),
        (["--smiles", "CC(=O)Nc1ccccc1", "--optimizer", "simplex"], "simplex"),
        (["--smiles", "CC(=O)Nc1ccccc1", "--workflow", "fastest"], "fastest"),
        (["--file", "no-such-file.sdf"], "no-such-file.sdf"),
        ([], "--smiles"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_molecule_with_no_target_bond_has_nothing_to_fit(tmp_path):
    output, force_field = tmp_path / "out.json", tmp_path / "ff.offxml"
    result = run(
        "--smiles", "CCO", "--workflow", "debug",
        "--output", str(output), "--output-force-field", str(force_field),
    )
    assert result.exit_code == 0, result.output
    assert "nothing to fit" in result.output
    fitted = ForceField(str(force_field))
    assert len(fitted["ProperTorsions"].parameters) == len(
        ForceField("openff_unconstrained-2.2.0.offxml")["ProperTorsions"].parameters
    )


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_text_holds_brackets_that_rich_would_drop():
    """Rich reads `[default: 1]` in a help text as markup and prints nothing for it: a default
    goes in `show_default="..."` instead, which Typer prints as `[default: (...)]`."""
    import typer

    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            assert "[" not in (getattr(param, "help", None) or ""), (path, param.name)
    result = runner.invoke(app, ["executor", "launch", "--help"], env={"COLUMNS": "300"})
    assert "[default: (127.0.0.1, this machine only)]" in result.output
