"""One constrained geomeTRIC optimization through qcengine: the unit of work of a torsion scan.

Geometries are flat lists of 3N coordinates in bohr, energies in hartree, angles in degrees,
memory in GiB.
"""

import contextlib
import logging

import numpy as np
import qcengine
from qcelemental.models import Molecule as QCMolecule
from qcelemental.models import OptimizationInput

from bespoke_dask.errors import InputError, one_line
from bespoke_dask.schema.tasks import ConstrainedOptimization, OptimizationResult
from bespoke_dask.stages import geometric_fix, geometric_vectorized
from bespoke_dask.stages.engines import check_qc_spec, register_engines, require_program, spec_label

geometric_fix.apply()  # in every process that optimizes through this module
geometric_vectorized.apply()


class QCError(RuntimeError):
    """A QC calculation or optimization failed. ``str()`` is one line; ``.details`` has the full report."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message, details)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


def optimize_constrained(
    job: ConstrainedOptimization, n_cores: int = 1, max_memory: float | None = None
) -> OptimizationResult:
    """Optimize `job.geometry` with `job.dihedral` held at `job.angle` degrees.

    `n_cores` and `max_memory` (GiB; None: qcengine's default) go to the QC program.
    Raises InputError for a spec or molecule the engine cannot do, QCError if the run fails.
    """
    register_engines()
    molecule = qcschema_molecule(job.mapped_smiles, job.geometry)
    check_qc_spec(job.qc_spec, molecule.symbols, molecule.molecular_charge)
    require_program(job.qc_spec.program)
    task_config = {"ncores": n_cores} | ({} if max_memory is None else {"memory": max_memory})
    with _root_logging_kept():
        result = qcengine.compute_procedure(
            optimization_input(job, molecule), "geometric", raise_error=False, task_config=task_config
        )
    if not result.success:
        details = result.error.error_message
        raise QCError(f"{spec_label(job.qc_spec)} failed: {one_line(details)}", details)
    return OptimizationResult(
        initial_geometry=job.geometry,
        final_geometry=np.asarray(result.final_molecule.geometry).ravel().tolist(),
        energy=result.energies[-1],
        n_gradients=len(result.trajectory),
    )


def qcschema_molecule(mapped_smiles: str, geometry: list[float]) -> QCMolecule:
    """The QCSchema molecule (with connectivity, charge, multiplicity) at `geometry` (flat, bohr)."""
    from openff.toolkit import Molecule
    from openff.units import unit

    molecule = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True)
    if len(geometry) != 3 * molecule.n_atoms:
        raise InputError(
            f"geometry has {len(geometry)} coordinates, {mapped_smiles} needs {3 * molecule.n_atoms}"
        )
    molecule.add_conformer(unit.Quantity(np.reshape(geometry, (-1, 3)), unit.bohr))
    charge = round(molecule.total_charge.m_as(unit.elementary_charge))
    electrons = sum(atom.atomic_number for atom in molecule.atoms) - charge
    return molecule.to_qcschema(multiplicity=1 + electrons % 2)


def optimization_input(job: ConstrainedOptimization, molecule: QCMolecule) -> OptimizationInput:
    """geomeTRIC input for `job`, with a constraint made for this job alone."""
    settings = job.optimization
    keywords = settings.model_dump() | {
        "program": job.qc_spec.program,
        "constraints": {"set": [{"type": "dihedral", "indices": list(job.dihedral), "value": job.angle}]},
    }
    return OptimizationInput(
        keywords=keywords,
        input_specification={
            "driver": "gradient",
            "model": {"method": job.qc_spec.method, "basis": job.qc_spec.basis},
        },
        initial_molecule=molecule,
    )


@contextlib.contextmanager
def _root_logging_kept():
    """Undo geomeTRIC's logging.config.fileConfig, which strips the root logger's handlers."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
