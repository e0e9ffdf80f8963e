"""Fit bespoke torsion k's with ForceBalance, BespokeFit's optimizer, run in this process.

The ForceBalance project (research/forcebalance.md §4) is written to a temporary directory:

    optimize.in                          options, one TorsionProfile_SMIRNOFF target per scan
    forcefield/bespoke.offxml            the force field, bespoke k's marked with parameterize=
    targets/torsion-<i>/                 scan.xyz, qdata.txt, metadata.json, molecule.pdb/.sdf
    forcebalance.log                     everything ForceBalance prints

ForceBalance 1.9.5 predates the toolkit, Interchange, OpenMM and SciPy installed here;
`apply_compatibility_patches` holds every fix it needs. It runs in-process because its CLI
exits 0 on a crash (P7); it changes the working directory and keeps module globals, so runs
in one process are serialised by a lock.
"""

import contextlib
import functools
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import qcelemental
from openff.toolkit import ForceField, Molecule
from openff.units import unit

from bespoke_dask.errors import one_line
from bespoke_dask.schema import (
    BespokeTorsion,
    FitTarget,
    ForceBalanceSettings,
    TorsionProfileSettings,
    TorsionScanResult,
)
from bespoke_dask.settings import Settings
from bespoke_dask.stages.charges import charged_molecule

logger = logging.getLogger(__name__)

BOHR_TO_ANGSTROM = qcelemental.constants.bohr2angstroms
FORCE_FIELD_FILE = "bespoke.offxml"
_RUN_LOCK = threading.Lock()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ForceBalanceError(RuntimeError):
    """ForceBalance crashed or returned no usable force field; the message is one line."""


