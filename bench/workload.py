"""What the speed benchmarks run: molecules, workflows, the serial reference scan and CPU sampling."""

import argparse
import contextlib
import multiprocessing
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dask.config
import psutil

from bespoke_dask import BespokeWorkflowFactory
from bespoke_dask.coordinator import SCANS
from bespoke_dask.schema import (
    NoFragmentation,
    QCSpec,
    ScanStep,
    TorsionDriveSettings,
    TorsionScanResult,
)
from bespoke_dask.store import Store

HARTREE_IN_KCAL_MOL = 627.509474
# issue 11's batch: BespokeFit's 4 (paracetamol, 2-phenylethanol, N-methylbenzamide, anisole), then 4 more drugs.
BATCH = [
    "CC(=O)Nc1ccc(O)cc1",
    "OCCc1ccccc1",
    "CNC(=O)c1ccccc1",
    "COc1ccccc1",
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "CCOc1ccc(NC(C)=O)cc1",  # phenacetin
    "CCOC(=O)c1ccc(N)cc1",  # benzocaine
    "NC(=O)c1ccccc1O",  # salicylamide
]
# Anilides: the amide and the aryl-N bond give the same fragments in each.
SHARED_FRAGMENTS = ["CC(=O)Nc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CC(=O)Nc1ccc(Cl)cc1"]
AMIDE = "[#6]~[#6X3:1](=[#8])-[#7X3:2]~[#6]"


def workflows(smiles: list[str], name: str, qc_spec: list[str]):
    """One workflow per molecule: the named settings with `qc_spec` (program method basis)."""
    factory = BespokeWorkflowFactory.from_name(name).model_copy(update={"qc_spec": spec(qc_spec)})
    return [factory.optimization_schema_from_smiles(s) for s in smiles]


def scan_workflow(smiles: str, torsion: str, grid_spacing: int, conformers: int, qc_spec: list[str]):
    """A workflow scanning the bonds `torsion` matches in the whole molecule (no fragmentation)."""
    factory = BespokeWorkflowFactory.from_name("debug").model_copy(
        update={
            "fragmentation": NoFragmentation(),
            "target_torsion_smirks": [torsion],
            "qc_spec": spec(qc_spec),
            "torsiondrive": TorsionDriveSettings(grid_spacing=grid_spacing, n_conformers=conformers),
        }
    )
    return factory.optimization_schema_from_smiles(smiles)


def dihedral_chain(smiles: str, torsion: str, grid_spacing: int, steps: int, qc_spec: list[str]) -> list:
    """`steps` constrained optimizations of the bond `torsion` matches, `grid_spacing` degrees
    apart, each from the geometry the one before ended at (as a scan runs them; run here once;
    after a failed one, from the last geometry reached)."""
    from openff.toolkit import Molecule

    from bespoke_dask.schema import ConstrainedOptimization, ConstrainedOptimizationSettings
    from bespoke_dask.stages.qc import QCError, optimize_constrained
    from bespoke_dask.stages.torsiondrive import driven_dihedral

    molecule = Molecule.from_smiles(smiles)
    molecule.generate_conformers(n_conformers=1)
    (b, c), = {tuple(sorted(match)) for match in molecule.chemical_environment_matches(torsion)}
    dihedral = driven_dihedral(molecule, b, c)  # the one a scan of the bond drives
    geometry, jobs = molecule.conformers[0].m_as("bohr").ravel().tolist(), []
    for step in range(steps):
        job = ConstrainedOptimization(
            mapped_smiles=molecule.to_smiles(mapped=True), geometry=geometry, dihedral=dihedral,
            angle=-180 + grid_spacing * (step + 1), qc_spec=spec(qc_spec), optimization=ConstrainedOptimizationSettings(),
        )
        jobs.append(job)
        with contextlib.suppress(QCError):  # the next starts from the last geometry reached
            geometry = optimize_constrained(job).final_geometry
    return jobs


def spec(words: list[str]) -> QCSpec:
    program, method, basis = words
    return QCSpec(program=program, method=method, basis=None if basis.lower() == "none" else basis)


def warm(client) -> None:
    """Have every worker's stage forkserver import the chemistry stack, as this process has."""
    client.run(_start_stage_processes)


def _start_stage_processes() -> None:
    import os

    from bespoke_dask import sandbox

    sandbox.run(os.getpid, name="bench-warm")  # returns once a child is forked from the warm forkserver


