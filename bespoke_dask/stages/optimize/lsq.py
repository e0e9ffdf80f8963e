"""The built-in fitter: linear least squares of the bespoke torsion k's with a Gaussian prior.

At fixed geometries the MM energy is linear in the bespoke k's (kcal/mol):

    E(x) = base(x) + F(x) @ k,   F_j(x) = sum over the torsions of k_j of (1 + cos(n_j phi - phase_j)) / idivf_j

The objective is ForceBalance's TorsionProfile target (one per scan, weights normalised per
scan) plus its L2 prior, research/forcebalance.md §4 and §8:

    sum_scans sum_i w_i / denom^2 (dMM_i - dQC_i)^2  +  PRIOR_WEIGHT sum_j ((k_j - k0_j) / prior_width)^2

with d. = energy relative to the scan's QC-minimum grid point. MM energies are the restrained
minima of profiles.py (`ScanModel.relax`, the same protocol as the metrics). The fit is damped
Gauss-Newton: relax under the current k's, solve the problem linearised at those geometries
(dE_relaxed/dk = F(x_relaxed) at a minimum, so its gradient is exact), and move towards that
solution, halving the step until the re-relaxed objective goes down. The relaxed energies are
only piecewise smooth in k (a relaxation can change basin), so undamped iteration can cycle;
with the line search the objective never rises and the last k's are the best seen.

Every k is bounded to |k| <= K_LIMIT so that a weakly determined term can never run away.
"""

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

from bespoke_dask.schema import BespokeTorsion, FitTarget, LeastSquaresSettings, TorsionProfileSettings
from bespoke_dask.stages.optimize.profiles import ScanModel, check_grid_angles, load_force_field, qc_energies

logger = logging.getLogger(__name__)

K_LIMIT = 20.0  # kcal/mol; bound on every fitted k (Sage's largest torsion k is ~8 kcal/mol)
PRIOR_WEIGHT = 1.0  # lambda, ForceBalance's penalty_additive as BespokeFit sets it
PRIOR_SHARE_LIMIT = 0.5  # a k whose posterior precision is mostly prior is not determined by the data
NOISE_FLOOR = 0.01  # kcal/mol; residual per grid point assumed at least, so a perfect fit keeps an uncertainty


def torsion_profile_weights(qc_kcal: np.ndarray, settings: TorsionProfileSettings) -> np.ndarray:
    """ForceBalance's TorsionProfile weights of grid points with QC energies `qc_kcal`, summing to 1.

    Attenuated: 1/denom below denom (kcal/mol above the QC minimum), 1/sqrt(denom^2 + (E - denom)^2)
    above it, 0 above energy_cutoff. Not attenuated: uniform.
    """
    relative = np.asarray(qc_kcal, dtype=float) - np.min(qc_kcal)
    denom = settings.energy_denominator
    if settings.attenuate:
        weights = np.where(relative < denom, 1.0 / denom, 1.0 / np.sqrt(denom**2 + (relative - denom) ** 2))
        weights[relative > settings.energy_cutoff] = 0.0
    else:
        weights = np.ones_like(relative)
    return weights / weights.sum()


@dataclass(frozen=True)
class _Rows:
    """One scan's weighted linear system at one set of relaxed geometries: residual = design @ k - target."""

    design: np.ndarray  # (n_points, n_k), sqrt(w)/denom * (F_i - F_ref)
    target: np.ndarray  # (n_points,), kcal/mol, sqrt(w)/denom * (dQC_i - dbase_i)
    # F_ref, E_ref: the weighted means over the scan (a fitted offset) or the QC-minimum point
    weight_sum: float  # sum of w/denom^2 (1/denom^2 per scan)
    n_points: int  # grid points with a non-zero weight


