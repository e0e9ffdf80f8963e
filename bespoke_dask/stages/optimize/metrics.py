"""How far MM torsion profiles are from the QC ones (kcal/mol), see `PROFILE_PROTOCOL`.

Errors are over the fitting window (grid points at most `energy_cutoff` above the QC minimum,
as the TorsionProfile weights) and over every grid point; every profile is aligned at the
scan's QC-minimum grid point, the convention of BespokeFit's and ForceBalance's reports.
"""

from collections.abc import Sequence

import numpy as np

from bespoke_dask.schema import FitTarget, ProfileError, TorsionMetrics, TorsionScanResult
from bespoke_dask.stages.optimize.profiles import (
    DEFAULT_ENERGY_CUTOFF,
    DEFAULT_RESTRAINT_K,
    load_force_field,
    qc_energies,
    relaxed_profile,
)


def profile_error(
    qc_kcal: Sequence[float], mm_kcal: Sequence[float], energy_cutoff: float = DEFAULT_ENERGY_CUTOFF
) -> ProfileError:
    """RMSE and max |error| (kcal/mol) of an MM profile, both profiles aligned at the QC minimum:
    over the grid points within `energy_cutoff` (kcal/mol) of the QC minimum, and over all."""
    qc = np.asarray(qc_kcal, dtype=float)
    return _error(_aligned(np.asarray(mm_kcal, dtype=float), qc) - _aligned(qc, qc), _in_window(qc, energy_cutoff))


def _aligned(energies: np.ndarray, qc: np.ndarray) -> np.ndarray:
    """`energies` relative to their value at the QC-minimum grid point."""
    if energies.shape != qc.shape or qc.size == 0:
        raise ValueError(f"profiles of {qc.size} and {energies.size} points cannot be compared")
    return energies - energies[int(np.argmin(qc))]


def _in_window(qc: np.ndarray, energy_cutoff: float) -> np.ndarray:
    """Grid points the fit weights: QC energy at most `energy_cutoff` above the QC minimum."""
    return qc - np.min(qc) <= energy_cutoff


def mm_profile(force_field, scan: TorsionScanResult, restraint_k: float = DEFAULT_RESTRAINT_K) -> np.ndarray:
    """The relaxed MM profile of `scan` (kcal/mol), aligned at the QC minimum."""
    return _aligned(relaxed_profile(load_force_field(force_field), scan, restraint_k).energies, qc_energies(scan))


def torsion_metrics(
    force_fields: dict[str, str],
    targets: list[FitTarget],
    restraint_k: float = DEFAULT_RESTRAINT_K,
    energy_cutoff: float = DEFAULT_ENERGY_CUTOFF,
) -> tuple[list[TorsionMetrics], dict[str, ProfileError]]:
    """Per-scan profiles and errors of the `base`, `initial` and `final` force fields (OFFXML), and
    each one's error pooled over the grid points of every scan (each aligned at its own QC minimum)."""
    if not targets:
        raise ValueError("no targets to evaluate")
    loaded = {name: load_force_field(offxml) for name, offxml in force_fields.items()}
    metrics, errors, windows = [], {name: [] for name in loaded}, []
    for target in targets:
        qc = qc_energies(target.scan)
        window = _in_window(qc, energy_cutoff)
        windows.append(window)
        profiles = {name: mm_profile(ff, target.scan, restraint_k) for name, ff in loaded.items()}
        for name, profile in profiles.items():
            errors[name].append(profile - _aligned(qc, qc))
        metrics.append(
            TorsionMetrics(
                smirks=target.smirks,
                mapped_smiles=target.scan.mapped_smiles,
                dihedral=target.scan.dihedral,
                angles=[point.angle for point in target.scan.grid],
                qc_energies=_aligned(qc, qc).tolist(),
                **{name: _error(errors[name][-1], window) for name in profiles},
                **{f"{name}_energies": profile.tolist() for name, profile in profiles.items()},
            )
        )
    window = np.concatenate(windows)
    return metrics, {name: _error(np.concatenate(values), window) for name, values in errors.items()}


def _error(errors: np.ndarray, window: np.ndarray) -> ProfileError:
    inside = errors[window]
    return ProfileError(
        rmse=float(np.sqrt(np.mean(inside**2))),
        max_error=float(np.max(np.abs(inside))),
        n_points=int(inside.size),
        rmse_all=float(np.sqrt(np.mean(errors**2))),
        max_error_all=float(np.max(np.abs(errors))),
        n_points_all=int(errors.size),
    )
