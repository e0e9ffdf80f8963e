"""Bespoke SMIRKS, canonical scan tasks and the bespoke force field (real toolkit, Pfizer fragments)."""

import re

import pytest
from openff.toolkit import ForceField, Molecule
from openff.toolkit.utils.exceptions import SMIRNOFFSpecError

from bespoke_dask.schema import (
    BespokeWorkflow,
    NoFragmentation,
    PfizerFragmentation,
    QCSpec,
    TorsionDriveSettings,
)
from bespoke_dask.stages.fragment import fragment, parent_molecule
from bespoke_dask.stages.molecule import mapped_smiles_from_input
from bespoke_dask.stages.smirks import (
    BespokeSmirksError,
    bespoke_targets,
    build_force_field,
    check_covers,
    read_bespoke_parameters,
)

SAGE = "openff_unconstrained-2.2.0.offxml"


def _workflow(smiles: str, fragmentation=PfizerFragmentation(), **settings) -> BespokeWorkflow:
    return BespokeWorkflow(smiles=mapped_smiles_from_input(smiles), fragmentation=fragmentation, **settings)


def _targets(workflow: BespokeWorkflow):
    return bespoke_targets(workflow, fragment(workflow))


@pytest.fixture(scope="module")
def paracetamol():
    workflow = _workflow(
        "CC(=O)Nc1ccc(O)cc1",
        torsiondrive=TorsionDriveSettings(grid_spacing=30, n_conformers=3),
        qc_spec=QCSpec(program="tblite", method="gfn2-xtb", basis=None),
    )
    return workflow, fragment(workflow), _targets(workflow)


def _torsions_about(molecule: Molecule, bond) -> set[tuple[int, ...]]:
    """Every proper torsion about `bond`, straight from the toolkit, oriented with b < c."""
    torsions = set()
    for proper in molecule.propers:
        indices = tuple(atom.molecule_atom_index for atom in proper)
        if set(indices[1:3]) == set(bond):
            torsions.add(indices if indices[1] < indices[2] else indices[::-1])
    return torsions


def _oriented(labels) -> dict:
    """Torsion labels keyed by torsions oriented with b < c."""
    return {(t if t[1] < t[2] else t[::-1]): parameter for t, parameter in labels.items()}


def _matches(molecule: Molecule, smirks: str) -> set[tuple[int, ...]]:
    return {m if m[1] < m[2] else m[::-1] for m in molecule.chemical_environment_matches(smirks)}


def test_smirks_cover_every_torsion_in_parent_and_fragment(paracetamol):
    workflow, fragmentation, targets = paracetamol
    parent = parent_molecule(workflow.smiles)
    assert len(targets) == len(fragmentation.fragments) == 2
    for item, target in zip(fragmentation.fragments, targets):
        smirks = target.parameter.smirks
        assert _torsions_about(parent, item.parent_bond) <= _matches(parent, smirks)
        molecule = parent_molecule(item.smiles)
        assert _torsions_about(molecule, item.bond_indices) <= _matches(molecule, smirks)
        assert target.parameter.parent_bonds == [item.parent_bond]


def test_smirks_shape(paracetamol):
    for target in paracetamol[2]:
        smirks = target.parameter.smirks
        assert "/" not in smirks and "\\" not in smirks
        shape = r"\[\*:1\]~\[(.+):2\]([-=#:]!?@)\[(.+):3\]~\[\*:4\]"
        first, bond, second = re.fullmatch(shape, smirks).groups()
        assert bond == "-!@"  # a non-ring single bond
        for central in (first, second):
            neighbour = r"\([-=#:]\[#\d+[aA]?\]\)"
            primitives = r"#\d+X\d+H\d+[+-]\d+&[aA]&(r\d+|!R)"
            assert re.fullmatch(rf"{primitives}\$\(\*({neighbour})+\)", central), central


def test_neighbour_shell_tells_bonds_apart():
    """N-aryl and N-alkyl amide C-N bonds differ only in a neighbour's aromaticity: two parameters."""
    targets = _targets(_workflow("CC(=O)Nc1ccc(CNC(C)=O)cc1"))
    amides = [t.parameter for t in targets if "=[#8A]" in t.parameter.smirks and "#7X3" in t.parameter.smirks]
    assert len(amides) == 2 and amides[0].smirks != amides[1].smirks
    assert all(len(amide.parent_bonds) == 1 for amide in amides)


def test_aromatic_five_ring_is_not_argon():
    """'A' followed by 'r5' would read as argon; the furan amide must still be covered."""
    targets = _targets(_workflow("c1ccoc1C(=O)NC"))
    assert len(targets) == 2


def test_periodicities_and_initial_k_from_sage(paracetamol):
    workflow, fragmentation, targets = paracetamol
    parent = parent_molecule(workflow.smiles)
    labels = _oriented(ForceField(SAGE).label_molecules(parent.to_topology())[0]["ProperTorsions"])
    aryl_amine = next(t.parameter for t in targets if t.parameter.parent_bonds == [(3, 4)])
    sage = labels[(1, 3, 4, 5)]  # C(=O)-N-c-c, like every torsion about N-c: Sage's t74
    assert {labels[t].id for t in _torsions_about(parent, (3, 4))} == {sage.id}
    assert aryl_amine.periodicities == [1, 2, 3, 4]
    assert aryl_amine.phases == [0.0, 180.0, 0.0, 180.0]
    assert aryl_amine.idivf == [1.0] * 4
    expected = dict(zip(sage.periodicity, (k.m_as("kilocalorie / mole") for k in sage.k)))
    assert aryl_amine.k == pytest.approx([expected.get(n, 0.0) for n in (1, 2, 3, 4)])
    assert aryl_amine.k[1] == pytest.approx(1.348, abs=1e-3)


