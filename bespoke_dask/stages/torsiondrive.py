"""1-D torsion scans through torsiondrive's `td_api` state machine.

The scan never runs optimizations itself: each step hands back a wavefront of independent
constrained optimizations, and the caller runs them (serially, or in parallel on Dask) and
passes the results to `advance`. `run_torsiondrive` is the serial loop. `decided_jobs` names
the jobs of the next wavefront that the finished part of the current one already decides, so
that a parallel caller can start them while the rest of the wavefront still runs.
"""

import contextlib
import copy
import io
from collections import Counter
from collections.abc import Callable

import numpy as np
from geometric.nifty import ang2bohr, bohr2ang
from openff.toolkit import Molecule
from rdkit.Chem import AllChem
from torsiondrive import td_api
from torsiondrive.dihedral_scanner import normalize_dihedral

from bespoke_dask.schema import (
    ConstrainedOptimization,
    GridPoint,
    OptimizationResult,
    ScanState,
    ScanStep,
    TorsionScanResult,
    TorsionScanTask,
)
from bespoke_dask.schema.workflow import check_grid_spacing

BatchRunner = Callable[[list[ConstrainedOptimization]], list[OptimizationResult]]


def start(task: TorsionScanTask) -> ScanStep:
    """Generate starting conformers and return the first wavefront of the scan."""
    check_grid_spacing(task.grid_spacing)
    molecule, dihedral = scanned_molecule(task.smiles)
    molecule.generate_conformers(n_conformers=task.n_conformers)
    td_state = td_api.create_initial_state(
        dihedrals=[list(dihedral)],
        grid_spacing=[task.grid_spacing],
        elements=[atom.symbol for atom in molecule.atoms],
        init_coords=[(angstrom * ang2bohr).ravel().tolist() for angstrom in relaxed_conformers(molecule)],
        dihedral_ranges=None if task.scan_range is None else [list(task.scan_range)],
        energy_decrease_thresh=task.energy_decrease_thresh,
        energy_upper_limit=task.energy_upper_limit,
    )
    state = ScanState(
        task=task,
        mapped_smiles=molecule.to_smiles(mapped=True),
        dihedral=dihedral,
        td_state=td_state,
        grid_points=grid_points_total(task),
    )
    return _next_step(state)


def scanned_molecule(smiles: str) -> tuple[Molecule, tuple[int, int, int, int]]:
    """The molecule a scan task's `smiles` names, in the atom order of the scan's geometries, and
    the dihedral driven."""
    molecule = Molecule.from_smiles(smiles, allow_undefined_stereo=True)
    dihedral = driven_dihedral(molecule, *_central_bond(molecule))
    molecule.properties.pop("atom_map")
    return molecule, dihedral


def advance(state: ScanState, results: list[OptimizationResult]) -> ScanStep:
    """Feed the results of the pending wavefront (same order as its jobs) and step on."""
    if len(results) != len(state.pending):
        raise ValueError(f"expected {len(state.pending)} results, got {len(results)}")
    job_results: dict[str, list] = {}
    for grid_id, result in zip(state.pending, results):
        job_results.setdefault(grid_id, []).append(
            (result.initial_geometry, result.final_geometry, result.energy)
        )
    td_state = td_api.update_state(copy.deepcopy(state.td_state), job_results)
    return _next_step(
        state.model_copy(
            update={
                "td_state": td_state,
                "pending": [],
                "n_optimizations": state.n_optimizations + len(results),
                "grid_points_done": len(td_state["grid_status"]),
            }
        )
    )


def run_torsiondrive(task: TorsionScanTask, run_batch: BatchRunner) -> TorsionScanResult:
    """Run a whole scan, handing each wavefront to `run_batch`."""
    step = start(task)
    while step.result is None:
        step = advance(step.state, run_batch(step.jobs))
    return step.result


def decided_jobs(
    state: ScanState, jobs: list[ConstrainedOptimization], results: list[OptimizationResult]
) -> list[ConstrainedOptimization]:
    """Jobs of the next wavefront that the finished `jobs` of the pending one (with their
    `results`) have already decided.

    torsiondrive moves on from a grid point with the lowest result the wavefront found there,
    if it beats every earlier result there by `energy_decrease_thresh`: one optimization at
    each neighbour in range, from that geometry. A grid point whose jobs have all finished is
    decided. `advance` alone steps the scan, so a guess that turns out wrong (with an
    `energy_upper_limit`, a later global minimum can veto a job) costs work, never a result.
    """
    task = state.task
    running = Counter(state.pending) - Counter(_grid_id(job) for job in jobs)
    best: dict[str, OptimizationResult] = {}
    for job, result in zip(jobs, results):
        grid_id = _grid_id(job)
        if not running[grid_id] and (grid_id not in best or result.energy < best[grid_id].energy):
            best[grid_id] = result
    status = state.td_state["grid_status"]
    energies = [energy for grid in status.values() for *_, energy in grid] + [r.energy for r in results]
    threshold = 1e-5 if task.energy_decrease_thresh is None else task.energy_decrease_thresh
    angles = grid_angles(task.grid_spacing, task.scan_range)
    decided = []
    for grid_id, result in sorted(best.items()):
        earlier = [energy for *_, energy in status.get(grid_id, [])]
        if earlier and result.energy >= min(earlier) - threshold:
            continue
        if task.energy_upper_limit is not None and result.energy > min(energies) + task.energy_upper_limit:
            continue
        geometry = (np.asarray(result.final_geometry) * bohr2ang * ang2bohr).tolist()  # as td_api hands it on
        for side in (-task.grid_spacing, task.grid_spacing):
            neighbour = normalize_dihedral(int(grid_id) + side)  # in (-180, 180], as torsiondrive names it
            if neighbour in angles:
                decided.append(_job(state, str(neighbour), geometry))
    return decided