def fit_forcebalance(
    force_field: str,
    parameters: list[BespokeTorsion],
    targets: list[FitTarget],
    settings: ForceBalanceSettings,
    target: TorsionProfileSettings,
    prior_width: float,
) -> list[BespokeTorsion]:
    """Fit the k's of `parameters` to the scans of `targets` and return them refitted.

    `force_field` is OFFXML text that already holds `parameters` at the end of <ProperTorsions>.
    The work directory is kept when BEFLOW_KEEP_TMP_FILES or BEFLOW_OPTIMIZER_KEEP_FILES is true.
    """
    for parameter in parameters:
        if "/" in parameter.smirks or "\\" in parameter.smirks:  # P11: ForceBalance splits ids on "/"
            raise ValueError(f"ForceBalance cannot fit a SMIRKS with '/' or '\\' in it: {parameter.smirks}")
    if not targets:
        raise ValueError("ForceBalance needs at least one scan to fit")
    known = {parameter.smirks for parameter in parameters}
    for fit_target in targets:
        if set(fit_target.smirks) - known:
            raise ValueError(f"target SMIRKS {fit_target.smirks} are not among the parameters to fit")

    directory = Path(tempfile.mkdtemp(prefix="bespoke-forcebalance-"))
    try:
        write_force_field(directory / "forcefield" / FORCE_FIELD_FILE, force_field, parameters, targets)
        for index, fit_target in enumerate(targets):
            write_target(directory / "targets" / f"torsion-{index}", fit_target.scan)
        write_options(directory / "optimize.in", len(targets), settings, target, prior_width)
        start = time.perf_counter()
        history = run_forcebalance(directory)
        fitted = read_fitted_parameters(directory / "result" / "optimize" / FORCE_FIELD_FILE, parameters)
        logger.info(
            "ForceBalance: %d iterations in %.1f s, objective %.4g -> %.4g",
            max(len(history) - 1, 0),
            time.perf_counter() - start,
            history[0][0] if history else math.nan,
            min(x for x, _ in history) if history else math.nan,
            extra={"objective_history": history},
        )
        return fitted
    finally:
        if Settings().keep_tmp_files or Settings().optimizer_keep_files:
            logger.info("kept the ForceBalance work directory %s", directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def write_force_field(
    path: Path, force_field: str, parameters: list[BespokeTorsion], targets: list[FitTarget]
) -> None:
    """Mark the bespoke k's with parameterize= and embed each molecule's AM1-BCC charges (P13).

    The charges are the ones every fitter and the metrics use (charges.charged_molecule).
    """
    from openff.toolkit.typing.engines.smirnoff.parameters import LibraryChargeHandler

    off = ForceField(force_field, allow_cosmetic_attributes=True)
    torsions = off.get_parameter_handler("ProperTorsions")
    for parameter in parameters:
        try:
            torsion = torsions.parameters[parameter.smirks]
        except Exception:
            raise ValueError(f"bespoke torsion {parameter.smirks} is not in the force field") from None
        names = ", ".join(f"k{i + 1}" for i in range(len(torsion.k)))
        torsion.add_cosmetic_attribute("parameterize", names)

    library = off.get_parameter_handler("LibraryCharges")
    molecules = [charged_molecule(fit_target.scan.mapped_smiles) for fit_target in targets]
    for molecule in {molecule.to_smiles(): molecule for molecule in molecules}.values():
        library.add_parameter(parameter=LibraryChargeHandler.LibraryChargeType.from_molecule(molecule))

    path.parent.mkdir(parents=True, exist_ok=True)
    off.to_file(str(path), discard_cosmetic_attributes=False)


def write_target(directory: Path, scan: TorsionScanResult) -> None:
    """One TorsionProfile target: scan.xyz (Å), qdata.txt (hartree), metadata.json, molecule.pdb/.sdf."""
    molecule = Molecule.from_mapped_smiles(scan.mapped_smiles, allow_undefined_stereo=True)
    grid = sorted(scan.grid, key=lambda point: point.angle)
    if not grid or any(len(point.geometry) != 3 * molecule.n_atoms for point in grid):
        raise ValueError(f"scan of {scan.mapped_smiles} needs grid points of {molecule.n_atoms} atoms each")
    frames = [np.reshape(point.geometry, (-1, 3)) * BOHR_TO_ANGSTROM for point in grid]

    directory.mkdir(parents=True, exist_ok=True)
    molecule.add_conformer(unit.Quantity(frames[0], unit.angstrom))
    molecule.to_file(str(directory / "molecule.pdb"), "PDB")  # with CONECT records
    molecule.to_file(str(directory / "molecule.sdf"), "SDF")  # bond orders (ForceBalance's "mol2")

    symbols = [atom.symbol for atom in molecule.atoms]
    with open(directory / "scan.xyz", "w") as xyz, open(directory / "qdata.txt", "w") as qdata:
        for index, (point, frame) in enumerate(zip(grid, frames)):
            xyz.write(f"{len(symbols)}\nangle {point.angle:g}\n")
            xyz.writelines(f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(symbols, frame))
            coords = " ".join(f"{c:.10f}" for c in frame.ravel())
            qdata.write(f"JOB {index}\nCOORDS {coords}\nENERGY {point.energy:.12f}\n\n")

    metadata = {
        "dihedrals": [list(scan.dihedral)],
        "torsion_grid_ids": [[round(point.angle)] for point in grid],
        "grid_spacing": [scan.task.grid_spacing],
        "dihedral_ranges": [list(scan.task.scan_range)] if scan.task.scan_range else None,
        "energy_decrease_thresh": scan.task.energy_decrease_thresh,
        "energy_upper_limit": scan.task.energy_upper_limit,
    }
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))