def serial_torsiondrive(directory: str | Path, scan_key: str) -> dict:
    """The scan the executor ran, again through qcengine's TorsionDrive procedure, serially here.

    Same start geometries (the executor's scan-start), dihedral, grid, geomeTRIC settings and
    engine. qcengine 0.34's procedure adds every job's constraint to one shared keyword dict
    (so later optimizations carry all earlier constraints); each job gets a copy of the input
    here, which is the only change.
    """
    import qcengine
    from qcelemental.models.procedures import TorsionDriveInput
    from qcengine.procedures.torsiondrive import TorsionDriveProcedure

    from bespoke_dask import graph
    from bespoke_dask.stages import qc

    class PerJobConstraints(TorsionDriveProcedure):
        @staticmethod
        def _spawn_optimization(grid_point, job, input_model, config):
            return TorsionDriveProcedure._spawn_optimization(grid_point, job, input_model.copy(deep=True), config)

    store = Store(Path(directory) / "store")
    scan = store.get(SCANS, scan_key, TorsionScanResult)
    task = scan.task
    state = store.get("scan-start", graph.task_key(graph.SCAN_START, task), ScanStep).state
    qc.register_engines()
    molecules = [qc.qcschema_molecule(state.mapped_smiles, list(g)) for g in state.td_state["init_coords"]]
    procedure_input = TorsionDriveInput(
        keywords={"dihedrals": [list(state.dihedral)], "grid_spacing": [task.grid_spacing]},
        input_specification={"driver": "gradient", "model": {"method": task.qc_spec.method, "basis": task.qc_spec.basis}},
        initial_molecule=molecules,
        optimization_spec={"procedure": "geometric", "keywords": task.optimization.model_dump() | {"program": task.qc_spec.program}},
    )
    procedure = PerJobConstraints()
    start = time.perf_counter()
    result = procedure.compute(procedure.build_input_model(procedure_input), qcengine.config.get_config(task_config={"ncores": 1}))
    elapsed = time.perf_counter() - start
    if not result.success:
        raise SystemExit(f"qcengine torsiondrive failed: {result.error.error_message[:300]}")
    ours = {round(point.angle): point.energy for point in scan.grid}
    theirs = {int(grid.split()[0]): energy for grid, energy in result.final_energies.items()}
    return {
        "reference": "qcengine TorsionDrive procedure, serial (a copy of the input per job)",
        "time_s": elapsed,
        "optimizations": sum(len(runs) for runs in result.optimization_history.values()),
        "max_energy_difference_kcal_mol": HARTREE_IN_KCAL_MOL * max(abs(ours[a] - theirs[a]) for a in ours),
    }


def scan_jobs(directory: str | Path, scan_key: str, n: int) -> list:
    """The first `n` constrained optimizations of a finished scan, replayed from the store."""
    from bespoke_dask import graph
    from bespoke_dask.schema import OptimizationResult
    from bespoke_dask.stages import torsiondrive

    store = Store(Path(directory) / "store")
    task = store.get(SCANS, scan_key, TorsionScanResult).task
    step = store.get("scan-start", graph.task_key(graph.SCAN_START, task), ScanStep)
    jobs = []
    while step.result is None and len(jobs) < n:
        jobs += step.jobs
        results = [store.get("qc", graph.task_key(graph.QC, job), OptimizationResult) for job in step.jobs]
        step = torsiondrive.advance(step.state, results)
    return jobs[:n]


def concurrent_slowdown(jobs: list, copies: int) -> float:
    """How much longer `jobs` take in each of `copies` plain processes running at once than in one
    process alone: what running optimizations side by side costs on this machine, with no executor."""
    alone, = _timed_copies(jobs, 1)
    return statistics.mean(_timed_copies(jobs, copies)) / alone


def _timed_copies(jobs: list, copies: int) -> list[float]:
    with ProcessPoolExecutor(copies, mp_context=multiprocessing.get_context("spawn")) as pool:
        start_at = time.time() + 20  # after every copy has imported and warmed up
        return list(pool.map(_run_jobs, [jobs] * copies, [start_at] * copies))


def _run_jobs(jobs: list, start_at: float) -> float:
    from bespoke_dask.stages.qc import optimize_constrained

    optimize_constrained(jobs[0])  # imports and first-call set-up
    time.sleep(max(0.0, start_at - time.time()))
    start = time.perf_counter()
    for job in jobs:
        optimize_constrained(job)
    return time.perf_counter() - start