def test_scan_task_is_canonical_and_carries_the_settings(paracetamol):
    workflow, fragmentation, targets = paracetamol
    for item, target in zip(fragmentation.fragments, targets):
        scan = target.scan
        molecule = Molecule.from_smiles(scan.smiles, allow_undefined_stereo=True)
        atom_map = molecule.properties["atom_map"]
        assert sorted(atom_map.values()) == [1, 2]
        central = [atom for atom, index in sorted(atom_map.items(), key=lambda pair: pair[1])]
        assert molecule.get_bond_between(*central)
        assert molecule.is_isomorphic_with(parent_molecule(item.smiles))
        assert (scan.grid_spacing, scan.n_conformers, scan.qc_spec) == (30, 3, workflow.qc_spec)
        assert scan.optimization == workflow.optimization


def test_same_fragment_from_two_parents_is_the_same_scan(paracetamol):
    """Paracetamol and 4-chloroacetanilide share acetanilide as Pfizer fragment of both bonds."""
    settings = paracetamol[0].model_dump(include={"torsiondrive", "qc_spec"})
    other = _targets(_workflow("Clc1ccc(NC(C)=O)cc1", **settings))
    first = sorted(paracetamol[2], key=lambda t: t.parameter.smirks)
    second = sorted(other, key=lambda t: t.parameter.smirks)
    assert [t.scan for t in first] == [t.scan for t in second]
    assert [t.scan.content_hash() for t in first] == [t.scan.content_hash() for t in second]
    assert [t.parameter.smirks for t in first] == [t.parameter.smirks for t in second]


def test_symmetric_bonds_share_a_parameter():
    targets = _targets(_workflow("CC(=O)Nc1ccc(cc1)NC(C)=O"))
    assert len(targets) == 2
    assert all(len(target.parameter.parent_bonds) == 2 for target in targets)


def test_identical_smirks_are_fitted_jointly():
    """Hexane's C1-C2 and C2-C3 bonds differ but get the same SMIRKS: one parameter, two scans."""
    targets = _targets(_workflow("CCCCCC", NoFragmentation()))
    assert len(targets) == 2
    assert targets[0].parameter == targets[1].parameter
    assert targets[0].parameter.parent_bonds == [(1, 2), (2, 3), (3, 4)]
    assert targets[0].scan != targets[1].scan


def test_bespoke_force_field_labels_the_target_torsions(paracetamol):
    workflow, _, targets = paracetamol
    parameters = [target.parameter for target in targets]
    force_field = ForceField(build_force_field(workflow.initial_force_field, parameters))
    torsions = force_field.get_parameter_handler("ProperTorsions").parameters
    assert [p.id for p in torsions[-2:]] == ["b1", "b2"]
    assert [p.smirks for p in torsions[-2:]] == [p.smirks for p in parameters]
    parent = parent_molecule(workflow.smiles)
    labels = _oriented(force_field.label_molecules(parent.to_topology())[0]["ProperTorsions"])
    for number, parameter in enumerate(parameters, start=1):
        covered = {t for bond in parameter.parent_bonds for t in _torsions_about(parent, bond)}
        assigned = {t for t, p in labels.items() if p.id == f"b{number}"}
        assert assigned == covered
        assert [k.m_as("kilocalorie / mole") for k in labels[min(assigned)].k] == pytest.approx(parameter.k)


def test_parameterize_marks_for_forcebalance_and_reads_back(paracetamol):
    workflow, _, targets = paracetamol
    fitted = [t.parameter.model_copy(update={"k": [0.1, 0.2, 0.3, 0.4]}) for t in targets]
    text = build_force_field(workflow.initial_force_field, fitted, parameterize=True)
    assert text.count('parameterize="k1, k2, k3, k4"') == 2
    with pytest.raises(SMIRNOFFSpecError):
        ForceField(text)
    assert read_bespoke_parameters(text, [t.parameter for t in targets]) == fitted
    (plain,) = read_bespoke_parameters(text, [fitted[0].smirks])
    assert plain.k == fitted[0].k and plain.parent_bonds == []
    assert "parameterize" not in build_force_field(text, fitted)


def test_existing_smirks_is_moved_to_the_end(paracetamol):
    workflow, _, targets = paracetamol
    parameters = [target.parameter for target in targets]
    twice = build_force_field(build_force_field(workflow.initial_force_field, parameters), parameters[::-1])
    torsions = ForceField(twice).get_parameter_handler("ProperTorsions").parameters
    assert [p.smirks for p in torsions].count(parameters[0].smirks) == 1
    assert [p.smirks for p in torsions[-2:]] == [p.smirks for p in parameters[::-1]]


def test_a_smirks_that_misses_torsions_is_refused():
    parent = parent_molecule(mapped_smiles_from_input("CC(=O)Nc1ccccc1"))
    with pytest.raises(BespokeSmirksError, match="misses torsions"):
        check_covers("[#6:1]~[#6X3:2]-!@[#7:3]~[#6:4]", parent, (1, 3))
    with pytest.raises(BespokeSmirksError, match="ForceBalance"):
        check_covers("[*:1]~[#6:2]/[#7:3]~[*:4]", parent, (1, 3))
