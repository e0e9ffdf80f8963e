"""ForceBalance backend, run for real (no mocks) on conftest's synthetic phenol scan.

The scan was made under PHENOL_TORSION's k's (k2 = 1.8, k4 = 0.3); every fit starts at START_K.
"""

import logging
import math
import os

import numpy as np
import openmm.app
import pytest
import scipy.optimize
from openff.toolkit import ForceField
from synthetic_scans import BOHR_TO_ANGSTROM, PHENOL_TORSION, SAGE, build_force_field, charged, with_k

from bespoke_dask.schema import FitTarget, ForceBalanceSettings, TorsionProfileSettings
from bespoke_dask.stages.optimize import forcebalance
from bespoke_dask.stages.optimize.forcebalance import ForceBalanceError, fit_forcebalance
from bespoke_dask.stages.optimize.metrics import profile_error
from bespoke_dask.stages.optimize.profiles import qc_energies, relaxed_profile

START_K = [0.0, 0.9, 0.0, 0.0]


@pytest.fixture(scope="module")
def start():
    return with_k(PHENOL_TORSION, START_K)


def fit_arguments(start, targets, max_iterations=1):
    return (
        build_force_field(SAGE, [start]),
        [start],
        targets,
        ForceBalanceSettings(max_iterations=max_iterations),
        TorsionProfileSettings(),
        6.0,
    )


class ObjectiveRecorder(logging.Handler):
    history = None

    def emit(self, record):
        self.history = getattr(record, "objective_history", self.history)


@pytest.fixture(scope="module")
def fit(start, phenol_target):
    """One real ForceBalance fit (one iteration, 20-40 s) and the objective history it logged."""
    recorder, module_logger = ObjectiveRecorder(), logging.getLogger(forcebalance.__name__)
    module_logger.addHandler(recorder)
    module_logger.setLevel(logging.INFO)
    try:
        (fitted,) = fit_forcebalance(*fit_arguments(start, [phenol_target]))
    finally:
        module_logger.removeHandler(recorder)
    return fitted, recorder.history


def profile_rmse(parameter, target: FitTarget) -> float:
    mm = relaxed_profile(build_force_field(SAGE, [parameter]), target.scan).energies
    return profile_error(qc_energies(target.scan), mm).rmse


def test_fit_lowers_objective_and_profile_error(fit, start, phenol_target):
    fitted, history = fit
    assert len(history) == 2  # objective at the start and after the one iteration
    assert history[-1][0] < 0.5 * history[0][0]
    assert all(map(math.isfinite, fitted.k)) and fitted.k != START_K
    assert abs(fitted.k[1] - PHENOL_TORSION.k[1]) < 0.5 * abs(START_K[1] - PHENOL_TORSION.k[1])
    assert profile_rmse(fitted, phenol_target) < 0.5 * profile_rmse(start, phenol_target)


def test_returned_parameters_are_clean(fit, start):
    fitted, _ = fit
    assert fitted.model_dump(exclude={"k"}) == start.model_dump(exclude={"k"})
    assert all(type(k) is float for k in fitted.k)
    text = build_force_field(SAGE, [fitted])
    assert "parameterize" not in text
    ForceField(text)  # loads without allow_cosmetic_attributes


def test_crash_is_one_clear_line(start, phenol_target, tmp_path, monkeypatch):
    monkeypatch.setattr(forcebalance.tempfile, "tempdir", str(tmp_path))
    scan = phenol_target.scan.model_copy(update={"dihedral": (2, 1, 0, 99)})  # phenol has 13 atoms
    arguments = fit_arguments(start, [phenol_target.model_copy(update={"scan": scan})])
    message = r"^ForceBalance failed (during setup|in iteration \d+): \S"
    with pytest.raises(ForceBalanceError, match=message) as error:
        fit_forcebalance(*arguments)
    assert "\n" not in str(error.value)
    assert os.listdir(tmp_path) == []  # work directory removed

    monkeypatch.setenv("BEFLOW_KEEP_TMP_FILES", "true")
    with pytest.raises(ForceBalanceError):
        fit_forcebalance(*arguments)
    (kept,) = tmp_path.iterdir()
    assert (kept / "optimize.in").exists() and (kept / "forcebalance.log").stat().st_size > 0


def test_project_files(start, phenol_target, tmp_path):
    scan = phenol_target.scan
    forcebalance.write_target(tmp_path, scan)
    lines = (tmp_path / "scan.xyz").read_text().splitlines()
    n_atoms = len(scan.grid[0].geometry) // 3
    assert len(lines) == len(scan.grid) * (n_atoms + 2)
    first_atom = np.array(lines[2].split()[1:], dtype=float)
    assert np.allclose(first_atom, np.array(scan.grid[0].geometry[:3]) * BOHR_TO_ANGSTROM)
    qdata = (tmp_path / "qdata.txt").read_text().splitlines()
    energies = [float(line.split()[1]) for line in qdata if line.startswith("ENERGY")]
    assert np.allclose(energies, [point.energy for point in scan.grid])
    assert "CONECT" in (tmp_path / "molecule.pdb").read_text()

    two_scans_of_one_molecule = [phenol_target, phenol_target]
    path = tmp_path / "ff.offxml"
    forcebalance.write_force_field(path, build_force_field(SAGE, [start]), [start], two_scans_of_one_molecule)
    written = ForceField(str(path), allow_cosmetic_attributes=True)
    torsion = written.get_parameter_handler("ProperTorsions").parameters[-1]
    assert torsion.smirks == start.smirks and torsion._parameterize == "k1, k2, k3, k4"
    library_charges = written.get_parameter_handler("LibraryCharges").parameters
    (library,) = [charge for charge in library_charges if charge.smirks == scan.mapped_smiles]
    assert np.allclose([q.m for q in library.charge], charged(scan.mapped_smiles).partial_charges.m)


def test_rejects_smirks_forcebalance_cannot_name(start, phenol_target):
    slashed = start.model_copy(update={"smirks": "[*:1]/[#6:2]=[#6:3]/[*:4]"})
    with pytest.raises(ValueError, match="'/'"):
        fit_forcebalance(*fit_arguments(slashed, [phenol_target]))


def test_compatibility_patches_are_idempotent():
    def patched():
        simulation = openmm.app.Simulation
        return ForceField.create_openmm_system, simulation.minimizeEnergy, scipy.optimize.fmin_l_bfgs_b

    forcebalance.apply_compatibility_patches()
    first = patched()
    forcebalance.apply_compatibility_patches()
    assert patched() == first
    assert os.environ["ENABLE_FB_SMIRNOFF_CACHING"] == "false"
