"""MM torsion profiles (torsion-restrained relaxations) and their errors, checked against an
independently built OpenMM System (conftest.py) on synthetic scans."""

import numpy as np
import pytest
from synthetic_scans import (
    CCCO,
    CCCO_DIHEDRAL,
    CCOH,
    PHENOL,
    PHENOL_TORSION,
    PROPANOL,
    SAGE,
    build_force_field,
    single_points,
    with_k,
)

from bespoke_dask.schema import FitTarget
from bespoke_dask.stages.optimize.profiles import (
    ScanModel,
    _grid_neighbours,
    _moving_atoms,
    _rotate,
    check_grid_angles,
    dihedrals,
    qc_energies,
    qc_geometries,
    relaxed_profile,
)
from bespoke_dask.stages.optimize.metrics import profile_error, torsion_metrics


@pytest.fixture(scope="module")
def sage() -> str:
    return build_force_field(SAGE, [])


@pytest.fixture(scope="module")
def ccco_scan(propanol_targets):
    return propanol_targets[0].scan


def test_profile_error_aligns_at_the_qc_minimum():
    # QC minimum is point 1; MM is offset by 4 and wrong by 1 at point 2 only.
    error = profile_error([1.0, 0.0, 2.0], [5.0, 4.0, 7.0])
    assert error.rmse == pytest.approx(np.sqrt(1 / 3))
    assert error.max_error == pytest.approx(1.0)
    with pytest.raises(ValueError):
        profile_error([0.0, 1.0], [0.0])


def test_profile_error_counts_the_fitting_window_and_every_point():
    # QC 0, 4, 12 kcal/mol (12 is above the default 10 kcal/mol window); MM wrong by 1, 2 at points 1, 2.
    error = profile_error([0.0, 4.0, 12.0], [0.0, 5.0, 14.0])
    assert (error.n_points, error.n_points_all) == (2, 3)
    assert error.rmse == pytest.approx(np.sqrt(1 / 2)) and error.max_error == pytest.approx(1.0)
    assert error.rmse_all == pytest.approx(np.sqrt(5 / 3)) and error.max_error_all == pytest.approx(2.0)
    wide = profile_error([0.0, 4.0, 12.0], [0.0, 5.0, 14.0], energy_cutoff=20.0)
    assert wide.rmse == pytest.approx(wide.rmse_all) and wide.n_points == 3


def test_grid_neighbours_wrap_around_a_full_turn_only():
    assert _grid_neighbours([-150.0, -120.0, 180.0, 150.0]) == [[1, 2], [0], [0, 3], [2]]
    full = _grid_neighbours(list(range(-150, 181, 30)))
    assert full[0] == [1, 11] and full[11] == [0, 10] and all(len(n) == 2 for n in full)
    assert _grid_neighbours([0.0]) == [[]]


def test_rotation_turns_one_side_of_the_driven_bond(ccco_scan):
    from openff.toolkit import Molecule

    moving = _moving_atoms(Molecule.from_mapped_smiles(PROPANOL), CCCO_DIHEDRAL)
    assert set(moving) == {2, 3, 9, 10, 11}  # C3 (on the axis), its H's, O, and the O-H
    geometry = qc_geometries(ccco_scan)[0]
    turned = _rotate(geometry, 1, 2, moving, np.radians(40.0))
    before, after = (np.degrees(dihedrals(g[None], [CCCO_DIHEDRAL])[0, 0]) for g in (geometry, turned))
    assert (after - before + 180.0) % 360.0 - 180.0 == pytest.approx(40.0)
    distances = lambda g: np.linalg.norm(g[:, None] - g[None], axis=-1)  # noqa: E731
    assert distances(turned[moving]) == pytest.approx(distances(geometry[moving]))
    assert np.array_equal(np.delete(turned, moving, axis=0), np.delete(geometry, moving, axis=0))


def test_dihedrals_follow_the_grid_angles(ccco_scan):
    measured = np.degrees(dihedrals(qc_geometries(ccco_scan), [ccco_scan.dihedral])[:, 0])
    deviation = (measured - [point.angle for point in ccco_scan.grid] + 180.0) % 360.0 - 180.0
    assert np.abs(deviation).max() < 1.0  # the restraint (1000 kcal/mol/rad^2) holds within a degree
    check_grid_angles(ccco_scan)
    mirrored_grid = [point.model_copy(update={"angle": -point.angle}) for point in ccco_scan.grid]
    mirrored = ccco_scan.model_copy(update={"grid": mirrored_grid})
    with pytest.raises(ValueError, match="grid point"):
        check_grid_angles(mirrored)


def test_relaxation_under_the_true_force_field_reproduces_the_scan(ccco_scan, propanol_force_field):
    relaxed = relaxed_profile(propanol_force_field, ccco_scan)
    assert profile_error(qc_energies(ccco_scan), relaxed.energies).rmse < 1e-6
    assert np.abs(relaxed.geometries - qc_geometries(ccco_scan)).max() < 1e-3  # bohr


