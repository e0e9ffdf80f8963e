"""The built-in least-squares fitter on synthetic scans with known k's (conftest.py).

Tolerances: the synthetic "QC" energies are exact MM relaxations under the true k's, so with a
flat prior (width 1000 kcal/mol, bias < 1e-5) the fit must return the true k's up to the
self-consistency tolerance (1e-3 kcal/mol) and minimiser noise: we allow 5e-3 kcal/mol (measured
< 1e-5). With BespokeFit's prior (width 6, lambda 1) the k's are pulled towards their start
by (lambda/width^2) / (data curvature) of the distance, a few hundredths of a kcal/mol here.
"""

import numpy as np
import pytest
from synthetic_scans import CCCO, CCOH, PHENOL_TORSION, SAGE, build_force_field, with_k

from bespoke_dask.schema import LeastSquaresSettings, TorsionProfileSettings
from bespoke_dask.stages.optimize.lsq import K_LIMIT, fit_lsq, torsion_profile_weights
from bespoke_dask.stages.optimize.metrics import profile_error
from bespoke_dask.stages.optimize.profiles import qc_energies, relaxed_profile

FLAT = 1000.0  # kcal/mol, a prior too wide to matter
EXACT = 5e-3  # kcal/mol


def fit(parameters, targets, prior_width, fixed=()):
    """fit_lsq on Sage + `fixed` + `parameters`, BespokeFit's default settings otherwise."""
    force_field = build_force_field(SAGE, [*fixed, *parameters])
    return fit_lsq(force_field, parameters, targets, LeastSquaresSettings(), TorsionProfileSettings(), prior_width)


def profile_rmse(parameters, targets, fixed=()) -> float:
    force_field = build_force_field(SAGE, [*fixed, *parameters])
    return max(
        profile_error(qc_energies(t.scan), relaxed_profile(force_field, t.scan).energies).rmse for t in targets
    )


def test_torsion_profile_weights_are_forcebalances():
    qc = np.array([0.0, 0.5, 3.0, 12.0]) + 7.0  # kcal/mol, any offset
    weights = torsion_profile_weights(qc, TorsionProfileSettings())
    expected = np.array([1.0, 1.0, 1.0 / np.sqrt(1.0 + 2.0**2), 0.0])
    assert weights == pytest.approx(expected / expected.sum())
    flat = torsion_profile_weights(qc, TorsionProfileSettings(attenuate=False))
    assert flat == pytest.approx(np.full(4, 0.25))


@pytest.mark.parametrize("start", [[0.0, 0.0, 0.0], [3.0, -2.0, -1.0]])
def test_recovers_known_ks(propanol_targets, start):
    ccco_scan = propanol_targets[:1]
    (fitted,) = fit([with_k(CCCO, start)], ccco_scan, FLAT, fixed=[CCOH])
    assert fitted.k == pytest.approx(CCCO.k, abs=EXACT)
    assert fitted.k_determined == [True, True, True]
    assert profile_rmse([fitted], ccco_scan, fixed=[CCOH]) < 1e-3  # kcal/mol


def test_default_prior_shrinks_ks_slightly_towards_their_start(propanol_targets):
    ccco_scan = propanol_targets[:1]
    start = [0.0, 0.0, 0.0]
    (fitted,) = fit([with_k(CCCO, start)], ccco_scan, 6.0, fixed=[CCOH])
    error = np.array(fitted.k) - CCCO.k
    assert np.abs(error).max() < 0.1
    shift, truth_shift = np.subtract(fitted.k, start), np.subtract(CCCO.k, start)
    assert np.linalg.norm(shift) < np.linalg.norm(truth_shift)  # ridge: shrunk towards the start
    assert fitted.k_determined == [True, True, True]
    assert profile_rmse([fitted], ccco_scan, fixed=[CCOH]) < 0.1


def test_prior_keeps_an_undetermined_k_near_its_start(phenol_target):
    """Both c-c-O-H torsions of phenol share the parameter; at phi and phi + 180 their k1 terms cancel (P15)."""
    start = [0.7, 1.0, 0.5, 0.0]
    (fitted,) = fit([with_k(PHENOL_TORSION, start)], [phenol_target], 6.0)
    assert fitted.k[0] == pytest.approx(start[0], abs=0.1)
    assert fitted.k_determined[0] is False
    assert fitted.k_determined[1] is True and fitted.k_determined[3] is True
    assert fitted.k[1] == pytest.approx(PHENOL_TORSION.k[1], abs=0.05)
    assert fitted.k[3] == pytest.approx(PHENOL_TORSION.k[3], abs=0.05)
    assert fitted.k_uncertainty[0] > 3 * max(fitted.k_uncertainty[1], fitted.k_uncertainty[3])


def test_two_torsions_are_fitted_together(propanol_targets):
    start = [with_k(CCCO, [2.0, -1.0, 0.3]), with_k(CCOH, [-0.5, 1.0, 1.5])]
    fitted = fit(start, propanol_targets, FLAT)
    assert [p.smirks for p in fitted] == [CCCO.smirks, CCOH.smirks]
    for parameter, truth in zip(fitted, [CCCO, CCOH]):
        assert parameter.k == pytest.approx(truth.k, abs=EXACT)
        assert parameter.k_determined == [True, True, True]
        assert len(parameter.k_uncertainty) == 3 and all(0 < s < 0.1 for s in parameter.k_uncertainty)
        assert parameter.periodicities == truth.periodicities and parameter.phases == truth.phases
    assert profile_rmse(fitted, propanol_targets) < 1e-3


def test_a_parameter_without_data_stays_at_its_start(propanol_targets):
    """The C-C-C-O scan barely moves the C-C-O-H torsion: CCOH keeps its start and is flagged."""
    start = [with_k(CCCO, [0.0, 0.0, 0.0]), with_k(CCOH, [0.3, 0.2, 0.1])]
    fitted = fit(start, propanol_targets[:1], 6.0)
    assert fitted[1].k == pytest.approx([0.3, 0.2, 0.1], abs=0.05)
    assert fitted[1].k_determined == [False, False, False]


def test_ks_stay_within_bounds(phenol_target):
    (fitted,) = fit([with_k(PHENOL_TORSION, [30.0, 1.0, 0.0, 0.0])], [phenol_target], 6.0)
    assert max(abs(k) for k in fitted.k) <= K_LIMIT
    assert fitted.k[0] == pytest.approx(K_LIMIT)  # the prior wants 30, the data do not care


def test_nothing_to_fit_and_bad_prior(phenol_target):
    force_field = build_force_field(SAGE, [PHENOL_TORSION])
    settings, target = LeastSquaresSettings(), TorsionProfileSettings()
    assert fit_lsq(force_field, [], [phenol_target], settings, target, 6.0) == []
    with pytest.raises(ValueError, match="prior_width"):
        fit_lsq(force_field, [PHENOL_TORSION], [phenol_target], settings, target, 0.0)


def test_parameter_missing_from_the_force_field_is_an_error(phenol_target):
    with pytest.raises(ValueError, match="no proper torsion"):
        fit_lsq(SAGE, [PHENOL_TORSION], [phenol_target], LeastSquaresSettings(), TorsionProfileSettings(), 6.0)
