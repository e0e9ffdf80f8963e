"""Bad input, as a new user meets it: one line naming the problem, from the CLI (exit 2) and the
Python API (`InputError`); an internal error is not dressed as bad input (exit 1, traceback logged);
random and mutated workflow JSON only ever gives validation errors."""

import json
import shutil
import sys
from pathlib import Path

import dask.config
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openff.toolkit import Molecule
from typer.testing import CliRunner

from bespoke_dask import BespokeWorkflowFactory
from bespoke_dask.cli import app, options
from bespoke_dask.errors import InputError, UnknownWorkflow
from bespoke_dask.stages.engines import require_program

runner = CliRunner()
RDKIT = ["--qc-spec", "rdkit", "mmff94", "none"]

# (case, CLI arguments after `executor run --workflow debug`, factory overrides, SMILES, words of the message)
CASES = [
    ("unparsable SMILES", [], {}, "C1CC(C", "could not parse"),
    ("several components", [], {}, "CCO.O", "2 components"),
    ("radical", [], {}, "[CH2]C", "radicals"),
    ("element the force field lacks", [], {}, "CB(O)O", "(B)"),
    ("element the engine lacks", RDKIT, {"qc_spec": ("rdkit", "mmff94", None)}, "CC[Se]C", "element(s) Se"),
    ("charge the engine cannot do", RDKIT, {"qc_spec": ("rdkit", "mmff94", None)}, "CC[NH3+]", "charged"),
    ("unknown QC program", ["--qc-spec", "gaussian", "hf", "sto-3g"], {"qc_spec": ("gaussian", "hf", "sto-3g")},
     "CCOC", "unknown QC program 'gaussian'"),
    ("unknown xtb method", ["--qc-spec", "xtb", "gfn9", "none"], {"qc_spec": ("xtb", "gfn9", None)},
     "CCOC", "'gfn9'"),
    ("basis for xtb", ["--qc-spec", "xtb", "gfn2xtb", "dzvp"], {"qc_spec": ("xtb", "gfn2xtb", "dzvp")},
     "CCOC", "no basis"),
    ("invalid target SMARTS", ["--target-torsion", "[C:1]-[C:2"], {"target_torsion_smirks": ["[C:1]-[C:2"]},
     "CCOC", "not valid SMARTS"),
    ("target SMARTS without a tagged bond", ["--target-torsion", "[C:1]~[C]"],
     {"target_torsion_smirks": ["[C:1]~[C]"]}, "CCOC", ":1 and :2"),
    ("target SMARTS tags unbonded atoms", ["--target-torsion", "[C:1].[O:2]"],
     {"target_torsion_smirks": ["[C:1].[O:2]"]}, "CCOC", "not bonded"),
]


def _factory(overrides: dict) -> BespokeWorkflowFactory:
    from bespoke_dask.schema import QCSpec

    update = dict(overrides)
    if "qc_spec" in update:
        program, method, basis = update["qc_spec"]
        update["qc_spec"] = QCSpec(program=program, method=method, basis=basis)
    return BespokeWorkflowFactory.from_name("debug").model_copy(update=update)


def _one_line_exit_2(result, words: str):
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("case, args, overrides, smiles, words", CASES, ids=[case[0] for case in CASES])
def test_cli_names_the_problem_in_one_line_and_exits_2(case, args, overrides, smiles, words):
    result = runner.invoke(app, ["executor", "run", "--workflow", "debug", "--smiles", smiles, *args])
    _one_line_exit_2(result, words)


@pytest.mark.parametrize("case, args, overrides, smiles, words", CASES, ids=[case[0] for case in CASES])
def test_api_raises_input_error_naming_the_problem(case, args, overrides, smiles, words):
    with pytest.raises(InputError) as raised:
        _factory(overrides).optimization_schema_from_smiles(smiles)
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_a_molecule_above_the_size_limit_is_refused():
    with dask.config.set({"bespoke-dask.max-atoms": 8}):
        result = runner.invoke(app, ["executor", "run", "--workflow", "debug", "--smiles", "CCO"])
        with pytest.raises(InputError, match="9 atoms, more than the limit of 8"):
            _factory({}).optimization_schema_from_smiles("CCO")
    _one_line_exit_2(result, "more than the limit of 8")