def test_relaxed_energies_are_single_points_of_relaxed_geometries(ccco_scan, sage):
    relaxed = relaxed_profile(sage, ccco_scan)
    independent = single_points(PROPANOL, sage, relaxed.geometries)
    assert np.abs(relaxed.energies - independent).max() < 1e-6  # kcal/mol: the restraint is excluded
    assert np.abs(relaxed.geometries - qc_geometries(ccco_scan)).max() > 1e-3  # bohr: the minimiser did move
    angles = np.degrees(dihedrals(relaxed.geometries, [ccco_scan.dihedral])[:, 0])
    deviation = (angles - [point.angle for point in ccco_scan.grid] + 180.0) % 360.0 - 180.0
    assert np.abs(deviation).max() < 1.0  # only the driven dihedral is held


def test_split_terms_are_linear_in_k(ccco_scan, propanol_force_field):
    """base + features @ k is the full MM energy, for the k's in the context and any other k's."""
    model = ScanModel(propanol_force_field, ccco_scan, split=[CCCO, CCOH])
    relaxed = model.relax()
    features = model.features(relaxed.geometries)
    assert np.abs(relaxed.base_energies + features @ np.array(CCCO.k + CCOH.k) - relaxed.energies).max() < 1e-9
    other_k = [0.3, -1.0, 2.0, 0.1, 0.0, -0.7]
    other = build_force_field(SAGE, [with_k(CCCO, other_k[:3]), with_k(CCOH, other_k[3:])])
    independent = single_points(PROPANOL, other, relaxed.geometries)
    assert np.abs(relaxed.base_energies + features @ other_k - independent).max() < 1e-9


def test_split_terms_cover_every_torsion_of_a_wildcard_parameter(phenol_target, phenol_force_field):
    model = ScanModel(phenol_force_field, phenol_target.scan, split=[PHENOL_TORSION])
    assert [term.torsions for term in model.terms] == [((2, 1, 0, 7), (6, 1, 0, 7))] * 4
    assert [term.periodicity for term in model.terms] == [1, 2, 3, 4]


def test_torsion_metrics_agree_with_an_independent_evaluation(propanol_targets, propanol_force_field, sage):
    metrics, pooled_errors = torsion_metrics({"initial": sage, "final": propanol_force_field}, propanol_targets)
    initial, final = pooled_errors["initial"], pooled_errors["final"]
    assert [m.smirks for m in metrics] == [[CCCO.smirks], [CCOH.smirks]]
    pooled = []
    for metric, target in zip(metrics, propanol_targets):
        qc = qc_energies(target.scan)
        geometries = relaxed_profile(sage, target.scan).geometries
        expected = profile_error(qc, single_points(PROPANOL, sage, geometries))
        assert metric.initial.rmse == pytest.approx(expected.rmse, abs=1e-6)
        assert metric.initial.max_error == pytest.approx(expected.max_error, abs=1e-6)
        assert metric.initial.rmse > 0.5  # Sage is not the truth
        assert metric.final.rmse < 1e-6  # the true force field is
        assert metric.dihedral == target.scan.dihedral and metric.mapped_smiles == PROPANOL
        assert metric.angles == [point.angle for point in target.scan.grid]
        assert len(metric.initial_energies) == len(metric.qc_energies) == len(qc)
        pooled.append(expected.rmse**2 * len(qc))
    n_points = sum(len(t.scan.grid) for t in propanol_targets)
    assert initial.rmse == pytest.approx(np.sqrt(sum(pooled) / n_points), abs=1e-6)
    assert initial.max_error == pytest.approx(max(m.initial.max_error for m in metrics))
    assert final.rmse < 1e-6


def test_charges_are_computed_once_per_molecule(phenol_target, monkeypatch):
    """The synthetic scan computed phenol's charges; the profiles reuse them (sqm is not run again)."""
    from openff.toolkit.utils.toolkits import AmberToolsToolkitWrapper

    from bespoke_dask.stages.charges import am1bcc_charges

    sqm_runs = []
    assign = AmberToolsToolkitWrapper.assign_partial_charges
    monkeypatch.setattr(
        AmberToolsToolkitWrapper, "assign_partial_charges", lambda *a, **k: sqm_runs.append(1) or assign(*a, **k)
    )
    for _ in range(2):
        relaxed_profile(SAGE, phenol_target.scan)
    assert sqm_runs == []
    assert sum(am1bcc_charges(PHENOL)) == pytest.approx(0.0, abs=1e-9)


def test_metrics_need_targets(sage):
    with pytest.raises(ValueError):
        torsion_metrics({"initial": sage}, [])


def test_fit_target_round_trips_as_json(phenol_target):
    assert FitTarget.model_validate_json(phenol_target.model_dump_json()) == phenol_target
