"""A fix for geomeTRIC 1.1.1's exact constraint enforcement, which can run for ever (applied by
importing stages/qc.py).

With `enforce` set (BespokeFit's 0.1), geomeTRIC puts each step's constrained dihedral exactly
on its target by Newton iterations that end only when the error vanishes or grows. After a step
that throws the dihedral far off (seen: 0.91 rad), the error can shrink by 2e-10 rad per iteration
instead: the optimization, a minute's work, never ends (2 of about 2,200 MMFF94 optimizations of
small molecules; each held a QC worker until its time limit). Here the iterations also end when
the error stops shrinking, with the best geometry so far, as geomeTRIC ends them when it grows;
iterations that converge (each divides the error by about 100) run exactly as before.
"""

import logging

import geometric
import numpy as np
from geometric.internal import DelocalizedInternalCoordinates

logger = logging.getLogger(__name__)

FIXED_VERSION = "1.1.1"  # the geomeTRIC this was written against: re-check on an upgrade
CONVERGED = 1e-6  # |step| below which the constraints hold (geomeTRIC's own threshold)
STALLED = 0.999  # an iteration that keeps more of the error than this has stalled
MAX_ITERATIONS = 1000


def apply() -> None:
    """Patch geomeTRIC in this process (idempotent); another version is left alone."""
    if geometric.__version__ == FIXED_VERSION:
        DelocalizedInternalCoordinates.applyConstraints = enforce_constraints


def enforce_constraints(coordinates: DelocalizedInternalCoordinates, xyz: np.ndarray) -> np.ndarray:
    """Cartesian coordinates (flat, bohr) near `xyz` where every constraint holds, or the closest
    found when the iterations grow or stall."""
    tried, sizes = [], []
    current = xyz.copy()
    for _ in range(MAX_ITERATIONS):
        step = _constraint_step(coordinates, current)
        size = np.linalg.norm(step)
        moved = coordinates.newCartesian(current, step, verbose=0)
        if size < CONVERGED:
            return moved
        tried.append(current)
        sizes.append(size)
        if len(sizes) > 2 and size > STALLED * sizes[-2]:
            break
        current = moved
    best = tried[int(np.argmin(sizes))]
    if not coordinates.enforce_fail_printed:
        logger.warning("constraints not met exactly: the closest geometry found is kept")
        coordinates.enforce_fail_printed = True
    return best


def _constraint_step(coordinates: DelocalizedInternalCoordinates, xyz: np.ndarray) -> np.ndarray:
    """The step in delocalized coordinates that moves each constrained primitive onto its target."""
    step = np.zeros(len(coordinates.Internals))
    errors = coordinates.calcConstraintDiff(xyz)
    for index, primitive in enumerate(coordinates.Prims.cPrims):
        row, column = coordinates.Prims.Internals.index(primitive), coordinates.cDLC[index]
        step[column] = -errors[index] / coordinates.Vecs[row, column]
    return step