def restarted(job: ConstrainedOptimization, displacement: float = 0.1) -> ConstrainedOptimization:
    """`job` from another start geometry: every atom moved up to `displacement` bohr at random.

    For a grid point whose optimization failed. The moves are seeded by the job, so the
    restart of a job is always the same task (and hits the store).
    """
    rng = np.random.default_rng(int(job.content_hash()[:16], 16))
    geometry = np.asarray(job.geometry) + rng.uniform(-displacement, displacement, len(job.geometry))
    return job.model_copy(update={"geometry": geometry.tolist()})


def grid_points_total(task: TorsionScanTask) -> int:
    """How many grid angles the scan covers (24 for a full 15 degree scan: -180 is 180)."""
    return len(grid_angles(task.grid_spacing, task.scan_range))


def grid_angles(spacing: int, scan_range: tuple[int, int] | None) -> set[int]:
    """The angles torsiondrive visits for a 1-D scan (its grid and range rules)."""
    axis = range(-180 + spacing, 180 + spacing, spacing)
    if scan_range is None:
        return set(axis)
    low, high = scan_range
    if high > 180:  # a range across 180 degrees
        angles = {angle for angle in axis if angle >= low or angle <= high - 360}
    else:
        angles = {angle for angle in axis if low <= angle <= high}
    return angles | ({180} if low == -180 else set())


def _next_step(state: ScanState) -> ScanStep:
    with contextlib.redirect_stdout(io.StringIO()):  # td_api prints its progress
        next_jobs = td_api.next_jobs_from_state(state.td_state, verbose=False)
    if not next_jobs:
        return ScanStep(state=state, result=_result(state))
    pending, jobs = [], []
    for grid_id, geometries in sorted(next_jobs.items()):
        for geometry in geometries:
            pending.append(grid_id)
            jobs.append(_job(state, grid_id, geometry))
    return ScanStep(state=state.model_copy(update={"pending": pending}), jobs=jobs)


def _job(state: ScanState, grid_id: str, geometry: list[float]) -> ConstrainedOptimization:
    return ConstrainedOptimization(
        mapped_smiles=state.mapped_smiles,
        geometry=geometry,
        dihedral=state.dihedral,
        angle=float(grid_id),
        qc_spec=state.task.qc_spec,
        optimization=state.task.optimization,
    )


def _grid_id(job: ConstrainedOptimization) -> str:
    """The td_api grid id of a job's target angle."""
    return str(round(job.angle))


def _result(state: ScanState) -> TorsionScanResult:
    grid = []
    for grid_id, jobs in state.td_state["grid_status"].items():
        _, geometry, energy = min(jobs, key=lambda job: job[2])
        grid.append(GridPoint(angle=float(grid_id), energy=energy, geometry=list(geometry)))
    return TorsionScanResult(
        task=state.task,
        mapped_smiles=state.mapped_smiles,
        dihedral=state.dihedral,
        grid=sorted(grid, key=lambda point: point.angle),
        n_optimizations=state.n_optimizations,
    )


def _central_bond(molecule: Molecule) -> tuple[int, int]:
    """The atoms mapped 1 and 2 in the task SMILES."""
    by_map = {index: atom for atom, index in molecule.properties["atom_map"].items()}
    return by_map[1], by_map[2]


def driven_dihedral(molecule: Molecule, b: int, c: int) -> tuple[int, int, int, int]:
    """The driven dihedral a-b-c-d: the heaviest outer neighbours, lowest index on ties."""

    def outer(center: int, other: int) -> int:
        neighbours = [
            atom.molecule_atom_index
            for atom in molecule.atoms[center].bonded_atoms
            if atom.molecule_atom_index != other
        ]
        return min(neighbours, key=lambda i: (-molecule.atoms[i].atomic_number, i))

    return outer(b, c), b, c, outer(c, b)


def relaxed_conformers(molecule: Molecule) -> list[np.ndarray]:
    """The molecule's conformers (angstrom), each minimized with MMFF94; as embedded where MMFF94
    has no parameters for the molecule.

    The scan's first optimizations start from these: from the embedder's geometries they are its
    longest (acetanilide's amide, GFN2-xTB: 36 gradients, against 14 from the relaxed conformer,
    to the same energy), and while they run the scan has nothing else to give the other workers.
    """
    rdkit_molecule = molecule.to_rdkit()
    if AllChem.MMFFHasAllMoleculeParams(rdkit_molecule):
        AllChem.MMFFOptimizeMoleculeConfs(rdkit_molecule, numThreads=1, maxIters=2000)
    return [np.asarray(conformer.GetPositions()) for conformer in rdkit_molecule.GetConformers()]
