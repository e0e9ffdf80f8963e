"""`cache update`: a seeded torsiondrive saves a later workflow its QC; bad files are one line, exit 2."""

import json
from pathlib import Path

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


PLAIN = Path(__file__).parents[1] / "data" / "torsiontest2000" / "testcase-2497-plain.json"


def test_a_fit_to_plain_dft_scans_runs_zero_qc(tmp_path):
    """Real wB97X-D3BJ/def2-TZVPD scan (TorsionTest2000) -> cache update -> executor run --cache-only."""
    from bespoke_dask import BespokeWorkflowFactory
    from bespoke_dask.schema import LeastSquaresSettings, NoFragmentation
    from bespoke_dask.stages.scan_file import bond_smarts, read_plain_scans, scan_result_from_plain

    settings = tmp_path / "workflow.json"
    BespokeWorkflowFactory(fragmentation=NoFragmentation(), optimizer=LeastSquaresSettings()).to_file(settings)
    directory = tmp_path / "executor"
    seeded = update("--file", str(PLAIN), "--directory", str(directory), "--workflow-file", str(settings))
    assert seeded.exit_code == 0, seeded.output
    assert seeded.output.startswith("1 of 1 plain scans added as new scans")
    (scan,) = read_plain_scans(PLAIN)
    result = scan_result_from_plain(scan, BespokeWorkflowFactory(fragmentation=NoFragmentation()))
    output = tmp_path / "result.json"
    run = runner.invoke(app, [
        "executor", "run", "--smiles", result.mapped_smiles, "--workflow-file", str(settings),
        "--qc-spec", "psi4", "wb97x-d3bj", "def2-tzvpd", "--cache-only",
        "--target-torsion", bond_smarts(result), "--directory", str(directory), "--output", str(output),
    ])
    assert run.exit_code == 0, run.output
    fit = json.loads(output.read_text())["results"]
    assert fit["final"]["rmse"] <= fit["base"]["rmse"]
    assert fit["metrics"][0]["qc_energies"] and len(fit["metrics"][0]["angles"]) == 24
    qc = directory / "store" / "qc"
    assert not qc.exists() or not any(qc.rglob("*.json"))  # no QC ran
    assert not (directory / "store" / "scan-start").exists()


def test_a_plain_scan_at_a_spacing_torsiondrive_cannot_run_still_seeds_a_scan():
    """Only running torsiondrive needs a spacing that divides 180; a scan computed elsewhere may have any."""
    from bespoke_dask import BespokeWorkflowFactory
    from bespoke_dask.schema import NoFragmentation
    from bespoke_dask.stages.scan_file import read_plain_scans, scan_result_from_plain

    (scan,) = read_plain_scans(PLAIN)
    every_75 = scan.model_copy(update={"grid": [p for p in scan.grid if round(p.angle) in (-150, -75, 0, 75, 150)]})
    result = scan_result_from_plain(every_75, BespokeWorkflowFactory(fragmentation=NoFragmentation()))
    assert result.task.grid_spacing == 75 and len(result.grid) == 5


def test_cache_only_fails_at_once_naming_the_missing_scans(tmp_path):
    run = runner.invoke(app, [
        "executor", "run", "--smiles", "CC(=O)Nc1ccccc1", "--workflow", "debug", "--cache-only",
        "--qc-spec", "psi4", "wb97x-d3bj", "def2-tzvpd", "--directory", str(tmp_path / "executor"),
    ])
    assert run.exit_code == 2
    assert "cache only, but 2 of 2 scans are not in the store" in run.output
    assert not (tmp_path / "executor" / "store" / "qc").exists()


def test_the_full_circle_and_minus_180_are_the_standard_full_scan():
    from bespoke_dask.schema import QCSpec, TorsionScanTask
    from bespoke_dask.schema.workflow import ConstrainedOptimizationSettings
    from bespoke_dask.stages.scan_file import normalised_angle

    common = dict(smiles="[CH3:1][OH:2]", grid_spacing=15, n_conformers=1, qc_spec=QCSpec(),
                  optimization=ConstrainedOptimizationSettings())
    full = TorsionScanTask(**common)
    assert TorsionScanTask(**common, scan_range=(-180, 180)).content_hash() == full.content_hash()
    assert TorsionScanTask(**common, scan_range=(-90, 90)).content_hash() != full.content_hash()
    assert normalised_angle(-180) == 180.0 and normalised_angle(-165.0) == -165.0 and normalised_angle(540) == 180.0
