"""psi4 through its executable (``psi4 --json``). Methods with a D3 suffix (``b3lyp-d3bj``, ...),
which psi4 1.3 can only do through the missing ``dftd3`` executable, run as psi4's plain functional
plus the same D3 term from the ``dftd3`` package (simple-dftd3). Units follow QCSchema."""

import functools
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qcelemental.models import AtomicInput, AtomicResult
from qcengine.config import TaskConfig
from qcengine.exceptions import InputError as EngineInputError
from qcengine.programs.psi4 import Psi4Harness as QCEnginePsi4Harness

from bespoke_dask.schema.workflow import QCSpec

# psi4's composite "3c" methods need the gcp and dftd3 executables.
PSI4_3C = ("hf3c", "hf-3c", "pbeh3c", "pbeh-3c")



# Runs inside psi4's own Python: lists psi4's gradient methods and, for each D3-corrected functional
# that is exactly a plain psi4 functional plus D3, that functional and psi4's D3 parameters.
_PSI4_CATALOGUE_SCRIPT = r"""
import json, re
from psi4.driver.procrouting import proc_table
from psi4.driver.procrouting.dft import functionals
suffix = re.compile(r"-d3(zero|bj|\(bj\)|m|mzero|mbj|m\(bj\))?$")
def core(f):
    return {k: v for k, v in f.items() if k not in ("name", "alias", "dispersion", "citation", "description")}
d3 = {}
for method, functional in functionals.items():
    dispersion = functional.get("dispersion", {})
    if dispersion.get("type", "").startswith("d3"):
        base = suffix.sub("", method)
        plain = functionals.get(base)
        ok = plain is not None and "dispersion" not in plain and core(plain) == core(functional)
        d3[method] = [base if ok else None, dispersion["type"], dispersion["params"]]
print("CATALOGUE" + json.dumps({"gradient": sorted(proc_table.procedures["gradient"]), "d3": d3}))
"""


@dataclass(frozen=True)
class D3Correction:
    """A psi4 method split into its plain functional and a D3 term (two-body, as psi4 runs dftd3).

    The D3 parameters are psi4's own for its D3 functionals (`params`), else those the dftd3
    package has for the plain functional (`params` None: looked up by `functional`).
    """

    functional: str
    damping: str  # d3zero, d3bj, d3mzero, d3mbj
    params: dict[str, float] | None = None


_D3_SUFFIXES = {"-d3bj": "d3bj", "-d3(bj)": "d3bj", "-d3mbj": "d3mbj", "-d3zero": "d3zero", "-d3": "d3zero", "-d3mzero": "d3mzero"}


@dataclass(frozen=True)
class Psi4Catalogue:
    """What this psi4 can compute a gradient for."""

    gradient_methods: frozenset[str]
    d3: dict[str, D3Correction | None]  # None: a D3 functional that is not plain functional + D3


def psi4_executable() -> str | None:
    """Path of the psi4 executable, or None."""
    return shutil.which("psi4")


@functools.lru_cache(maxsize=1)
def psi4_catalogue() -> Psi4Catalogue | None:
    """Ask psi4 (0.3 s, once per process) which methods it has; None without psi4."""
    executable = psi4_executable()
    if executable is None:
        return None
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "catalogue.py").write_text(_PSI4_CATALOGUE_SCRIPT)
        run = subprocess.run(
            [executable, "-k", "catalogue.py", "catalogue.out"],
            cwd=directory, capture_output=True, text=True, timeout=120,
        )
    _, found, payload = run.stdout.partition("CATALOGUE")
    if not found:
        raise RuntimeError(f"cannot list psi4's methods: {run.stderr.strip()[-300:]}")
    data = json.loads(payload)
    d3 = {
        method: None if base is None else D3Correction(base, damping, params)
        for method, (base, damping, params) in data["d3"].items()
    }
    return Psi4Catalogue(frozenset(data["gradient"]), d3)


