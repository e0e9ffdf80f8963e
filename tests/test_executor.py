"""End to end through BespokeDaskExecutor on a real LocalCluster: fragment, GFN2-xTB scans, fit."""

import pytest
from openff.toolkit import ForceField, Molecule

from bespoke_dask import BespokeDaskExecutor, BespokeWorkerConfig, BespokeWorkflowFactory, wait_until_complete
from bespoke_dask.schema import ForceBalanceSettings, QCSpec

pytestmark = pytest.mark.slow

ANISOLE = "COc1ccccc1"


def bespoke_smirks(result) -> set[str]:
    return {parameter.smirks for parameter in result.results.parameters}


def torsion_smirks_of(force_field: ForceField, smiles: str) -> set[str]:
    labels = force_field.label_molecules(Molecule.from_smiles(smiles).to_topology())[0]
    return {parameter.smirks for parameter in labels["ProperTorsions"].values()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Three workflows at once: least squares, ForceBalance (sharing its scan), and a broken one."""
    factory = BespokeWorkflowFactory.from_name("debug")
    lsq = factory.optimization_schema_from_smiles(ANISOLE)
    forcebalance = lsq.model_copy(update={"optimizer": ForceBalanceSettings(max_iterations=3)})
    broken = lsq.model_copy(update={"qc_spec": QCSpec(program="gaussian", method="hf", basis="sto-3g")})
    with BespokeDaskExecutor(
        n_fragmenter_workers=1,
        n_qc_compute_workers=2,
        n_optimizer_workers=1,
        qc_compute_worker_config=BespokeWorkerConfig(n_cores=1),
        directory=tmp_path_factory.mktemp("executor"),
    ) as executor:
        executor.client.get_task_stream(count=1)  # the scheduler records its task stream from now on
        ids = [executor.submit(w) for w in (lsq, forcebalance, broken)]
        results = [wait_until_complete(i) for i in ids]
        store = executor.directory / "store"
        stream = executor.client.get_task_stream(count=100_000)
    computed = [
        (str(entry["key"]).rsplit("-", 1)[0], run["start"], run["stop"])
        for entry in stream for run in entry["startstops"] if run["action"] == "compute"
    ]
    return dict(zip(("lsq", "forcebalance", "broken"), results)), store, computed


@pytest.mark.parametrize("optimizer", ["lsq", "forcebalance"])
def test_the_fit_adds_a_bespoke_torsion_and_lowers_the_rmse(finished, optimizer):
    result = finished[0][optimizer]
    assert result.status == "success", result.error
    force_field = result.bespoke_force_field
    assert bespoke_smirks(result) and bespoke_smirks(result) <= torsion_smirks_of(force_field, ANISOLE)
    assert result.results.final.rmse < result.results.initial.rmse
    assert "parameterize" not in result.refit_force_field


def test_every_stage_reports_success_and_scan_progress(finished):
    result = finished[0]["lsq"]
    assert [stage.status for stage in result.stages] == ["success"] * 3
    (scan,) = result.stage("qc-generation").scans
    assert scan.grid_points_done == scan.grid_points == 12


def test_both_fits_share_one_fragmentation_and_one_scan(finished):
    """So does the broken workflow's fragmentation: only its QC spec differs, and fragments do not depend on it."""
    store = finished[1]
    assert len(list((store / "fragment").glob("*/*.json"))) == 1
    assert len(list((store / "targets").glob("*/*.json"))) == 2  # scan tasks carry the QC spec
    assert len(list((store / "scan").glob("*/*.json"))) == 1


def test_the_molecules_charges_are_computed_once_while_its_scans_run(finished):
    """Three workflows, one scanned molecule: one `charges` task, which ends before the last QC job."""
    store, computed = finished[1], finished[2]
    (charges,) = [(start, stop) for stage, start, stop in computed if stage == "charges"]
    assert len(list((store / "charges").glob("*/*.json"))) == 1
    assert charges[1] < max(stop for stage, _, stop in computed if stage == "qc")


def test_the_scan_starts_jobs_of_its_next_wavefront_before_its_wavefront_ends(finished):
    """bespoke-dask.scan-ahead: an optimization runs right across a scan step. With wavefronts in
    step none can: a step waits for its whole wavefront, the next wavefront for the step (one scan here)."""
    computed = finished[2]
    optimizations = [(start, stop) for stage, start, stop in computed if stage == "qc"]
    steps = [(start, stop) for stage, start, stop in computed if stage == "scan-advance"]
    assert len(optimizations) >= 12 and steps
    assert any(start < step_start and step_stop < stop for start, stop in optimizations for step_start, step_stop in steps)


def test_a_broken_workflow_fails_alone_with_its_stage_and_reason(finished):
    result = finished[0]["broken"]
    assert result.status == "errored"
    assert result.error.startswith("qc-generation: ")
    assert "gaussian" in result.error.lower()
