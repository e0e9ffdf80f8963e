"""GFN2-xTB and GFN1-xTB through the ``tblite`` package, as qcengine's program ``xtb`` (in place of
qcengine's xtb-python harness). Units follow QCSchema: bohr, hartree, hartree/bohr."""

from qcelemental.models import AtomicInput, AtomicResult
from qcelemental.util import which_import
from qcengine.config import TaskConfig
from qcengine.exceptions import InputError as EngineInputError
from qcengine.exceptions import UnknownError
from qcengine.programs.model import ProgramHarness

XTB_METHODS = {
    "gfn2xtb": "GFN2-xTB",
    "gfn2-xtb": "GFN2-xTB",
    "gfn1xtb": "GFN1-xTB",
    "gfn1-xtb": "GFN1-xTB",
}
XTB_MAX_Z = 86


class TBLiteHarness(ProgramHarness):
    """GFN2-xTB and GFN1-xTB energies and gradients from tblite, under qcengine's program name "xtb"."""

    _defaults = {
        "name": "xtb",
        "scratch": False,
        "thread_safe": True,
        "thread_parallel": True,  # OpenMP: OMP_NUM_THREADS at process start
        "node_parallel": False,
        "managed_memory": False,
    }

    class Config(ProgramHarness.Config):
        pass

    @staticmethod
    def found(raise_error: bool = False) -> bool:
        return which_import(
            "tblite", return_bool=True, raise_error=raise_error, raise_msg="pip install tblite"
        )

    def get_version(self) -> str:
        from tblite.library import get_version

        return ".".join(str(part) for part in get_version())

    def compute(self, input_model: AtomicInput, config: TaskConfig) -> AtomicResult:
        from tblite.exceptions import TBLiteRuntimeError
        from tblite.interface import Calculator

        method = _xtb_method(input_model)
        molecule = input_model.molecule
        log: list[str] = []
        try:
            calculator = Calculator(
                method,
                molecule.atomic_numbers,
                molecule.geometry,
                charge=float(molecule.molecular_charge),
                uhf=molecule.molecular_multiplicity - 1,
                color=False,
                logger=log.append,
            )
            for key, value in {"verbosity": 0, **input_model.keywords}.items():
                calculator.set(key, value)
            result = calculator.singlepoint()
        except TBLiteRuntimeError as error:
            raise UnknownError(f"tblite: {error}") from error
        except (ValueError, TypeError) as error:  # tblite's value/type errors derive from these
            raise EngineInputError(f"tblite: {error}") from error
        energy = float(result.get("energy"))
        gradient = result.get("gradient")
        return AtomicResult(
            **{
                **input_model.dict(),
                "return_result": energy if input_model.driver == "energy" else gradient,
                "properties": {"return_energy": energy, "calcinfo_natom": len(molecule.symbols)},
                "provenance": {"creator": "tblite", "version": self.get_version(), "routine": "tblite.interface"},
                "stdout": "\n".join(log) or None,
                "success": True,
            }
        )


def _xtb_method(input_model: AtomicInput) -> str:
    """tblite's name for the requested method; rejects what tblite cannot run."""
    method = XTB_METHODS.get(input_model.model.method.lower())
    if method is None:
        raise EngineInputError(f"xtb (tblite) cannot do {input_model.model.method!r}; use gfn2xtb or gfn1xtb")
    if input_model.model.basis:
        raise EngineInputError("xtb takes no basis set")
    if input_model.driver not in ("energy", "gradient"):
        raise EngineInputError(f"xtb (tblite) cannot compute {input_model.driver}")
    from tblite.interface import Calculator

    unknown = set(input_model.keywords) - set(Calculator._setter)
    if unknown:
        raise EngineInputError(f"unknown tblite keywords: {', '.join(sorted(unknown))}")
    return method
