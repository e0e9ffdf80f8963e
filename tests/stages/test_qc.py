"""The QC stage against real engines: tblite GFN-xTB, rdkit MMFF94, psi4 (skipped without /usr/bin/psi4)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before tblite/dftd3 load OpenMP

import itertools
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import qcelemental as qcel
import qcengine
from geometric.internal import InternalCoordinates

from bespoke_dask.errors import InputError
from bespoke_dask.schema import ConstrainedOptimization, ConstrainedOptimizationSettings, QCSpec
from bespoke_dask.stages.engines import check_qc_spec, program_available, register_engines
from bespoke_dask.stages.psi4 import Psi4Harness, d3_dispersion, psi4_catalogue
from bespoke_dask.stages.qc import QCError, optimization_input, optimize_constrained, qcschema_molecule
from bespoke_dask.stages.xtb import TBLiteHarness

HAVE_PSI4 = shutil.which("psi4") is not None
needs_psi4 = pytest.mark.skipif(not HAVE_PSI4, reason="psi4 is not installed")

# Start geometries in bohr (RDKit conformers), atom order of the mapped SMILES.
ETHANOL = "[C:1]([C:2]([O:3][H:9])([H:7])[H:8])([H:4])([H:5])[H:6]"
ETHANOL_XYZ = [
    [1.6945, -0.1451, -0.0284], [-1.0894, -0.6638, 0.1133], [-2.4873, 1.5334, 0.3868],
    [2.4044, 0.2746, 1.9144], [1.9799, 1.5545, -1.182], [2.7358, -1.8244, -0.6519],
    [-1.5109, -1.8075, 1.8413], [-1.6242, -1.782, -1.554], [-2.103, 2.8604, -0.8394],
]
ETHANOL_HOCC = (8, 2, 1, 0)
ACETATE = "[C:1]([C:2](=[O:3])[O-:4])([H:5])([H:6])[H:7]"
ACETATE_XYZ = [
    [-1.2797, -0.059, -0.0356], [1.5199, -0.026, 0.0249], [2.573, 2.0946, 0.1857],
    [3.0021, -2.1351, -0.0823], [-1.784, 1.5162, -1.3433], [-1.9852, 0.4836, 1.9029],
    [-2.0461, -1.8743, -0.6522],
]
ACETATE_HCCO = (4, 0, 1, 2)
PEROXIDE = "[O:1]([O:2][H:4])[H:3]"
PEROXIDE_XYZ = [[-1.2468, 0.8483, 0.1071], [1.2118, 0.8718, -0.1063], [-1.9299, -0.8682, -0.0678], [1.965, -0.8519, 0.0669]]
PEROXIDE_HOOH = (2, 0, 1, 3)
METHANOL_SYMBOLS = ["C", "O", "H", "H", "H", "H"]
METHANOL_XYZ = [
    [-0.6637, -0.0076, -0.0315], [1.8134, -0.7119, -0.4918], [-1.1264, 0.1113, 1.9961],
    [-1.8749, -1.5173, -0.8767], [-1.2337, 1.7745, -0.9296], [3.0854, 0.3509, 0.3335],
]


def job(smiles, xyz, dihedral, angle, program, method, basis=None, **settings):
    return ConstrainedOptimization(
        mapped_smiles=smiles,
        geometry=np.ravel(xyz).tolist(),
        dihedral=dihedral,
        angle=angle,
        qc_spec=QCSpec(program=program, method=method, basis=basis),
        optimization=ConstrainedOptimizationSettings(**settings),
    )


def dihedral_degrees(geometry, indices):
    """Signed dihedral (IUPAC convention, as geomeTRIC) in degrees."""
    x = np.reshape(geometry, (-1, 3))
    i, j, k, l = indices
    b1, b2, b3 = x[j] - x[i], x[k] - x[j], x[l] - x[k]
    sine = np.linalg.norm(b2) * np.dot(b1, np.cross(b2, b3))
    return np.degrees(np.arctan2(sine, np.dot(np.cross(b1, b2), np.cross(b2, b3))))


def assert_on_angle(result, request):
    measured = dihedral_degrees(result.final_geometry, request.dihedral)
    assert abs((measured - request.angle + 180) % 360 - 180) < 0.5
    assert result.initial_geometry == request.geometry
    assert len(result.final_geometry) == len(request.geometry)
    assert result.n_gradients >= 1


@pytest.mark.parametrize("method", ["gfn2xtb", "gfn1-xtb"])
def test_xtb_constrained_optimization(method):
    request = job(ETHANOL, ETHANOL_XYZ, ETHANOL_HOCC, 120.0, "xtb", method)
    result = optimize_constrained(request)
    assert_on_angle(result, request)
    assert -12.5 < result.energy < -11.0  # GFN ethanol, hartree


def test_xtb_charged_molecule():
    request = job(ACETATE, ACETATE_XYZ, ACETATE_HCCO, 30.0, "xtb", "gfn2xtb")
    assert qcschema_molecule(request.mapped_smiles, request.geometry).molecular_charge == -1
    result = optimize_constrained(request)
    assert_on_angle(result, request)
    assert -16.0 < result.energy < -14.0


def test_rdkit_mmff94_constrained_optimization():
    request = job(ETHANOL, ETHANOL_XYZ, ETHANOL_HOCC, -60.0, "rdkit", "mmff94")
    result = optimize_constrained(request)
    assert_on_angle(result, request)
    assert abs(result.energy) < 0.05  # MMFF94 ethanol is a few kcal/mol


STALLING = Path(__file__).parent.parent / "data" / "mmff94_constraint_stall.json"
MAX_CONVERSIONS = 10_000  # internal-to-Cartesian conversions: the fixed run makes about 1,400


def test_an_optimization_whose_constraint_enforcement_stalls_ends(monkeypatch):
    """geomeTRIC 1.1.1 ran this MMFF94 job (from `perf.py scale`) for ever: its exact constraint
    enforcement shrank a 0.91 rad error by 2e-10 rad per iteration (stages/geometric_fix.py).
    Counted in coordinate conversions, not seconds: unfixed, the count passes any bound."""
    conversions = itertools.count()
    convert = InternalCoordinates.newCartesian

    def counted(self, *args, **kwargs):
        if next(conversions) > MAX_CONVERSIONS:
            raise RuntimeError("still converting coordinates: the constraint enforcement stalled")
        return convert(self, *args, **kwargs)

    monkeypatch.setattr(InternalCoordinates, "newCartesian", counted)
    result = optimize_constrained(ConstrainedOptimization.model_validate_json(STALLING.read_text()))
    assert result.n_gradients > 1 and np.isfinite(result.energy)


@needs_psi4
def test_psi4_hf_constrained_optimization():
    request = job(PEROXIDE, PEROXIDE_XYZ, PEROXIDE_HOOH, 150.0, "psi4", "hf", "sto-3g")
    result = optimize_constrained(request, n_cores=1, max_memory=0.5)
    assert_on_angle(result, request)
    assert -148.8 < result.energy < -148.7


@needs_psi4
def test_psi4_gets_the_task_cores_and_memory_through_geometric():
    register_engines()
    request = job(PEROXIDE, PEROXIDE_XYZ, PEROXIDE_HOOH, 120.0, "psi4", "hf", "sto-3g")
    molecule = qcschema_molecule(request.mapped_smiles, request.geometry)
    result = qcengine.compute_procedure(
        optimization_input(request, molecule), "geometric", task_config={"ncores": 1, "memory": 0.6}
    )
    assert result.success
    assert {(step.provenance.nthreads, step.provenance.memory) for step in result.trajectory} == {(1, 0.6)}


def _psi4(driver, xyz, method, keywords=None):
    molecule = qcel.models.Molecule(
        symbols=METHANOL_SYMBOLS, geometry=np.ravel(xyz), fix_com=True, fix_orientation=True
    )
    request = {"molecule": molecule, "driver": driver, "model": {"method": method, "basis": "dzvp"}}
    result = qcengine.compute(
        request | {"keywords": keywords or {}}, "psi4", raise_error=True, task_config={"ncores": 2, "memory": 1}
    )
    return np.asarray(result.return_result), result


@needs_psi4
def test_psi4_b3lyp_d3bj_is_b3lyp_plus_dftd3():
    register_engines()
    xyz = np.array(METHANOL_XYZ)
    gradient, result = _psi4("gradient", xyz, "b3lyp-d3bj")
    plain, plain_result = _psi4("gradient", xyz, "b3lyp")
    from dftd3.interface import DispersionModel, RationalDampingParam

    # Grimme's B3LYP-D3(BJ), two-body only as psi4 runs it
    damping = RationalDampingParam(s6=1.0, s8=1.9889, a1=0.3981, a2=4.4211, s9=0.0)
    d3 = DispersionModel(np.array([6, 8, 1, 1, 1, 1]), xyz).get_dispersion(damping, grad=True)
    assert result.model.method == "b3lyp-d3bj"
    assert result.properties.return_energy == pytest.approx(
        plain_result.properties.return_energy + d3["energy"], abs=1e-9
    )
    np.testing.assert_allclose(gradient, plain + d3["gradient"], atol=1e-9)

    # a finite difference of the energy along the coordinate where D3 pulls hardest
    atom, axis = np.unravel_index(np.abs(d3["gradient"]).argmax(), xyz.shape)
    step, tight = 1e-3, {"e_convergence": 1e-10, "d_convergence": 1e-10}
    shifted = [xyz.copy(), xyz.copy()]
    shifted[0][atom, axis] += step
    shifted[1][atom, axis] -= step
    energies = [_psi4("energy", x, "b3lyp-d3bj", tight)[0] for x in shifted]
    finite_difference = (energies[0] - energies[1]) / (2 * step)
    assert abs(d3["gradient"][atom, axis]) > 5e-5  # the D3 term matters at this tolerance
    assert finite_difference == pytest.approx(gradient[atom, axis], abs=2e-5)


def test_register_engines_is_idempotent():
    register_engines()
    xtb = qcengine.get_program("xtb")
    register_engines()
    assert qcengine.get_program("xtb") is xtb
    assert isinstance(xtb, TBLiteHarness)
    assert isinstance(qcengine.get_program("psi4", check=False), Psi4Harness)


def test_program_available():
    assert program_available("xtb") and program_available("rdkit")
    assert program_available("psi4") == HAVE_PSI4
    assert not program_available("gaussian")


@pytest.mark.parametrize(
    "spec, elements",
    [
        (QCSpec(program="xtb", method="gfn2xtb", basis=None), ["C", "H", "O", "Cl", "Br", "I", "Rn"]),
        (QCSpec(program="xtb", method="gfn2-xtb", basis="none"), ["C"]),
        (QCSpec(program="xtb", method="GFN1-xTB", basis=None), ["C"]),
        (QCSpec(program="rdkit", method="mmff94", basis=None), ["C", "H", "N", "O", "F", "S", "Cl", "Br", "I", "P"]),
        (QCSpec(program="rdkit", method="uff", basis=None), ["B", "Si", "Se"]),
    ],
)
def test_check_qc_spec_accepts(spec, elements):
    check_qc_spec(spec, elements)


@pytest.mark.parametrize(
    "spec, elements, message",
    [
        (QCSpec(program="gaussian", method="b3lyp", basis="6-31g*"), ["C"], "unknown QC program 'gaussian'"),
        (QCSpec(program="xtb", method="gfn2xtb", basis="sto-3g"), ["C"], "xtb takes no basis set"),
        (QCSpec(program="xtb", method="gfnff", basis=None), ["C"], "xtb cannot do method 'gfnff'"),
        (QCSpec(program="xtb", method="gfn2xtb", basis=None), ["C", "U"], "cannot handle element(s) U"),
        (QCSpec(program="rdkit", method="mmff94", basis=None), ["C", "B"], "cannot handle element(s) B"),
        (QCSpec(program="rdkit", method="gaff", basis=None), ["C"], "rdkit cannot do method"),
        (QCSpec(program="xtb", method="gfn2xtb", basis=None), ["Xx"], "unknown element 'Xx'"),
    ],
)
def test_check_qc_spec_rejects(spec, elements, message):
    with pytest.raises(InputError) as error:
        check_qc_spec(spec, elements)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@needs_psi4
@pytest.mark.parametrize(
    "spec, elements, message",
    [
        (QCSpec(), ["C", "H", "Pt"], "psi4 b3lyp-d3bj/dzvp cannot handle element(s) Pt"),
        (QCSpec(method="b3lyp-d3bj", basis="nosuchbasis"), ["C"], "psi4 has no basis set 'nosuchbasis'"),
        (QCSpec(method="nosuchmethod"), ["C"], "psi4 has no gradient for method 'nosuchmethod'"),
        (QCSpec(method="b97-d3bj"), ["C"], "needs the dftd3 executable"),
        # psi4 1.3's wB97X-D3BJ is wB97X-V's functional without VV10: not plain wB97X plus D3
        (QCSpec(method="wb97x-d3bj", basis="def2-tzvpd"), ["C"], "needs the dftd3 executable"),
        (QCSpec(method="b3lyp", basis=None), ["C"], "needs a basis set"),
    ],
)
def test_check_qc_spec_rejects_psi4(spec, elements, message):
    with pytest.raises(InputError) as error:
        check_qc_spec(spec, elements)
    assert message in str(error.value)


@needs_psi4
def test_psi4_d3bj_of_a_functional_psi4_has_no_d3_for_uses_the_dftd3_packages_parameters():
    """psi4 1.3 has BHandHLYP but no BHandHLYP-D3BJ; the dftd3 package has its D3(BJ): plain + D3."""
    register_engines()
    xyz = np.array(METHANOL_XYZ)
    check_qc_spec(QCSpec(method="bhandhlyp-d3bj", basis="dzvp"), ["C", "H", "O"])
    energy, _ = _psi4("energy", xyz, "bhandhlyp-d3bj")
    plain, _ = _psi4("energy", xyz, "bhandhlyp")
    from dftd3.interface import DispersionModel, RationalDampingParam

    damping = RationalDampingParam(method="bhandhlyp", atm=False)
    d3 = DispersionModel(np.array([6, 8, 1, 1, 1, 1]), xyz).get_dispersion(damping, grad=False)
    assert d3["energy"] < 0
    assert float(energy) == pytest.approx(float(plain) + d3["energy"], abs=1e-9)


@needs_psi4
def test_check_qc_spec_accepts_psi4():
    check_qc_spec(QCSpec(), ["C", "H", "N", "O", "S", "Cl", "Br", "I"])  # BespokeFit's default
    check_qc_spec(QCSpec(method="hf", basis="6-31G*"), ["C", "H"])
    assert psi4_catalogue().d3["b3lyp-d3bj"].functional == "b3lyp"


def test_check_qc_spec_charge():
    check_qc_spec(QCSpec(program="xtb", method="gfn2xtb", basis=None), ["C", "O", "H"], charge=-1)
    with pytest.raises(InputError, match="rdkit cannot do charged molecules"):
        check_qc_spec(QCSpec(program="rdkit", method="mmff94", basis=None), ["C", "O", "H"], charge=-1)


def test_unsupported_input_is_rejected_before_running():
    with pytest.raises(InputError, match="unknown QC program"):
        optimize_constrained(job(ETHANOL, ETHANOL_XYZ, ETHANOL_HOCC, 0.0, "gaussian", "hf", "sto-3g"))
    with pytest.raises(InputError, match="charged"):
        optimize_constrained(job(ACETATE, ACETATE_XYZ, ACETATE_HCCO, 0.0, "rdkit", "mmff94"))
    with pytest.raises(InputError, match="coordinates"):
        optimize_constrained(job(ETHANOL, ETHANOL_XYZ[:-1], ETHANOL_HOCC, 0.0, "xtb", "gfn2xtb"))


def test_failed_optimization_is_one_line_qc_error():
    request = job(ETHANOL, ETHANOL_XYZ, ETHANOL_HOCC, 120.0, "xtb", "gfn2xtb", maxiter=2)
    with pytest.raises(QCError) as error:
        optimize_constrained(request)
    assert str(error.value).startswith("xtb gfn2xtb failed: GeomOptNotConvergedError: ")
    assert "\n" not in str(error.value)
    assert "Traceback" in error.value.details


@needs_psi4
def test_psi4_crash_is_one_line_qc_error():
    request = job(PEROXIDE, PEROXIDE_XYZ, PEROXIDE_HOOH, 150.0, "psi4", "hf", "sto-3g")
    with pytest.raises(QCError) as error:
        optimize_constrained(request, max_memory=0.01)  # psi4 refuses less than 250 MiB
    message = str(error.value)
    assert message.startswith("psi4 hf/sto-3g failed: ValidationError: set_memory()")
    assert "\n" not in message and len(message) < 400
    assert "json_wrapper" in error.value.details
    copy = pickle.loads(pickle.dumps(error.value))  # crosses process boundaries intact
    assert str(copy) == message and copy.details == error.value.details


def test_d3_dispersion_needs_no_psi4_for_known_parameters():
    from bespoke_dask.stages.psi4 import D3Correction

    correction = D3Correction("b3lyp", "d3bj", {"s6": 1.0, "s8": 1.9889, "a1": 0.3981, "a2": 4.4211})
    energy, gradient = d3_dispersion(correction, [6, 8, 1, 1, 1, 1], METHANOL_XYZ)
    assert -0.005 < energy < 0
    np.testing.assert_allclose(gradient.sum(axis=0), 0.0, atol=1e-10)  # translation invariance
