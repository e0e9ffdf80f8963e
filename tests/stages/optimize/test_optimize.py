"""The optimize stage: dispatch, the refit force field, metrics, and the nothing-to-fit path."""

import pytest
from openff.toolkit import ForceField
from synthetic_scans import CCCO, CCOH, PROPANOL, SAGE, with_k

from bespoke_dask.schema import BespokeWorkflow, FitResult, FitTarget, LeastSquaresSettings, NoFragmentation
from bespoke_dask.stages.optimize import NOTHING_TO_FIT, optimize


def workflow(**changes) -> BespokeWorkflow:
    settings = dict(
        smiles=PROPANOL, initial_force_field=SAGE, optimizer=LeastSquaresSettings(), fragmentation=NoFragmentation()
    )
    return BespokeWorkflow(**(settings | changes))


def test_nothing_to_fit_returns_the_force_field_unchanged(smirks_module):
    offxml = ForceField(SAGE).to_string()
    result = optimize(workflow(initial_force_field=offxml), [], [])
    assert result == FitResult(optimizer="lsq", parameters=[], force_field=offxml, message=NOTHING_TO_FIT)
    by_name = optimize(workflow(), [], [])
    assert by_name.message == NOTHING_TO_FIT and by_name.parameters == []
    assert ForceField(by_name.force_field).to_string() == offxml


def test_lsq_fit_of_two_torsions(smirks_module, propanol_targets):
    start = [with_k(CCCO, [0.0, 0.0, 0.0]), with_k(CCOH, [0.0, 0.0, 0.0])]
    result = optimize(workflow(), start, propanol_targets)

    assert result.optimizer == "lsq" and result.message is None and result.wall_time > 0
    assert [p.smirks for p in result.parameters] == [CCCO.smirks, CCOH.smirks]
    assert all(p.k_determined == [True, True, True] for p in result.parameters)
    assert [m.smirks for m in result.metrics] == [[CCCO.smirks], [CCOH.smirks]]
    assert result.final.rmse < 0.1 < result.initial.rmse  # kcal/mol
    assert result.base.rmse > 0.1  # plain Sage: these scans were made with other k's
    for error in (result.base, result.initial, result.final):
        assert error.n_points == error.n_points_all == 24  # propanol's profiles stay below 10 kcal/mol
        assert error.rmse == pytest.approx(error.rmse_all)
    for metric in result.metrics:
        assert metric.final.rmse < metric.initial.rmse

    refit = ForceField(result.force_field)  # no cosmetic attributes, or this raises
    for parameter in result.parameters:
        typed = refit.get_parameter_handler("ProperTorsions").parameters[parameter.smirks]
        assert [k.m_as("kilocalorie/mole") for k in typed.k] == pytest.approx(parameter.k)
    assert FitResult.model_validate_json(result.model_dump_json()) == result


def test_targets_must_name_a_parameter(smirks_module, propanol_targets):
    stray = FitTarget(smirks=["[*:1]~[#6:2]-[#6:3]~[*:4]"], scan=propanol_targets[0].scan)
    with pytest.raises(ValueError, match="not among the parameters"):
        optimize(workflow(), [CCCO], [stray])


def test_unknown_optimizer_is_an_error():
    from bespoke_dask.stages.optimize import _fitter

    with pytest.raises(ValueError, match="unknown optimizer"):
        _fitter("simplex")
