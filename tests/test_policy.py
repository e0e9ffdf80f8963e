"""Time limits and re-runs from settings and workflows; which torsions a partial fit keeps."""

import dask.config
import pytest
from distributed import KilledWorker

from bespoke_dask import partial, policy
from bespoke_dask.sandbox import StageStopped
from bespoke_dask.schema import (
    BespokeTorsion,
    BespokeWorkflow,
    NoFragmentation,
    QCSpec,
    StageTimeouts,
    TorsionTarget,
)
from bespoke_dask.schema.tasks import TorsionScanTask
from bespoke_dask.schema.workflow import ConstrainedOptimizationSettings


def test_a_workflow_limit_overrides_the_setting_and_settings_take_dask_times():
    with dask.config.set({"bespoke-dask.timeouts.qc": "2h", "bespoke-dask.timeouts.fit": None}):
        assert policy.stage_timeout("qc") == 7200
        assert policy.stage_timeout("qc", StageTimeouts(qc=5)) == 5
        assert policy.stage_timeout("optimize") is None
        assert policy.stage_timeout("scan-advance") is None  # light steps have no limit


def test_shipped_defaults_limit_every_stage():
    assert all(policy.timeout(limit) for limit in ("fragmentation", "qc", "torsiondrive", "fit"))
    assert policy.retries() == 2


def test_limits_and_allow_partial_are_in_no_key():
    workflow = BespokeWorkflow(smiles="[C:1]([H:2])([H:3])([H:4])[H:5]")
    other = workflow.model_copy(update={"timeouts": StageTimeouts(qc=1), "allow_partial": True})
    assert workflow.content_hash() == other.content_hash()
    assert workflow.without_fit_settings().content_hash() == other.without_fit_settings().content_hash()


def test_fragmentation_depends_only_on_the_molecule_targets_and_fragmenter():
    workflow = BespokeWorkflow(smiles="[C:1]([H:2])([H:3])([H:4])[H:5]")
    other_level = workflow.model_copy(update={"qc_spec": QCSpec(program="psi4", method="hf", basis="sto-3g"),
                                              "prior_width": 2.0, "id": "7"})
    assert other_level.fragmentation_input() == workflow.fragmentation_input()
    other_fragmenter = workflow.model_copy(update={"fragmentation": NoFragmentation()})
    assert other_fragmenter.fragmentation_input() != workflow.fragmentation_input()


def test_only_deaths_are_run_again():
    assert policy.worker_died(KilledWorker("qc-1", None, 0))
    assert policy.worker_died(StageStopped("qc: its process died (exit code -9)"))
    assert not policy.worker_died(StageStopped("qc: cancelled", cancelled=True))
    assert not policy.worker_died(RuntimeError("SCF did not converge"))


def _target(name: str) -> TorsionTarget:
    scan = TorsionScanTask(
        smiles=name, grid_spacing=30, n_conformers=1, qc_spec=QCSpec(),
        optimization=ConstrainedOptimizationSettings(),
    )
    parameter = BespokeTorsion(smirks=f"[*:1]~[{name}:2]", periodicities=[1], phases=[0.0], k=[0.0], idivf=[1.0])
    return TorsionTarget(parameters=[parameter], scan=scan)


def _outcomes_with_made_up_scan_errors(targets, failing):
    outcomes = {}
    for target in targets:
        key = target.scan.content_hash()
        if target.scan.smiles in failing:
            try:
                raise RuntimeError(f"scan of {target.scan.smiles} failed: QCError: boom") from ValueError("boom")
            except RuntimeError as error:
                outcomes[key] = error
        else:
            outcomes[key] = object()  # stands for a TorsionScanResult
    return outcomes


def test_without_allow_partial_every_failed_torsion_is_named():
    targets = [_target(name) for name in ("C", "N", "O")]
    outcomes = _outcomes_with_made_up_scan_errors(targets, {"N", "O"})
    with pytest.raises(partial.TorsionsFailed) as raised:
        partial.fitted_and_skipped(targets, outcomes, allow_partial=False)
    message = str(raised.value)
    assert message.startswith("2 of 3 torsiondrives failed (allow_partial fits the others): ")
    assert "scan of N failed" in message and "scan of O failed" in message


def test_with_allow_partial_the_rest_is_fitted_and_the_failed_listed():
    targets = [_target(name) for name in ("C", "N", "O")]
    outcomes = _outcomes_with_made_up_scan_errors(targets, {"N"})
    kept, skipped = partial.fitted_and_skipped(targets, outcomes, allow_partial=True)
    assert [t.scan.smiles for t in kept] == ["C", "O"]
    assert [(s.smiles, s.error) for s in skipped] == [("N", "ValueError: boom")]


def test_with_allow_partial_nothing_left_is_still_an_error():
    targets = [_target("C")]
    with pytest.raises(partial.TorsionsFailed, match="every torsiondrive failed: scan of C"):
        partial.fitted_and_skipped(targets, _outcomes_with_made_up_scan_errors(targets, {"C"}), True)