class _Scan:
    """A scan, its weights and its OpenMM model with the bespoke terms split out."""

    def __init__(self, force_field, fit_target: FitTarget, parameters, settings, target_settings):
        check_grid_angles(fit_target.scan)
        self.model = ScanModel(force_field, fit_target.scan, settings.restraint_k, split=parameters)
        self.qc = qc_energies(fit_target.scan)
        self.reference = int(np.argmin(self.qc))
        weights = torsion_profile_weights(self.qc, target_settings)
        self.scale = np.sqrt(weights) / target_settings.energy_denominator
        self.n_points = int(np.count_nonzero(weights))
        self.offset = settings.reference == "offset"

    def _reference(self, values: np.ndarray) -> np.ndarray:
        """What `values` (per grid point) are measured from: their weighted mean, or the QC-minimum point's."""
        if self.offset:
            return np.average(values, axis=0, weights=self.scale**2)
        return values[self.reference]

    def rows(self, k: np.ndarray) -> _Rows:
        """Relax under `k` (kcal/mol) and linearise there."""
        self.model.set_k(k)
        relaxed = self.model.relax()
        features = self.model.features(relaxed.geometries)
        target = self.qc - relaxed.base_energies
        design, target = features - self._reference(features), target - self._reference(target)
        weight_sum = float(np.sum(self.scale**2))
        return _Rows(design * self.scale[:, None], target * self.scale, weight_sum, self.n_points)


def fit_lsq(
    force_field: str,
    parameters: list[BespokeTorsion],
    targets: list[FitTarget],
    settings: LeastSquaresSettings,
    target: TorsionProfileSettings,
    prior_width: float,
) -> list[BespokeTorsion]:
    """Fit the k's of `parameters` (all together) to the scans of `targets`; return them refitted.

    `force_field` is OFFXML text holding `parameters` at the end of <ProperTorsions>; their
    current k's are the prior's centre and the starting point. `prior_width` is in kcal/mol.
    Each returned parameter carries `k_uncertainty` (kcal/mol) and `k_determined`, see `_posterior`.
    """
    if not parameters:
        return []
    if prior_width <= 0:
        raise ValueError(f"prior_width must be positive, got {prior_width}")
    force_field = load_force_field(force_field)
    scans = [_Scan(force_field, fit_target, parameters, settings, target) for fit_target in targets]
    k0 = np.array([k for parameter in parameters for k in parameter.k], dtype=float)
    free = np.ones(len(k0), dtype=bool)
    k, rows = _damped_gauss_newton(scans, k0, settings, prior_width, free)
    std, determined = _posterior(rows, k, prior_width)
    if settings.hold_undetermined and determined.any() and not determined.all():
        # k's the scans cannot see stay exactly where they started; the others are refitted around them
        k, rows = _damped_gauss_newton(scans, k0, settings, prior_width, determined)
        std, _ = _posterior(rows, k, prior_width)
    elif settings.hold_undetermined and not determined.any():
        k = k0
    return _with_k(parameters, k, std, determined)


def _damped_gauss_newton(scans, k0, settings, prior_width, free) -> tuple[np.ndarray, list[_Rows]]:
    """Damped Gauss-Newton on the relaxed objective: the k's and their rows (at those k's).

    Each iteration solves the problem linearised at the current relaxed geometries and moves
    towards its solution, halving the step until the re-relaxed objective goes down: no step
    that raises the true objective is ever taken, so the last k's are the best seen. Stops when
    the linearised problem promises less than `objective_tolerance` (relative), when an
    accepted step lowers the objective by less than that or moves no k by more than
    `tolerance`, or when no step along the Gauss-Newton direction lowers the objective (a
    local minimum, to the resolution of the relaxations). Only the `free` k's move.
    """
    k = np.clip(k0, -K_LIMIT, K_LIMIT)
    rows = [scan.rows(k) for scan in scans]
    objective = _objective(rows, k, k0, prior_width)
    relaxations, fraction = 1, 1.0
    for iteration in range(1, max(settings.max_iterations, 1) + 1):
        target = _solve(rows, k0, prior_width, free)
        step, size = target - k, float(np.max(np.abs(target - k)))
        promised = objective - _objective(rows, target, k0, prior_width)
        logger.debug(
            "lsq iteration %d: objective %.6g; the linearised problem promises %.3g with max |dk| %.3g",
            iteration, objective, promised, size,
        )
        if size <= settings.tolerance or promised <= settings.objective_tolerance * objective:
            return _done(k, rows, objective, iteration, relaxations, "converged")
        fraction = min(1.0, 2.0 * fraction)  # start where the last line search ended, one doubling up
        for _ in range(settings.max_step_halvings + 1):
            trial = k + fraction * step
            trial_rows = [scan.rows(trial) for scan in scans]
            relaxations += 1
            trial_objective = _objective(trial_rows, trial, k0, prior_width)
            logger.debug("lsq   %.4g of the step: objective %.6g", fraction, trial_objective)
            if trial_objective < objective or fraction * size <= settings.tolerance:
                break
            fraction /= 2.0
        if trial_objective >= objective:
            reason = "stopped: no lower objective along the Gauss-Newton step"
            return _done(k, rows, objective, iteration, relaxations, reason)
        decrease = objective - trial_objective
        k, rows, objective = trial, trial_rows, trial_objective
        if fraction * size <= settings.tolerance or decrease <= settings.objective_tolerance * (objective + decrease):
            return _done(k, rows, objective, iteration, relaxations, "converged")
    logger.warning(
        "lsq did not converge in %d iterations (objective %.4g); keeping the last k's, the lowest-objective ones",
        settings.max_iterations, objective,
    )
    return k, rows


