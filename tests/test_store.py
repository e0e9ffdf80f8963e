"""The content-addressed store: atomic JSON files keyed by input hash; failures never served."""

from bespoke_dask.schema import OptimizationResult
from bespoke_dask.store import Store

RESULT = OptimizationResult(initial_geometry=[0.0] * 3, final_geometry=[1.0] * 3, energy=-1.5, n_gradients=4)


def test_a_stored_result_comes_back_equal(tmp_path):
    store = Store(tmp_path)
    store.put("qc", "ab12", RESULT)
    assert store.get("qc", "ab12", OptimizationResult) == RESULT
    assert store.keys("qc") == ["ab12"]
    assert store.path("qc", "ab12").exists()


def test_a_missing_result_is_none(tmp_path):
    assert Store(tmp_path).get("qc", "ff00", OptimizationResult) is None


def test_a_failure_is_recorded_but_not_served(tmp_path):
    store = Store(tmp_path)
    store.put_failure("qc", "cd34", "QCError: SCF did not converge")
    assert store.get("qc", "cd34", OptimizationResult) is None
    assert store.failure("qc", "cd34") == "QCError: SCF did not converge"
    store.put("qc", "cd34", RESULT)  # the retry succeeded
    assert store.get("qc", "cd34", OptimizationResult) == RESULT
    assert store.failure("qc", "cd34") is None


def test_writes_leave_no_temporary_files(tmp_path):
    store = Store(tmp_path)
    for index in range(5):
        store.put("qc", f"ee{index}", RESULT)
    assert sorted(p.name for p in (tmp_path / "qc" / "ee").iterdir()) == [f"ee{i}.json" for i in range(5)]


def test_lists_of_models_round_trip(tmp_path):
    store = Store(tmp_path)
    store.put("many", "0001", [RESULT, RESULT])
    assert store.get("many", "0001", list[OptimizationResult]) == [RESULT, RESULT]


def test_counts_tell_results_and_failures_per_kind(tmp_path):
    store = Store(tmp_path)
    store.put("qc", "aa01", RESULT)
    store.put("qc", "aa02", RESULT)
    store.put_failure("qc", "aa03", "QCError: boom")
    store.put("scan", "bb01", RESULT)
    assert store.counts() == {"qc": (2, 1), "scan": (1, 0)}