def worker_pids(client, pool: str | None = None) -> list[int]:
    """Process ids of the workers offering `pool` (a Dask resource), or of every worker."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    chosen = [address for address, info in workers.items() if pool is None or pool in info.get("resources", {})]
    return list(client.run(_pid, workers=chosen).values())


def _pid() -> int:
    import os

    return os.getpid()


class CPUSampler:
    """Samples the CPU time (s) of some processes and all their descendants every `interval` s."""

    def __init__(self, pids: list[int], interval: float = 0.2):
        self.processes = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (unix time, CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "CPUSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def rate(self, start: float, stop: float) -> float:
        """CPU seconds per wall second between the first and last sample within [start, stop]."""
        (t0, c0), (t1, c1) = self._ends(start, stop)
        return (c1 - c0) / (t1 - t0)

    def used(self, start: float, stop: float) -> float:
        """CPU seconds used between the first and last sample within [start, stop]."""
        (_, c0), (_, c1) = self._ends(start, stop)
        return c1 - c0

    def _ends(self, start: float, stop: float) -> tuple[tuple[float, float], tuple[float, float]]:
        inside = [sample for sample in self.samples if start <= sample[0] <= stop]
        if len(inside) < 2:
            raise ValueError("the window is shorter than two samples")
        return inside[0], inside[-1]

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.time(), sum(map(_cpu, self.processes))))


class CPUSplit:
    """CPU seconds used from now on by this process (client, scheduler, coordinator, nannies), by
    the Dask worker processes, and by the stage processes under them (the stage calls themselves)."""

    def __init__(self, client):
        self.workers = [psutil.Process(pid) for pid in worker_pids(client)]
        self.start = self._now()

    def since(self) -> dict[str, float]:
        return {name: used - self.start[name] for name, used in self._now().items()}

    def _now(self) -> dict[str, float]:
        own = [_own_cpu(worker) for worker in self.workers]
        return {
            "scheduler_coordinator_client": _own_cpu(psutil.Process()),
            "dask_workers": sum(own),
            "stage_processes": sum(map(_cpu, self.workers)) - sum(own),
        }


def _own_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def distributeds_own_timers() -> dict:
    """distributed's own values of the settings `bespoke-dask.distributed` changes."""
    import distributed
    import yaml

    from bespoke_dask.config import distributed_keys

    theirs = yaml.safe_load((Path(distributed.__file__).parent / "distributed.yaml").read_text())
    return {key: dask.config.get(key, config=theirs) for key in distributed_keys()}


def _cpu(process: psutil.Process) -> float:
    """CPU time of a process and its live descendants, each with its finished (waited-for) children.

    Stage calls run in children of a forkserver the worker starts; psi4 runs in theirs.
    """
    total = 0.0
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return total
    for member in family:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:  # ended between the listing and now
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def parser(description: str, parts) -> argparse.ArgumentParser:
    """Each part's options, with defaults that make a full-size measurement."""
    main = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main.add_subparsers(dest="part", required=True)
    xtb = ["xtb", "gfn2xtb", "none"]
    for name in parts:
        command = commands.add_parser(name, help=parts[name].__doc__.splitlines()[0])
        command.add_argument("--qc-spec", nargs=3, default=xtb if name != "scale" else ["rdkit", "mmff94", "none"],
                             metavar=("PROGRAM", "METHOD", "BASIS"))
        if name in ("scan", "cores", "geometric"):
            command.add_argument("--smiles", default="CC(=O)Nc1ccccc1")
            command.add_argument("--torsion", default=AMIDE, help="SMARTS of the bond to scan (central atoms :1, :2)")
            command.add_argument("--grid-spacing", type=int, default=15)
            command.add_argument("--conformers", type=int, default=2 if name == "cores" else 4)
            command.add_argument("--qc-workers", type=int, default=2)
        if name == "geometric":
            command.add_argument("--steps", type=int, default=12)
        if name == "scan":
            command.add_argument("--repeat", type=int, default=3, help="rounds of Dask and serial in turn")
            command.add_argument("--variants", action="store_true",
                                 help="also scan-ahead off and distributed's own timers (a round each)")
        if name == "cores":
            command.add_argument("--psi4", action="store_true", help="also psi4 HF/STO-3G (slow)")
        if name in ("dedup", "latency", "batch"):
            command.add_argument("--workflow", default="default" if name != "dedup" else "debug")
        if name == "dedup":
            command.add_argument("--smiles", nargs="+", default=SHARED_FRAGMENTS)
            command.add_argument("--second-qc-spec", nargs=3, default=["xtb", "gfn1xtb", "none"])
        if name == "latency":
            command.add_argument("--smiles", default=BATCH[0])
        if name == "batch":
            command.add_argument("--smiles", nargs="+", default=BATCH)
            command.add_argument("--limit", type=int, help="only the first N molecules")
            command.add_argument("--fragmenters", type=int, default=1, help="fragmenter workers")
        if name == "scale":
            command.add_argument("--n", type=int, default=1000)
            command.add_argument("--window", type=float, help="s to run before cancelling what is unfinished")
            command.add_argument("--sample-every", type=float, default=15.0, help="s between latency samples")
            command.add_argument("--grid-spacing", type=int, default=30, help="degrees (the debug workflow's 30)")
    return main


def finished_at(output) -> float:
    """When a workflow's last stage ended (unix s)."""
    return output.stage("optimization").ended_at