def _done(k, rows, objective, iterations, relaxations, reason) -> tuple[np.ndarray, list[_Rows]]:
    logger.info(
        "lsq %s after %d iterations (%d relaxations): objective %.4g", reason, iterations, relaxations, objective
    )
    return k, rows


def _stack(rows: list[_Rows], n_k: int) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros((0, n_k)), np.zeros(0)
    return np.vstack([r.design for r in rows]), np.concatenate([r.target for r in rows])


def _objective(rows, k, k0, prior_width) -> float:
    design, target = _stack(rows, len(k))
    return float(np.sum((design @ k - target) ** 2) + PRIOR_WEIGHT * np.sum(((k - k0) / prior_width) ** 2))


def _solve(rows, k0, prior_width, free) -> np.ndarray:
    """The bounded minimiser of the linearised objective over the `free` k's, the others at k0
    (scipy's bounded-variable least squares)."""
    design, target = _stack(rows, len(k0))
    k = np.clip(k0, -K_LIMIT, K_LIMIT).copy()
    if not free.any():
        return k
    target = target - design[:, ~free] @ k[~free]
    prior = np.sqrt(PRIOR_WEIGHT) / prior_width
    matrix = np.vstack([design[:, free], prior * np.eye(int(free.sum()))])
    vector = np.concatenate([target, prior * k0[free]])
    k[free] = lsq_linear(matrix, vector, bounds=(-K_LIMIT, K_LIMIT), method="bvls").x
    return k


def _posterior(rows, k, prior_width) -> tuple[np.ndarray, np.ndarray]:
    """Posterior standard deviation (kcal/mol) and determinedness of each k.

    Conjugate Gaussian model of the objective: covariance s^2 A^-1 with A = D^T D + lambda/width^2 I
    the prior-regularised normal matrix and s^2 the residual variance (weighted residual sum of
    squares over the effective degrees of freedom, at least NOISE_FLOOR per point), as curve_fit
    scales its covariance. A k is determined when the data supply most of its posterior precision,
    i.e. its prior share (lambda/width^2) (A^-1)_jj is below PRIOR_SHARE_LIMIT; a k the scans
    cannot see (P15: odd terms about a symmetric bond) has a share near 1 and stays near its start.
    """
    design, target = _stack(rows, len(k))
    prior_precision = PRIOR_WEIGHT / prior_width**2
    inverse = np.linalg.inv(design.T @ design + prior_precision * np.eye(len(k)))
    n_points = sum(r.n_points for r in rows)
    dof = max(n_points - float(np.trace(design.T @ design @ inverse)), 1.0)
    floor = NOISE_FLOOR**2 * sum(r.weight_sum for r in rows)
    variance = max(float(np.sum((design @ k - target) ** 2)), floor) / dof
    std = np.sqrt(variance * np.diag(inverse))
    determined = prior_precision * np.diag(inverse) < PRIOR_SHARE_LIMIT
    return std, determined


def _with_k(parameters, k, std, determined) -> list[BespokeTorsion]:
    fitted, start = [], 0
    for parameter in parameters:
        end = start + len(parameter.k)
        fitted.append(
            parameter.model_copy(
                update={
                    "k": [float(value) for value in k[start:end]],
                    "k_uncertainty": [float(value) for value in std[start:end]],
                    "k_determined": [bool(value) for value in determined[start:end]],
                }
            )
        )
        start = end
    return fitted