def test_an_sdf_with_several_molecules_is_refused_by_run_and_split_by_the_api(tmp_path):
    sdf = tmp_path / "two.sdf"
    molecules = [Molecule.from_smiles(smiles) for smiles in ("CCOC", "COC=O")]
    for molecule in molecules:
        molecule.generate_conformers(n_conformers=1)
    with sdf.open("w") as stream:
        for molecule in molecules:
            molecule.to_file(stream, "SDF")
    result = runner.invoke(app, ["executor", "run", "--workflow", "debug", "--file", str(sdf)])
    _one_line_exit_2(result, "2 were given: use submit")
    assert len(_factory({}).optimization_schemas_from_file(sdf)) == 2


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not a valid workflow"),
        ('{"qc_spec": {"program": 3}}', "qc_spec.program"),
        ('{"fragmentation": {"type": "magic"}}', "fragmentation"),
        ('{"no_such_setting": 1}', "no_such_setting"),
        ('{"timeouts": {"qc": -1}}', "timeouts.qc"),
        ('{"torsiondrive": {"grid_spacing": 120}}', "must divide 180"),
        ("[]", "not a valid workflow"),
    ],
)
def test_malformed_workflow_json_is_one_line(tmp_path, text, words):
    path = tmp_path / "workflow.json"
    path.write_text(text)
    result = runner.invoke(app, ["executor", "run", "--workflow-file", str(path), "--smiles", "CCOC"])
    _one_line_exit_2(result, words)
    with pytest.raises(InputError, match="not a valid workflow"):
        BespokeWorkflowFactory.from_file(path)


def test_a_qc_program_not_installed_says_how_to_install_it(monkeypatch):
    """A real PATH without psi4 on it (the venv's bin only), not a faked lookup."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert shutil.which("psi4") is None
    with pytest.raises(InputError, match="psi4 is not installed on this worker: apt-get install psi4"):
        require_program("psi4")


def test_an_unknown_workflow_id_is_bad_input_and_still_a_key_error():
    error = UnknownWorkflow("no workflow with id 7")
    assert isinstance(error, KeyError) and str(error) == "no workflow with id 7"


def test_an_internal_error_exits_1_with_where_its_traceback_went(tmp_path, monkeypatch):
    """A real bug stand-in: a KeyError raised inside a command is not reported as bad input."""
    monkeypatch.setattr(options, "ERROR_LOG", tmp_path / "errors.log")

    @options.user_errors
    def broken():
        return {}["missing"]

    import typer

    command = typer.Typer()
    command.command()(broken)
    result = runner.invoke(command, [])
    assert result.exit_code == 1
    assert "Internal error: KeyError: 'missing'" in result.output
    assert str(tmp_path / "errors.log") in result.output
    assert "Traceback" not in result.output
    assert "Traceback" in (tmp_path / "errors.log").read_text()


# -- property test: whatever JSON comes in, validation says no in one line (or accepts it)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_DEFAULT = json.loads(BespokeWorkflowFactory.from_name("debug").model_dump_json())
_PATHS = []


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            _PATHS.append(prefix + (key,))
            _paths(value, prefix + (key,))


_paths(_DEFAULT)


def _check_validation_only(text: str) -> None:
    try:
        BespokeWorkflowFactory.from_json(text)
    except InputError as error:
        assert "\n" not in str(error)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
@example({"\n": None})  # a key with a newline once made the error two lines
def test_random_json_only_gives_validation_errors(value):
    _check_validation_only(json.dumps(value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PATHS), _json)
def test_a_mutated_workflow_only_gives_validation_errors(path, value):
    workflow = json.loads(json.dumps(_DEFAULT))
    node = workflow
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _check_validation_only(json.dumps(workflow))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_random_text_only_gives_validation_errors(text):
    _check_validation_only(text)


def test_a_commands_own_exit_code_is_kept():
    import typer

    @options.user_errors
    def exits():
        raise typer.Exit(3)

    command = typer.Typer()
    command.command()(exits)
    result = runner.invoke(command, [])
    assert result.exit_code == 3 and "Internal error" not in result.output
