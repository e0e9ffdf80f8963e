"""The charges stage: AM1-BCC charges of a scanned molecule through sqm, and the fit's use of them."""

import pytest
from openff.toolkit.utils.toolkits import AmberToolsToolkitWrapper
from openff.units import unit

from bespoke_dask.schema import ConstrainedOptimizationSettings, PartialCharges, QCSpec, ScannedMolecule, TorsionScanTask
from bespoke_dask.stages import charges, torsiondrive

TASK = TorsionScanTask(  # ethyl methyl ether's C-O bond
    smiles="[H]C([H])([H])[O:1][C:2]([H])([H])C([H])([H])[H]",
    grid_spacing=60,
    n_conformers=1,
    qc_spec=QCSpec(program="xtb", method="gfn2xtb", basis=None),
    optimization=ConstrainedOptimizationSettings(),
)


@pytest.fixture
def sqm_runs(monkeypatch) -> list:
    """Every AmberTools charge assignment from now on (they still run); no charges known yet."""
    runs = []
    assign = AmberToolsToolkitWrapper.assign_partial_charges
    monkeypatch.setattr(AmberToolsToolkitWrapper, "assign_partial_charges", lambda *a, **k: runs.append(1) or assign(*a, **k))
    monkeypatch.setattr(charges, "_known", {})
    return runs


def test_charges_follow_the_atom_order_of_the_scan(sqm_runs):
    result = charges.partial_charges(ScannedMolecule(smiles=TASK.smiles))
    assert result.mapped_smiles == torsiondrive.start(TASK).state.mapped_smiles
    molecule = charges.charged_molecule(result.mapped_smiles)
    assert len(result.charges) == molecule.n_atoms == 12
    assert sum(result.charges) == pytest.approx(0.0, abs=1e-6)
    (oxygen,) = [atom.molecule_atom_index for atom in molecule.atoms if atom.symbol == "O"]
    assert result.charges[oxygen] < -0.3
    assert len(sqm_runs) == 1  # charged_molecule reused the stage's charges


def test_the_fit_uses_charges_handed_over_without_running_sqm(sqm_runs):
    mapped_smiles = torsiondrive.scanned_molecule(TASK.smiles)[0].to_smiles(mapped=True)
    given = PartialCharges(mapped_smiles=mapped_smiles, charges=[0.5, -0.5] + [0.0] * 10)
    charges.remember(given)
    molecule = charges.charged_molecule(mapped_smiles)
    assert molecule.partial_charges.m_as(unit.elementary_charge).tolist() == given.charges
    assert sqm_runs == []
