"""`cache update`: a seeded torsiondrive saves a later workflow its QC; bad files are one line, exit 2."""

import json

import pytest
from qcschema_torsiondrives import ETHER, ETHER_SETTINGS
from typer.testing import CliRunner

from bespoke_dask import BespokeDaskExecutor, BespokeWorkerConfig
from bespoke_dask.cli import app
from bespoke_dask.stages.force_field import bespoke_parameters

runner = CliRunner()


def update(*args: str):
    return runner.invoke(app, ["cache", "update", *args])


@pytest.fixture(scope="module")
def seeded(ether_torsiondrive, tmp_path_factory):
    """An executor directory seeded from a file holding the ether's torsiondrive, and the CLI's words."""
    path = tmp_path_factory.mktemp("qcarchive") / "torsiondrives.json"
    path.write_text(json.dumps([json.loads(ether_torsiondrive[1].json())]))
    directory = tmp_path_factory.mktemp("executor")
    settings = tmp_path_factory.mktemp("settings") / "workflow.json"
    ETHER_SETTINGS.to_file(settings)
    args = ["--file", str(path), "--directory", str(directory), "--workflow-file", str(settings)]
    outputs = [update(*args), update(*args)]
    return directory, outputs


def test_update_reports_new_scans_and_adds_each_once(seeded):
    directory, (first, again) = seeded
    assert first.exit_code == 0, first.output
    assert first.output.startswith("1 of 1 records added as new scans (0 already stored, 0 skipped)")
    assert again.output.startswith("0 of 1 records added as new scans (1 already stored, 0 skipped)")
    assert len(list((directory / "store" / "scan").glob("*/*.json"))) == 1


def test_a_workflow_whose_scan_was_seeded_runs_no_qc_and_its_fit_combines_by_id(seeded, tmp_path):
    directory, _ = seeded
    with BespokeDaskExecutor(
        n_fragmenter_workers=1,
        n_qc_compute_workers=1,
        n_optimizer_workers=1,
        qc_compute_worker_config=BespokeWorkerConfig(n_cores=1),
        directory=directory,
    ) as executor:
        workflow_id = executor.submit(ETHER_SETTINGS.optimization_schema_from_smiles(ETHER))
        result = executor.wait_until_complete(workflow_id, frequency=0.2)
        combined = runner.invoke(
            app,
            ["combine", "--output", str(tmp_path / "combined.offxml"), "--id", workflow_id,
             "--scheduler", executor.scheduler_address],
        )
    assert result.status == "success", result.error
    assert result.results.parameters and result.results.final.rmse < result.results.initial.rmse
    qc = directory / "store" / "qc"
    assert not qc.exists() or not any(qc.rglob("*.json"))  # no constrained optimization ran
    assert not (directory / "store" / "scan-start").exists()
    assert combined.exit_code == 0, combined.output
    fitted = bespoke_parameters((tmp_path / "combined.offxml").read_text())
    assert [p.smirks for p in fitted] == [p.smirks for p in result.results.parameters]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ('{"records": []}', "no QCSchema TorsionDriveResult records"),
        ('[{"final_energies": {}}]', "record 1: the record has no 'keywords'"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_code_2(tmp_path, content, message):
    path = tmp_path / "torsiondrives.json"
    if content is not None:
        path.write_text(content)
    result = update("--file", str(path), "--directory", str(tmp_path / "executor"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "executor").exists()