def write_options(
    path: Path,
    n_targets: int,
    settings: ForceBalanceSettings,
    target: TorsionProfileSettings,
    prior_width: float,
) -> None:
    """optimize.in: BespokeFit's ForceBalance options, one target per scan."""
    options = {
        "jobtype": "optimize",
        "ffdir": "forcefield",
        "forcefield": FORCE_FIELD_FILE,
        "penalty_type": settings.penalty_type,
        "penalty_additive": 1.0,
        "trust0": settings.trust0,
        "mintrust": settings.mintrust,
        "error_tolerance": settings.error_tolerance,
        "adaptive_factor": settings.adaptive_factor,
        "adaptive_damping": settings.adaptive_damping,
        "normalize_weights": "false",
        "maxstep": settings.max_iterations,
        "criteria": 2,
        "convergence_objective": settings.convergence_objective,
        "convergence_step": settings.convergence_step,
        "convergence_gradient": settings.convergence_gradient,
        "eig_lowerbound": settings.eig_lowerbound,
        "finite_difference_h": settings.finite_difference_h,
        "backup": "false",
        "retain_micro_outputs": "false",
    }
    lines = ["$options", *(f"{key} {value}" for key, value in options.items())]
    lines += ["priors", f"   ProperTorsions/Proper/k : {prior_width}", "/priors", "$end"]
    for index in range(n_targets):
        lines += [
            "$target",
            f"name torsion-{index}",
            "type TorsionProfile_SMIRNOFF",
            "weight 1.0",
            "mol2 molecule.sdf",
            "pdb molecule.pdb",
            "coords scan.xyz",
            f"attenuate {int(target.attenuate)}",
            f"energy_denom {target.energy_denominator}",
            f"energy_upper {target.energy_cutoff}",
            f"restrain_k {target.restrain_k}",
            "openmm_platform Reference",
            "writelevel 1",
            "$end",
        ]
    path.write_text("\n".join(lines) + "\n")


def apply_compatibility_patches() -> None:
    """Make ForceBalance 1.9.5 run against the toolkit 0.18 / Interchange 0.5 / OpenMM 8.6 / SciPy 1.18 stack.

    research/forcebalance.md §5 names each fix. Each patch is applied once (idempotent) and only
    changes calls that would otherwise raise, so it is harmless to other code in the process:

    P2  `ENABLE_FB_SMIRNOFF_CACHING=false` before import: ForceBalance's caching hack imports a
        module the toolkit removed, which silently disables its whole SMIRNOFF engine.
    P3  `Interchange.handlers` is now `Interchange.collections`.
    P4  `ForceField.create_openmm_system(return_topology=True)` returns (system, topology) again.
    P5  `Simulation.minimizeEnergy` wants a force tolerance; ForceBalance passes the same number
        in kJ/mol, which OpenMM always read as kJ/mol/nm.
    P6  `scipy.optimize.fmin_l_bfgs_b` lost `iprint`/`disp` and wants integer `maxfun`/`maxiter`.
    Also: ForceBalance installs its own logger class for every logger created after its import;
    the previous class is restored. lxml (P1) is a package dependency.
    """
    os.environ["ENABLE_FB_SMIRNOFF_CACHING"] = "false"
    logger_class = logging.getLoggerClass()
    import forcebalance.smirnoffio

    logging.setLoggerClass(logger_class)
    if not forcebalance.smirnoffio.toolkit_import_success:
        raise ForceBalanceError(
            "ForceBalance's SMIRNOFF engine cannot import the OpenFF toolkit "
            "(was forcebalance imported before ENABLE_FB_SMIRNOFF_CACHING=false was set?)"
        )

    import openmm.app
    import openmm.unit
    import scipy.optimize
    from openff.interchange import Interchange

    if not hasattr(Interchange, "handlers"):
        Interchange.handlers = property(lambda self: self.collections)

    create_openmm_system = ForceField.create_openmm_system
    if not hasattr(create_openmm_system, "_bespoke_dask_patch"):

        @functools.wraps(create_openmm_system)
        def create_system(self, topology, *args, return_topology=False, **kwargs):
            system = create_openmm_system(self, topology, *args, **kwargs)
            return (system, topology) if return_topology else system

        create_system._bespoke_dask_patch = True
        ForceField.create_openmm_system = create_system

    minimize = openmm.app.Simulation.minimizeEnergy
    if not hasattr(minimize, "_bespoke_dask_patch"):
        energy, force = openmm.unit.kilojoule_per_mole, openmm.unit.kilojoule_per_mole / openmm.unit.nanometer

        @functools.wraps(minimize)
        def minimize_energy(self, *args, **kwargs):
            tolerance = kwargs.get("tolerance")
            if openmm.unit.is_quantity(tolerance) and tolerance.unit.is_compatible(energy):
                kwargs["tolerance"] = tolerance.value_in_unit(energy) * force
            return minimize(self, *args, **kwargs)

        minimize_energy._bespoke_dask_patch = True
        openmm.app.Simulation.minimizeEnergy = minimize_energy

    l_bfgs_b = scipy.optimize.fmin_l_bfgs_b
    if not hasattr(l_bfgs_b, "_bespoke_dask_patch"):

        @functools.wraps(l_bfgs_b)
        def fmin_l_bfgs_b(*args, iprint=None, disp=None, **kwargs):
            for key in ("maxfun", "maxiter"):
                if key in kwargs:
                    kwargs[key] = int(kwargs[key])
            return l_bfgs_b(*args, **kwargs)

        fmin_l_bfgs_b._bespoke_dask_patch = True
        scipy.optimize.fmin_l_bfgs_b = fmin_l_bfgs_b


