"""QC engines: one record per program (how it runs, what it can do) and one registration mechanism.

- ``xtb``: GFN2-xTB / GFN1-xTB through the ``tblite`` package (`stages/xtb.py`).
- ``psi4``: the ``psi4`` executable, D3 corrections from the ``dftd3`` package (`stages/psi4.py`).
- ``rdkit``: MMFF94(s) and UFF through qcengine's own harness.
"""

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import qcengine
from qcelemental import periodictable
from qcelemental.util import which_import
from qcengine.programs.model import ProgramHarness

from bespoke_dask.errors import InputError
from bespoke_dask.schema.workflow import QCSpec
from bespoke_dask.stages.psi4 import (
    Psi4Harness,
    psi4_basis_elements,
    psi4_executable,
    psi4_model_error,
)
from bespoke_dask.stages.xtb import XTB_MAX_Z, XTB_METHODS, TBLiteHarness

# MMFF94 covers these covalently bound elements (its other types are free ions: Li+, Na+, K+, Mg2+, ...).
MMFF_ELEMENTS = frozenset("H C N O F Si P S Cl Br I".split())
UFF_MAX_Z = 103
RDKIT_METHODS = ("mmff94", "mmff94s", "uff")


@dataclass(frozen=True)
class Engine:
    """One QC program: our harness (None keeps qcengine's own) and what it can do."""

    program: str
    harness: type[ProgramHarness] | None
    model_error: Callable[[QCSpec], str | None]  # why the method/basis cannot run, or None
    elements: Callable[[QCSpec], frozenset[str] | None]  # element symbols it handles; None: no check
    available: Callable[[], bool]
    elements_note: str = ""
    charged: bool = True  # handles charged molecules
    install: str = ""  # how to install the program


def _methods_without_basis(program: str, methods: Iterable[str]) -> Callable[[QCSpec], str | None]:
    """The model check of a program that takes one of `methods` and no basis set."""

    def model_error(spec: QCSpec) -> str | None:
        if spec.method not in methods:
            return f"{program} cannot do method {spec.method!r}; use one of {', '.join(methods)}"
        if spec.basis is not None:
            return f"{program} takes no basis set (got {spec.basis!r}); use basis none"
        return None

    return model_error


@functools.lru_cache(maxsize=None)
def _elements_up_to(max_z: int) -> frozenset[str]:
    return frozenset(periodictable.to_E(z) for z in range(1, max_z + 1))


ENGINES = {
    "xtb": Engine(
        program="xtb",
        harness=TBLiteHarness,
        model_error=_methods_without_basis("xtb", XTB_METHODS),
        elements=lambda spec: _elements_up_to(XTB_MAX_Z),
        available=TBLiteHarness.found,
        elements_note=f"GFN-xTB is parametrised up to Z={XTB_MAX_Z}",
        install="pip install tblite",
    ),
    "psi4": Engine(
        program="psi4",
        harness=Psi4Harness,
        model_error=psi4_model_error,
        elements=lambda spec: None if spec.basis is None else psi4_basis_elements(spec.basis),
        available=lambda: psi4_executable() is not None,
        elements_note="not in psi4's basis set",
        install="apt-get install psi4 (Debian/Ubuntu) or conda install -c conda-forge psi4",
    ),
    "rdkit": Engine(
        program="rdkit",
        harness=None,
        model_error=_methods_without_basis("rdkit", RDKIT_METHODS),
        elements=lambda spec: _elements_up_to(UFF_MAX_Z) if spec.method == "uff" else MMFF_ELEMENTS,
        available=lambda: which_import("rdkit", return_bool=True),
        elements_note=f"MMFF94 types only {' '.join(sorted(MMFF_ELEMENTS))}",
        charged=False,  # qcengine's rdkit harness
        install="pip install rdkit",
    ),
}


def register_engines() -> None:
    """Put our harnesses in qcengine's registry in place of its own (idempotent, cheap)."""
    for engine in ENGINES.values():
        if engine.harness is None:
            continue
        current = qcengine.programs.base.programs.get(engine.program)
        if isinstance(current, engine.harness):
            continue
        if current is not None:
            qcengine.unregister_program(engine.program)
        qcengine.register_program(engine.harness())


def program_available(program: str) -> bool:
    """Whether `program` can run on this machine (psi4: the executable is on PATH)."""
    engine = ENGINES.get(program.lower())
    return engine is not None and bool(engine.available())


def check_qc_spec(spec: QCSpec, elements: Iterable[str], charge: float = 0.0) -> None:
    """Raise InputError (one line) unless `spec` can compute gradients of a molecule made of
    `elements` (symbols) with total `charge` (e).

    psi4's methods and basis sets are only checked where psi4 is installed.
    """
    engine = ENGINES.get(spec.program)
    if engine is None:
        raise InputError(f"unknown QC program {spec.program!r}; use one of {', '.join(ENGINES)}")
    problem = engine.model_error(spec)
    if problem:
        raise InputError(problem)
    if charge and not engine.charged:
        raise InputError(f"{spec.program} cannot do charged molecules (charge {charge:+g}); use xtb or psi4")
    allowed = engine.elements(spec)
    if allowed is None:
        return
    missing = sorted({_symbol(element) for element in elements} - allowed, key=periodictable.to_Z)
    if missing:
        elements_text = ", ".join(missing)
        raise InputError(f"{spec_label(spec)} cannot handle element(s) {elements_text}: {engine.elements_note}")


def require_program(program: str) -> None:
    """Raise InputError, saying how to install it, unless `program` can run on this machine."""
    if not program_available(program):
        engine = ENGINES[program]
        raise InputError(f"{program} is not installed on this worker: {engine.install}")


def spec_label(spec: QCSpec) -> str:
    """'psi4 b3lyp-d3bj/dzvp', 'xtb gfn2xtb'."""
    return f"{spec.program} {spec.method}" + (f"/{spec.basis}" if spec.basis else "")


def _symbol(element: str) -> str:
    """Canonical element symbol ('CL' -> 'Cl'); InputError if there is no such element."""
    try:
        return periodictable.to_E(periodictable.to_Z(element.strip().capitalize()))
    except Exception as error:
        raise InputError(f"unknown element {element!r}") from error
