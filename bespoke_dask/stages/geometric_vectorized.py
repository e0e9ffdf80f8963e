"""geomeTRIC 1.1.1's primitive internal coordinates evaluated as arrays (applied by importing
stages/qc.py).

geomeTRIC computes each primitive's value and derivative in a Python call of its own, with
numpy on 3-vectors: for a small molecule with GFN2-xTB about 80 % of a constrained optimization
is that bookkeeping, not the engine (perf.py geometric). Here the values, differences and
derivatives of the common kinds (distances, angles, dihedrals, out-of-plane angles) are computed
for all of a kind at once, with geomeTRIC's formulas and special cases; every other kind (and any
row in a special case that needs a choice) goes through geomeTRIC's own method, in order.
"""

import operator

import geometric
import numpy as np
from geometric.internal import Angle, Dihedral, Distance, OutOfPlane, PrimitiveInternalCoordinates

FIXED_VERSION = "1.1.1"  # the geomeTRIC these formulas were copied from: re-check on an upgrade
KINDS = {Distance: 2, Angle: 3, Dihedral: 4, OutOfPlane: 4}  # kind -> atoms per primitive
PERIODIC = (Dihedral, OutOfPlane)
PATCHED = ("calculate", "calcDiff", "derivatives")  # methods of PrimitiveInternalCoordinates
GEOMETRICS_OWN = {name: vars(PrimitiveInternalCoordinates)[name] for name in PATCHED}  # to compare


def apply() -> None:
    """Patch geomeTRIC in this process (idempotent); another version is left alone."""
    if geometric.__version__ == FIXED_VERSION:
        PrimitiveInternalCoordinates.calculate = calculate
        PrimitiveInternalCoordinates.calcDiff = calc_diff
        PrimitiveInternalCoordinates.derivatives = derivatives


class Layout:
    """Where each kind's primitives sit in `Internals`, with their atoms as index arrays."""

    def __init__(self, internals: list):
        self.internals = tuple(internals)
        self.rows: dict[type, np.ndarray] = {}
        self.atoms: dict[type, np.ndarray] = {}
        for kind, n_atoms in KINDS.items():
            rows = [row for row, primitive in enumerate(internals) if type(primitive) is kind]
            self.rows[kind] = np.array(rows, dtype=int)
            names = "abcd"[:n_atoms]
            atoms = [[getattr(internals[row], name) for name in names] for row in rows]
            self.atoms[kind] = np.array(atoms, dtype=int).reshape(len(rows), n_atoms)
        self.others = [(row, p) for row, p in enumerate(internals) if type(p) not in KINDS]

    def matches(self, internals: list) -> bool:
        return len(internals) == len(self.internals) and all(map(operator.is_, internals, self.internals))


def layout(coordinates: PrimitiveInternalCoordinates) -> Layout:
    """The layout of `coordinates.Internals`, rebuilt when the list changed."""
    cached = coordinates.__dict__.get("_vectorized_layout")
    if cached is None or not cached.matches(coordinates.Internals):
        cached = coordinates._vectorized_layout = Layout(coordinates.Internals)
    return cached


def calculate(self: PrimitiveInternalCoordinates, xyz: np.ndarray) -> np.ndarray:
    """Every primitive's value at `xyz` (geomeTRIC's `calculate`)."""
    plan = layout(self)
    xyz = xyz.reshape(-1, 3)
    answer = np.empty(len(plan.internals))
    for kind, rows in plan.rows.items():
        answer[rows] = VALUES[kind](xyz, plan.atoms[kind])
    for row, primitive in plan.others:
        answer[row] = primitive.value(xyz)
    return answer


def calc_diff(self: PrimitiveInternalCoordinates, xyz1: np.ndarray, xyz2: np.ndarray) -> np.ndarray:
    """Primitive values at `xyz1` minus those at `xyz2`, periodic ones brought within pi."""
    plan = layout(self)
    xyz1, xyz2 = xyz1.reshape(-1, 3), xyz2.reshape(-1, 3)
    answer = np.empty(len(plan.internals))
    for kind, rows in plan.rows.items():
        diff = VALUES[kind](xyz1, plan.atoms[kind]) - VALUES[kind](xyz2, plan.atoms[kind])
        answer[rows] = _within_pi(diff) if kind in PERIODIC else diff
    for row, primitive in plan.others:
        answer[row] = primitive.calcDiff(xyz1, xyz2)
    return answer


def derivatives(self: PrimitiveInternalCoordinates, xyz: np.ndarray) -> np.ndarray:
    """d(primitive)/d(Cartesian), shape (primitives, atoms, 3) (geomeTRIC's `derivatives`)."""
    self.calculate(xyz)  # as geomeTRIC does: stateful kinds (rotations, linear angles) update here
    plan = layout(self)
    xyz = xyz.reshape(-1, 3)
    answer = np.zeros((len(plan.internals), *xyz.shape))
    for kind, rows in plan.rows.items():
        special = DERIVATIVES[kind](answer, rows, xyz, plan.atoms[kind])
        for row in rows[special]:
            answer[row] = plan.internals[row].derivative(xyz)
    for row, primitive in plan.others:
        answer[row] = primitive.derivative(xyz)
    return answer