def run_forcebalance(directory: Path) -> list[tuple[float, float]]:
    """Run the project in `directory`; return (objective, objective without prior) per iteration."""
    apply_compatibility_patches()
    import forcebalance.optimizer
    from forcebalance.forcefield import FF
    from forcebalance.objective import Objective
    from forcebalance.parser import parse_inputs

    history: list[tuple[float, float]] = []
    log = directory / "forcebalance.log"
    with _RUN_LOCK, contextlib.chdir(directory), _forcebalance_output(log) as errors:
        running = False
        try:
            options, target_options = parse_inputs("optimize.in")
            force_field = FF(options)
            objective = Objective(options, target_options, force_field)
            optimizer = forcebalance.optimizer.Optimizer(options, objective, force_field)
            objective.Full = _recording(objective.Full, history)
            running = True
            optimizer.Run()
        except Exception as error:
            where = f"in iteration {forcebalance.optimizer.Counter()}" if running else "during setup"
            raise ForceBalanceError(f"ForceBalance failed {where}: {_describe(error, errors)}") from error
    return history


def read_fitted_parameters(path: Path, parameters: list[BespokeTorsion]) -> list[BespokeTorsion]:
    """The k's ForceBalance wrote to result/optimize/<ff>.offxml, as clean BespokeTorsions."""
    if not path.exists():
        raise ForceBalanceError(f"ForceBalance wrote no output force field ({path.name})")
    output = ForceField(str(path), allow_cosmetic_attributes=True)
    torsions = output.get_parameter_handler("ProperTorsions")
    fitted = []
    for parameter in parameters:
        torsion = torsions.parameters[parameter.smirks]
        k = [float(value.m_as(unit.kilocalorie_per_mole)) for value in torsion.k]
        if [int(n) for n in torsion.periodicity] != parameter.periodicities or not all(map(math.isfinite, k)):
            raise ForceBalanceError(f"ForceBalance returned unusable k's for {parameter.smirks}: {k}")
        fitted.append(parameter.model_copy(update={"k": k}))
    return fitted


@contextlib.contextmanager
def _forcebalance_output(log_path: Path):
    """Send ForceBalance's logger, stdout and stderr to `log_path`; yield its error messages."""
    errors: list[str] = []

    class ErrorCollector(logging.Handler):
        def emit(self, record):
            errors.append(record.getMessage())

    forcebalance_logger = logging.getLogger("forcebalance")
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        to_file, collector = logging.StreamHandler(log), ErrorCollector(logging.ERROR)
        to_file.terminator = ""  # ForceBalance ends its own lines
        forcebalance_logger.addHandler(to_file)
        forcebalance_logger.addHandler(collector)
        try:
            yield errors
        finally:
            forcebalance_logger.removeHandler(collector)
            forcebalance_logger.removeHandler(to_file)


def _recording(full, history: list[tuple[float, float]]):
    """Wrap Objective.Full to note the objective of each iteration (the calls with derivatives)."""

    @functools.wraps(full)
    def recorded(vals, Order=0, *args, **kwargs):
        answer = full(vals, Order, *args, **kwargs)
        if Order > 0:
            history.append((float(answer["X"]), float(answer["X0"])))
        return answer

    return recorded


def _describe(error: Exception, logged_errors: list[str]) -> str:
    """One line: the last error ForceBalance logged, the exception and where it was raised."""
    logged = [" ".join(_ANSI.sub("", message).split()) for message in logged_errors]
    parts = [message for message in logged[-1:] if message] + [one_line(error, limit=None)]
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return "; ".join(parts) + f" (in {Path(frame.filename).name}:{frame.lineno}, {frame.name})"
