"""Bespoke targets: parameters started from the base force field exactly, canonical scans, label checks."""

import pytest
from openff.toolkit import ForceField, Molecule

from bespoke_dask.schema import BespokeWorkflow, PfizerFragmentation, QCSpec, TorsionDriveSettings
from bespoke_dask.stages.force_field import build_force_field, proper_labels
from bespoke_dask.stages.fragment import fragment, parent_molecule
from bespoke_dask.stages.molecule import mapped_smiles_from_input
from bespoke_dask.stages.smirks import BespokeSmirksError
from bespoke_dask.stages.targets import bespoke_targets, check_labels

SAGE = "openff_unconstrained-2.2.0.offxml"


def _workflow(smiles: str, **settings) -> BespokeWorkflow:
    return BespokeWorkflow(smiles=mapped_smiles_from_input(smiles), fragmentation=PfizerFragmentation(), **settings)


@pytest.fixture(scope="module")
def paracetamol():
    workflow = _workflow(
        "CC(=O)Nc1ccc(O)cc1",
        torsiondrive=TorsionDriveSettings(grid_spacing=30, n_conformers=3),
        qc_spec=QCSpec(program="xtb", method="gfn2xtb", basis=None),
    )
    return workflow, fragment(workflow), bespoke_targets(workflow, fragment(workflow))


def _parameters(targets):
    return list({p.smirks: p for t in targets for p in t.parameters}.values())


def test_each_type_starts_from_the_base_parameter_with_all_its_terms(paracetamol):
    workflow, _, targets = paracetamol
    parent = parent_molecule(workflow.smiles)
    sage = proper_labels(ForceField(SAGE), parent)
    handler = ForceField(SAGE).get_parameter_handler("ProperTorsions")
    for parameter in _parameters(targets):
        base = handler.parameters[sage[tuple(parameter.parent_torsions[0])]]
        assert {sage[tuple(t)] for t in parameter.parent_torsions} == {base.smirks}
        assert parameter.base_id == base.id
        terms = {int(n): (k.m_as("kilocalorie / mole"), p.m_as("degree")) for n, k, p in zip(base.periodicity, base.k, base.phase)}
        assert set(terms) <= set(parameter.periodicities) and {1, 2, 3, 4} <= set(parameter.periodicities)
        for n, k, phase in zip(parameter.periodicities, parameter.k, parameter.phases):
            assert (k, phase) == pytest.approx(terms.get(n, (0.0, phase)))


def test_the_amide_types_start_apart(paracetamol):
    """Sage types O=C-N-H, O=C-N-c, C-C-N-H and C-C-N-c differently: so do the starting values."""
    workflow, _, targets = paracetamol
    amide = next(t for t in targets if len(t.parameters) == 4)
    assert len({p.base_id for p in amide.parameters}) == 3  # Sage shares one (t75) between two of them
    assert len({tuple(p.k) for p in amide.parameters}) == 3


def test_starting_force_field_types_the_parent_as_the_base_does(paracetamol):
    """Same terms on every torsion: bespoke SMIRKS at their starting values change no energy."""
    workflow, _, targets = paracetamol
    parent = parent_molecule(workflow.smiles)
    bespoke = ForceField(build_force_field(SAGE, _parameters(targets)))
    base = ForceField(SAGE)
    system_terms = []
    for force_field in (base, bespoke):
        labels = force_field.label_molecules(parent.to_topology())[0]["ProperTorsions"]
        system_terms.append({
            tuple(atoms): sorted(
                (int(n), round(p.m_as("degree"), 6), round(k.m_as("kilocalorie / mole") / (d or 1.0), 9))
                for n, p, k, d in zip(q.periodicity, q.phase, q.k, q.idivf or [1.0] * len(q.k))
                if abs(k.m_as("kilocalorie / mole")) > 0
            )
            for atoms, q in labels.items()
        })
    assert system_terms[0] == system_terms[1]


def test_scan_task_is_canonical_and_carries_the_settings(paracetamol):
    workflow, fragmentation, targets = paracetamol
    for item, target in zip(fragmentation.fragments, targets):
        scan = target.scan
        molecule = Molecule.from_smiles(scan.smiles, allow_undefined_stereo=True)
        assert sorted(molecule.properties["atom_map"].values()) == [1, 2]
        assert molecule.is_isomorphic_with(parent_molecule(item.smiles))
        assert (scan.grid_spacing, scan.n_conformers, scan.qc_spec) == (30, 3, workflow.qc_spec)


def test_same_fragment_from_two_parents_is_the_same_scan(paracetamol):
    """Paracetamol and 4-chloroacetanilide share acetanilide as Pfizer fragment of both bonds."""
    settings = paracetamol[0].model_dump(include={"torsiondrive", "qc_spec"})
    workflow = _workflow("Clc1ccc(NC(C)=O)cc1", **settings)
    other = bespoke_targets(workflow, fragment(workflow))
    assert sorted(t.scan.content_hash() for t in paracetamol[2]) == sorted(t.scan.content_hash() for t in other)


def test_a_broken_parameter_fails_the_parent_check_naming_the_bond(paracetamol):
    workflow, _, targets = paracetamol
    parameters = _parameters(targets)
    parent = parent_molecule(workflow.smiles)
    check_labels(ForceField(build_force_field(SAGE, parameters)), parent, parameters)  # as made: fine
    broken = parameters[0].model_copy(update={"smirks": parameters[0].smirks.replace("#8", "#16")})
    wrong = [broken] + parameters[1:]
    with pytest.raises(BespokeSmirksError, match=r"bond \(\d+, \d+\)"):
        check_labels(ForceField(build_force_field(SAGE, wrong)), parent, wrong)


def test_a_bond_its_fragment_makes_symmetric_with_another_is_scanned_in_the_parent():
    """Propyl ethyl ether: the Pfizer fragment of the O-ethyl bond cuts the propyl to an ethyl, so in
    it (diethyl ether) both C-O bonds are the same; no SMIRKS can tell them apart there."""
    workflow = _workflow("CCCOCC")
    fragmentation = fragment(workflow)
    targets = bespoke_targets(workflow, fragmentation)
    parent = parent_molecule(workflow.smiles)
    whole = [t for t in targets if Molecule.from_smiles(t.scan.smiles).n_atoms == parent.n_atoms]
    whole_fragments = [f for f in fragmentation.fragments if parent_molecule(f.smiles).n_atoms == parent.n_atoms]
    assert len(whole) > len(whole_fragments)  # a bond the fragmenter cut short is scanned in the whole molecule
    force_field = ForceField(build_force_field(SAGE, _parameters(targets)))
    check_labels(force_field, parent, _parameters(targets))  # every target torsion of the parent is bespoke
