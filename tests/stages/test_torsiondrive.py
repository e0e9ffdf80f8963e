"""Torsion scans through td_api: wavefronts handed to a batch runner, serial or on Dask."""

import numpy as np
import pytest
from distributed import Client, LocalCluster
from geometric.nifty import bohr2ang
from openff.toolkit import Molecule
from openff.units import unit

from bespoke_dask.schema import ConstrainedOptimizationSettings, QCSpec, TorsionScanTask
from bespoke_dask.stages import torsiondrive
from bespoke_dask.stages.qc import optimize_constrained

# methyl ethyl ether, scanning the O-CH2 bond
TASK = TorsionScanTask(
    smiles="[H]C([H])([H])[O:1][C:2]([H])([H])C([H])([H])[H]",
    grid_spacing=60,
    n_conformers=2,
    qc_spec=QCSpec(program="xtb", method="gfn2xtb", basis=None),
    optimization=ConstrainedOptimizationSettings(),
)


def run_serially(jobs):
    return [optimize_constrained(job) for job in jobs]


def test_the_first_wavefront_drives_the_mapped_bond():
    step = torsiondrive.start(TASK)
    assert step.result is None and step.jobs
    a, b, c, d = step.state.dihedral
    assert (b, c) == (4, 5)  # the atoms mapped 1 and 2
    assert step.state.grid_points == 6
    assert all(len(job.geometry) == 3 * 12 for job in step.jobs)
    assert len(step.state.pending) == len(step.jobs)


def _mmff_energy_and_force(molecule, positions):
    """MMFF94 energy (kcal/mol) and largest force component (kcal/mol/A) at `positions` (A)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    rdkit_molecule = Chem.Mol(molecule.to_rdkit())
    rdkit_molecule.RemoveAllConformers()
    conformer = Chem.Conformer(len(positions))
    for index, xyz in enumerate(positions):
        conformer.SetAtomPosition(index, xyz.tolist())
    rdkit_molecule.AddConformer(conformer)
    force_field = AllChem.MMFFGetMoleculeForceField(rdkit_molecule, AllChem.MMFFGetMoleculeProperties(rdkit_molecule))
    return force_field.CalcEnergy(), max(map(abs, force_field.CalcGrad()))


def test_scans_start_from_conformers_relaxed_with_mmff94():
    molecule = Molecule.from_smiles("CC(=O)Nc1ccccc1")
    molecule.generate_conformers(n_conformers=3)
    embedded = [conformer.m_as(unit.angstrom) for conformer in molecule.conformers]
    relaxed = torsiondrive.relaxed_conformers(molecule)
    assert len(relaxed) == len(embedded)
    for before, after in zip(embedded, relaxed):
        energy_before, _ = _mmff_energy_and_force(molecule, before)
        energy_after, force_after = _mmff_energy_and_force(molecule, after)
        assert energy_after < energy_before - 1 and force_after < 0.1  # kcal/mol, kcal/mol/A
    first = torsiondrive.start(TASK).jobs[0]  # the scan's jobs start from relaxed conformers
    ether = Molecule.from_mapped_smiles(first.mapped_smiles)
    assert _mmff_energy_and_force(ether, np.asarray(first.geometry).reshape(-1, 3) * bohr2ang)[1] < 0.1


def test_molecules_mmff94_cannot_do_keep_their_embedded_conformers():
    molecule = Molecule.from_smiles("OB(O)c1ccccc1")  # MMFF94 has no boron
    molecule.generate_conformers(n_conformers=1)
    (relaxed,) = torsiondrive.relaxed_conformers(molecule)
    assert np.allclose(relaxed, molecule.conformers[0].m_as(unit.angstrom))


def test_advance_wants_one_result_per_job():
    step = torsiondrive.start(TASK)
    with pytest.raises(ValueError, match="expected"):
        torsiondrive.advance(step.state, [])


def test_serial_and_dask_wavefronts_give_identical_scans():
    serial = torsiondrive.run_torsiondrive(TASK, run_serially)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        with Client(cluster) as client:

            def run_on_dask(jobs):
                return client.gather([client.submit(optimize_constrained, job, pure=False) for job in jobs])

            parallel = torsiondrive.run_torsiondrive(TASK, run_on_dask)
    assert [p.angle for p in serial.grid] == [float(a) for a in range(-120, 181, 60)]
    assert [p.energy for p in parallel.grid] == [p.energy for p in serial.grid]
    assert parallel.n_optimizations == serial.n_optimizations > len(serial.grid)


@pytest.mark.parametrize(
    "spacing, scan_range, points",
    [(15, None, 24), (15, (-180, 180), 24), (30, None, 12), (15, (-90, 90), 13), (60, (120, 240), 3)],
)
def test_grid_point_totals_count_180_and_minus_180_once(spacing, scan_range, points):
    task = TASK.model_copy(update={"grid_spacing": spacing, "scan_range": scan_range})
    assert torsiondrive.grid_points_total(task) == points


def test_jobs_decided_early_are_jobs_the_next_wavefront_asks_for():
    wavefronts = []

    def run_and_record(jobs):
        results = run_serially(jobs)
        wavefronts.append((jobs, results))
        return results

    step = torsiondrive.start(TASK)
    states = []
    while step.result is None:
        states.append(step.state)
        step = torsiondrive.advance(step.state, run_and_record(step.jobs))
    decided = 0
    for state, (jobs, results), following in zip(states, wavefronts, [*wavefronts[1:], ([], [])]):
        asked_next = {job.content_hash() for job in following[0]}
        for finished in [slice(0, k) for k in range(1, len(jobs))] + [slice(k, None) for k in range(1, len(jobs))]:
            early = torsiondrive.decided_jobs(state, jobs[finished], results[finished])
            assert {job.content_hash() for job in early} <= asked_next
            decided += len(early)
    assert decided > 0


@pytest.mark.parametrize("spacing", [120, 72, 0, -15])
def test_a_grid_spacing_torsiondrive_would_scan_for_ever_is_refused(spacing):
    """torsiondrive's grid is -180 + k x spacing, but it files a result under the nearest multiple
    of the spacing: at 120 deg a result at 180 was filed under -120, and 180 asked for again and again."""
    from pydantic import ValidationError

    from bespoke_dask.schema import TorsionDriveSettings

    with pytest.raises(ValidationError, match="must divide 180"):
        TorsionDriveSettings(grid_spacing=spacing)
    with pytest.raises(ValueError, match="must divide 180"):
        torsiondrive.start(TASK.model_copy(update={"grid_spacing": spacing}))
    assert TorsionDriveSettings(grid_spacing=45).grid_spacing == 45