def d3_dispersion(correction: D3Correction, numbers, positions) -> tuple[float, Any]:
    """D3 energy (hartree) and gradient (hartree/bohr, natom x 3) at `positions` (bohr)."""
    from dftd3 import interface

    if correction.params is None:  # the dftd3 package's own parameters for the functional
        damping = _library_damping(correction)
        model = interface.DispersionModel(np.asarray(numbers), np.asarray(positions, dtype=float).reshape(-1, 3))
        result = model.get_dispersion(damping, grad=True)
        return float(result["energy"]), result["gradient"]
    p = correction.params
    damping = {
        "d3bj": lambda: interface.RationalDampingParam(s6=p["s6"], s8=p["s8"], a1=p["a1"], a2=p["a2"], s9=0.0),
        "d3mbj": lambda: interface.ModifiedRationalDampingParam(
            s6=p["s6"], s8=p["s8"], a1=p["a1"], a2=p["a2"], s9=0.0
        ),
        "d3zero": lambda: interface.ZeroDampingParam(
            s6=p["s6"], s8=p["s8"], rs6=p["sr6"], rs8=p["sr8"], alp=p["alpha6"], s9=0.0
        ),
        "d3mzero": lambda: interface.ModifiedZeroDampingParam(
            s6=p["s6"], s8=p["s8"], rs6=p["sr6"], bet=p["beta"], s9=0.0
        ),
    }[correction.damping]()
    model = interface.DispersionModel(np.asarray(numbers), np.asarray(positions, dtype=float).reshape(-1, 3))
    result = model.get_dispersion(damping, grad=True)
    return float(result["energy"]), result["gradient"]


class Psi4Harness(QCEnginePsi4Harness):
    """qcengine's psi4 harness, plus D3 from the dftd3 package and the task's own cores and memory.

    geomeTRIC calls qcengine without a task config; qcengine's geometric procedure leaves the
    optimization's config in ``extras["_qcengine_local_config"]``, which this harness applies.
    """

    class Config(QCEnginePsi4Harness.Config):
        pass

    @staticmethod
    def found(raise_error: bool = False) -> bool:
        # qcengine's check starts psi4 (0.3 s) on every call; geomeTRIC calls it per gradient.
        return _psi4_found() or QCEnginePsi4Harness.found(raise_error=raise_error)

    def compute(self, input_model: AtomicInput, config: TaskConfig) -> AtomicResult:
        config = _task_config(input_model, config)
        correction = _d3_correction(input_model.model.method)
        if correction is None:
            return super().compute(input_model, config)
        if input_model.driver not in ("energy", "gradient"):
            raise EngineInputError(f"psi4 {input_model.model.method}: only energies and gradients")
        plain = input_model.copy(
            update={"model": input_model.model.copy(update={"method": correction.functional})}, deep=True
        )
        return _add_dispersion(super().compute(plain, config), input_model, correction)


def _library_damping(correction: D3Correction):
    """The dftd3 package's damping parameters for `correction.functional` (three-body term off, as psi4)."""
    from dftd3 import interface

    kind = {
        "d3bj": interface.RationalDampingParam,
        "d3zero": interface.ZeroDampingParam,
        "d3mbj": interface.ModifiedRationalDampingParam,
        "d3mzero": interface.ModifiedZeroDampingParam,
    }[correction.damping]
    return kind(method=correction.functional, atm=False)


def _library_correction(method: str, catalogue: "Psi4Catalogue") -> D3Correction | None:
    """`<functional>-d3...` as psi4's plain functional plus the dftd3 package's D3 for it, if both exist."""
    for suffix, damping in _D3_SUFFIXES.items():
        if method.endswith(suffix):
            functional = method[: -len(suffix)]
            if functional not in catalogue.gradient_methods:
                return None
            correction = D3Correction(functional, damping)
            try:
                _library_damping(correction)
            except Exception:  # the dftd3 package has no parameters for it
                return None
            return correction
    return None


