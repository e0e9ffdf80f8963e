"""MM partial charges of a scanned molecule: AM1-BCC through AmberTools' sqm.

`partial_charges` is a stage of its own, so that a molecule's charges are computed while its
scans run, once per scanned molecule whatever the QC level: they are stored like every other
result and handed to the fit with its scan (`FitTarget.charges`). The fit's profiles read them
through `charged_molecule`, which computes them itself, once per process, when none were
handed over.
"""

import numpy as np
from openff.toolkit import Molecule
from openff.toolkit.utils.toolkits import AmberToolsToolkitWrapper
from openff.units import unit

from bespoke_dask.schema import PartialCharges, ScannedMolecule

_known: dict[str, tuple[float, ...]] = {}  # mapped SMILES -> charges, in this process


def partial_charges(molecule: ScannedMolecule) -> PartialCharges:
    """The AM1-BCC charges of a scanned molecule, in the atom order of its scan's result."""
    from bespoke_dask.stages.torsiondrive import scanned_molecule

    mapped_smiles = scanned_molecule(molecule.smiles)[0].to_smiles(mapped=True)
    return PartialCharges(mapped_smiles=mapped_smiles, charges=list(am1bcc_charges(mapped_smiles)))


def remember(charges: PartialCharges) -> None:
    """Use `charges` for their molecule in this process instead of computing them."""
    _known[charges.mapped_smiles] = tuple(charges.charges)


def am1bcc_charges(mapped_smiles: str) -> tuple[float, ...]:
    """AM1-BCC partial charges (elementary charge, mapped-SMILES atom order) through sqm.

    Computed once per mapped SMILES and process (on one deterministic RDKit conformer), unless
    handed over with `remember`.
    """
    if mapped_smiles not in _known:
        molecule = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True)
        molecule.assign_partial_charges("am1bcc", toolkit_registry=AmberToolsToolkitWrapper())
        _known[mapped_smiles] = tuple(float(q) for q in molecule.partial_charges.m_as(unit.elementary_charge))
    return _known[mapped_smiles]


def charged_molecule(mapped_smiles: str) -> Molecule:
    """A fresh `Molecule` in mapped-SMILES atom order carrying its AM1-BCC charges."""
    molecule = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True)
    molecule.partial_charges = unit.Quantity(np.array(am1bcc_charges(mapped_smiles)), unit.elementary_charge)
    return molecule
