"""QCSchema TorsionDriveResult records (QCArchive's torsiondrives) as the scans workflows ask for."""

import json
import warnings

import numpy as np
import pytest
from openff.toolkit import Molecule
from scipy.spatial.distance import pdist
from qcschema_torsiondrives import ETHER, ETHER_SETTINGS, RECORD_SMILES

from bespoke_dask.errors import InputError
from bespoke_dask.stages.fragment import fragment
from bespoke_dask.stages.qcarchive import (
    CMILES,
    SkippedTorsionDrive,
    grid_angles,
    read_torsiondrives,
    scan_results_from_torsiondrives,
    torsiondrives_by_name,
)
from bespoke_dask.stages.targets import bespoke_targets, scan_task


@pytest.fixture(scope="module")
def record(ether_torsiondrive) -> dict:
    return json.loads(ether_torsiondrive[1].json())


def seed(*records, settings=ETHER_SETTINGS):
    return scan_results_from_torsiondrives(list(records), settings)


def test_a_record_in_another_atom_order_seeds_the_very_scan_a_workflow_asks_for(ether_torsiondrive, record):
    ours, _ = ether_torsiondrive
    (seeded,) = seed(record)
    molecule = Molecule.from_smiles(RECORD_SMILES)
    assert seeded.mapped_smiles == molecule.to_smiles(mapped=True) != ours.mapped_smiles
    assert seeded.dihedral == tuple(record["keywords"]["dihedrals"][0])
    assert seeded.task == scan_task(
        ETHER_SETTINGS.optimization_schema_from_smiles(RECORD_SMILES), molecule, seeded.dihedral[1:3]
    )
    workflow = ETHER_SETTINGS.optimization_schema_from_smiles(ETHER)
    (target,) = bespoke_targets(workflow, fragment(workflow))
    assert seeded.task == target.scan == ours.task
    assert seeded.task.qc_spec.method == "gfn2xtb"  # the record says GFN2XTB


def test_the_grid_keeps_the_records_energies_and_geometries_in_its_atom_order(ether_torsiondrive, record):
    ours, _ = ether_torsiondrive
    (seeded,) = seed(record)
    assert [point.angle for point in seeded.grid] == [-120.0, -60.0, 0.0, 60.0, 120.0, 180.0]
    for point in seeded.grid:
        key = str(round(point.angle))
        assert point.energy == record["final_energies"][key]
        assert point.geometry == pytest.approx(record["final_molecules"][key]["geometry"], abs=1e-12)
    for mine, theirs in zip(ours.grid, seeded.grid):  # the same structures, atoms permuted
        assert mine.geometry != theirs.geometry
        assert np.allclose(_distances(mine.geometry), _distances(theirs.geometry))


def test_grid_ids_as_qcfractal_writes_them_and_qcelemental_models_read_alike(ether_torsiondrive, record):
    fractal = {**record}
    fractal["final_energies"] = {f"[{key}]": value for key, value in record["final_energies"].items()}
    fractal["final_molecules"] = {f"[{key}]": value for key, value in record["final_molecules"].items()}
    assert seed(fractal) == seed(record) == seed(ether_torsiondrive[1])


def test_without_cmiles_the_molecule_comes_from_its_connectivity(record):
    bare = json.loads(json.dumps(record))
    bare["initial_molecule"][0]["identifiers"] = {}
    assert seed(bare) == seed(record)
    del bare["initial_molecule"][0]["connectivity"]
    with pytest.raises(InputError, match=f"^record 1: .*neither {CMILES} nor connectivity"):
        seed(bare)


def test_records_that_cannot_seed_a_1d_scan_are_skipped_with_a_warning(record):
    two_d = {**record, "keywords": {**record["keywords"], "dihedrals": [[0, 1, 2, 3], [1, 2, 3, 9]]}}
    failed = {**record, "success": False}
    partial = {**record, "final_energies": dict(list(record["final_energies"].items())[1:])}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seeded = seed(two_d, record, failed, partial)
    assert len(seeded) == 1
    messages = [str(w.message) for w in caught if w.category is SkippedTorsionDrive]
    assert messages == [
        "skipped record 1: a 2-D scan; only 1-D scans can be seeded",
        "skipped record 3: the torsiondrive did not succeed",
        "skipped record 4: the scan misses grid angles [-120]",
    ]


def test_a_record_without_a_qc_program_is_an_input_error(record):
    anonymous = {**record, "optimization_spec": {"procedure": "geometric", "keywords": {}}}
    with pytest.raises(InputError, match="^record 1: no QC program"):
        seed(anonymous)
    assert seed({**anonymous, "extras": {"program": "XTB"}}) == seed(record)


def test_files_hold_a_list_one_record_or_records_by_name(tmp_path, record):
    for data, names in [
        ([record, record], ["record 1", "record 2"]),
        (record, ["record 1"]),
        ({"td-7": record}, ["td-7"]),
    ]:
        path = tmp_path / "records.json"
        path.write_text(json.dumps(data))
        assert list(read_torsiondrives(path)) == names
    with pytest.raises(InputError, match="no QCSchema TorsionDriveResult"):
        torsiondrives_by_name({"not": "a record"})


def test_grid_angles_follow_torsiondrive():
    assert grid_angles(90, None) == {-90, 0, 90, 180}
    assert grid_angles(30, (-60, 60)) == {-60, -30, 0, 30, 60}
    assert grid_angles(90, (-180, 0)) == {-90, 0, 180}
    assert grid_angles(90, (90, 270)) == {90, 180, -90}


def _distances(geometry: list[float]) -> np.ndarray:
    """Every interatomic distance, sorted: the same for any atom order."""
    return np.sort(pdist(np.reshape(geometry, (-1, 3))))