def _d3_correction(method: str) -> D3Correction | None:
    """How to split `method` into plain psi4 + D3, or None to run it as it is."""
    method = method.lower()
    if "-d3" not in method:
        return None
    catalogue = psi4_catalogue()
    if catalogue is None:
        return None
    if method in catalogue.d3:  # psi4's own D3 functional: plain + D3, or not splittable (None)
        return catalogue.d3[method]
    return _library_correction(method, catalogue)


@functools.lru_cache(maxsize=1)
def _psi4_found_cached() -> bool:
    return QCEnginePsi4Harness.found()


def _psi4_found() -> bool:
    return psi4_executable() is not None and _psi4_found_cached()


def _task_config(input_model: AtomicInput, config: TaskConfig) -> TaskConfig:
    """The optimization's task config when geomeTRIC passed it through extras, else `config`."""
    local = input_model.extras.get("_qcengine_local_config")
    return config if local is None else TaskConfig(**local)


def _add_dispersion(result: AtomicResult, request: AtomicInput, correction: D3Correction) -> AtomicResult:
    """`result` (plain functional) plus the D3 term, labelled with the requested method."""
    molecule = request.molecule
    energy, gradient = d3_dispersion(correction, molecule.atomic_numbers, molecule.geometry)
    properties = result.properties.dict()
    properties["return_energy"] += energy
    if properties.get("return_gradient") is not None:
        properties["return_gradient"] = properties["return_gradient"] + gradient
    qcvars = dict(result.extras.get("qcvars", {}))
    qcvars.update({"DISPERSION CORRECTION ENERGY": energy, "CURRENT ENERGY": properties["return_energy"]})
    total = result.return_result + (energy if request.driver == "energy" else gradient)
    return AtomicResult(
        **{
            **result.dict(),
            "model": request.model,
            "return_result": total,
            "properties": properties,
            "extras": {**result.extras, "qcvars": qcvars, "dispersion": "dftd3 package, psi4's D3 parameters"},
        }
    )


@functools.lru_cache(maxsize=None)
def psi4_basis_elements(basis: str) -> frozenset[str] | None:
    """Element symbols psi4's basis library defines for `basis`; None if psi4 has no such file."""
    path = _psi4_basis_directory() / f"{_psi4_basis_file_stem(basis)}.gbs"
    if not path.is_file():
        return None
    symbols = re.findall(r"^([A-Za-z]{1,2})\s+0\s*$", path.read_text(errors="replace"), re.MULTILINE)
    return frozenset(symbol.capitalize() for symbol in symbols)


def _psi4_basis_directory() -> Path:
    """psi4's basis library: <prefix>/share/psi4/basis next to <prefix>/bin/psi4."""
    return Path(psi4_executable() or "/usr/bin/psi4").resolve().parent.parent / "share" / "psi4" / "basis"


def _psi4_basis_file_stem(basis: str) -> str:
    """psi4's file name for a basis (6-31+G* -> 6-31pgs)."""
    stem = basis.lower()
    for old, new in (("(", "_"), (")", "_"), (",", "_"), ("*", "s"), ("+", "p")):
        stem = stem.replace(old, new)
    return stem


def psi4_model_error(spec: QCSpec) -> str | None:
    if spec.method in PSI4_3C:
        return f"psi4 cannot do {spec.method!r} here: it needs the dftd3 and gcp executables"
    if spec.basis is None:
        return f"psi4 {spec.method} needs a basis set"
    catalogue = psi4_catalogue()
    if catalogue is None:
        return None  # psi4 is not on this machine: the worker that runs it will tell
    if psi4_basis_elements(spec.basis) is None:
        return f"psi4 has no basis set {spec.basis!r} (looked in {_psi4_basis_directory()})"
    if _d3_correction(spec.method) is not None:
        return None
    if "-d3" in spec.method:
        return (
            f"psi4 cannot do {spec.method!r} here: it needs the dftd3 executable, and the dftd3 package "
            f"has no D3 parameters for a plain psi4 functional of that name"
        )
    if spec.method not in catalogue.gradient_methods:
        return f"psi4 has no gradient for method {spec.method!r}"
    return None