def _within_pi(diff: np.ndarray) -> np.ndarray:
    """geomeTRIC's periodic difference: whichever of d, d + 2 pi, d - 2 pi is smallest."""
    plus, minus = diff + 2 * np.pi, diff - 2 * np.pi
    diff = np.where(np.abs(diff) > np.abs(plus), plus, diff)
    return np.where(np.abs(diff) > np.abs(minus), minus, diff)


def _norms(vectors: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(vectors**2, axis=1))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise a x b (np.cross costs more than the arithmetic on arrays this small)."""
    (a0, a1, a2), (b0, b1, b2) = a.T, b.T
    return np.column_stack((a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0))


def _distances(xyz: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    return _norms(xyz[atoms[:, 0]] - xyz[atoms[:, 1]])


def _angles(xyz: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    vector1 = xyz[atoms[:, 0]] - xyz[atoms[:, 1]]
    vector2 = xyz[atoms[:, 2]] - xyz[atoms[:, 1]]
    cosine = _dot(vector1, vector2) / (_norms(vector1) * _norms(vector2))
    return np.arccos(np.clip(cosine, -1.0, 1.0))  # geomeTRIC: pi at or below -1, 0 at or above 1


def _dihedrals(xyz: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """Dihedral angles a-b-c-d; geomeTRIC's out-of-plane angle is the same formula."""
    vec1 = xyz[atoms[:, 1]] - xyz[atoms[:, 0]]
    vec2 = xyz[atoms[:, 2]] - xyz[atoms[:, 1]]
    vec3 = xyz[atoms[:, 3]] - xyz[atoms[:, 2]]
    cross1, cross2 = _cross(vec2, vec3), _cross(vec1, vec2)
    return np.arctan2(_dot(vec1, cross1) * _norms(vec2), _dot(cross1, cross2))


def _distance_derivatives(answer, rows, xyz, atoms) -> np.ndarray:
    """Fill the rows' derivatives; return which rows need geomeTRIC's own method (none)."""
    u = xyz[atoms[:, 0]] - xyz[atoms[:, 1]]
    u /= _norms(u)[:, None]
    answer[rows, atoms[:, 0]] = u
    answer[rows, atoms[:, 1]] = -u
    return np.zeros(len(rows), dtype=bool)


def _angle_derivatives(answer, rows, xyz, atoms) -> np.ndarray:
    """Fill the rows' derivatives; near-linear angles (geomeTRIC picks a normal) are left."""
    m, o, n = atoms.T
    u_prime, v_prime = xyz[m] - xyz[o], xyz[n] - xyz[o]
    u_norm, v_norm = _norms(u_prime), _norms(v_prime)
    u, v = u_prime / u_norm[:, None], v_prime / v_norm[:, None]
    special = (_norms(u + v) < 1e-10) | (_norms(u - v) < 1e-10)
    w = _cross(u, v)
    with np.errstate(invalid="ignore", divide="ignore"):  # special rows are overwritten
        w /= _norms(w)[:, None]
    term1 = _cross(u, w) / u_norm[:, None]
    term2 = _cross(w, v) / v_norm[:, None]
    answer[rows, m] = term1
    answer[rows, n] = term2
    answer[rows, o] = -(term1 + term2)
    return special


def _dihedral_derivatives(answer, rows, xyz, atoms) -> np.ndarray:
    """Fill the rows' derivatives (dihedrals and out-of-plane angles alike); none left."""
    m, o, p, n = atoms.T
    u_prime, w_prime, v_prime = xyz[m] - xyz[o], xyz[p] - xyz[o], xyz[n] - xyz[p]
    u_norm, w_norm, v_norm = _norms(u_prime), _norms(w_prime), _norms(v_prime)
    u, w, v = u_prime / u_norm[:, None], w_prime / w_norm[:, None], v_prime / v_norm[:, None]
    term1, term3 = _dihedral_terms(u, w, u_norm, w_norm)
    term2, term4 = _dihedral_terms(v, w, v_norm, w_norm)
    answer[rows, m] = term1
    answer[rows, n] = -term2
    answer[rows, o] = -term1 + term3 - term4
    answer[rows, p] = term2 - term3 + term4
    return np.zeros(len(rows), dtype=bool)


def _dihedral_terms(a, w, a_norm, w_norm) -> tuple[np.ndarray, np.ndarray]:
    """geomeTRIC's (a x w) / (|a'| sin^2) and (a x w) cos / (|w'| sin^2), zero where sin^2 < 1e-6."""
    cross, cosine = _cross(a, w), _dot(a, w)
    sine2 = 1 - cosine**2
    collinear = sine2 < 1e-6
    sine2 = np.where(collinear, 1.0, sine2)[:, None]
    first = np.where(collinear[:, None], 0.0, cross / (a_norm[:, None] * sine2))
    second = np.where(collinear[:, None], 0.0, cross * cosine[:, None] / (w_norm[:, None] * sine2))
    return first, second


VALUES = {Distance: _distances, Angle: _angles, Dihedral: _dihedrals, OutOfPlane: _dihedrals}
DERIVATIVES = {
    Distance: _distance_derivatives,
    Angle: _angle_derivatives,
    Dihedral: _dihedral_derivatives,
    OutOfPlane: _dihedral_derivatives,
}
