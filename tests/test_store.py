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


def test_a_truncated_entry_counts_as_missing_with_a_warning(tmp_path, caplog):
    store = Store(tmp_path)
    store.put("qc", "ab13", RESULT)
    path = store.path("qc", "ab13")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert store.get("qc", "ab13", OptimizationResult) is None
    assert "corrupt" in caplog.text and "ab13" in caplog.text
    store.put("qc", "ab13", RESULT)  # the recomputed result replaces it
    assert store.get("qc", "ab13", OptimizationResult) == RESULT


def test_a_corrupted_entry_counts_as_missing_with_a_warning(tmp_path, caplog):
    store = Store(tmp_path)
    for key, garbage in [("ab14", b"\x00\xff\xfe binary"), ("ab15", b'{"value": {"energy": "a lot"}}'), ("ab16", b"[1, 2]")]:
        store.put("qc", key, RESULT)
        store.path("qc", key).write_bytes(garbage)
        assert store.get("qc", key, OptimizationResult) is None
        assert key in caplog.text
    assert store.counts() == {"qc": (1, 0)}  # the well-formed entry of the wrong shape still counts


def test_a_write_killed_midway_leaves_the_old_entry_whole(tmp_path):
    """A real kill: a child process SIGKILLed while it writes a big entry over an existing one."""
    import multiprocessing
    import os
    import signal

    store = Store(tmp_path)
    store.put("qc", "ab17", RESULT)
    big = OptimizationResult(
        initial_geometry=[0.5] * 3_000_000, final_geometry=[1.0] * 3, energy=-2.0, n_gradients=1
    )
    child = multiprocessing.get_context("fork").Process(target=store.put, args=("qc", "ab17", big))
    child.start()
    while not list((tmp_path / "qc" / "ab").glob(".ab17.*.tmp")):  # the write has begun
        pass
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert store.get("qc", "ab17", OptimizationResult) == RESULT
    assert store.keys("qc") == ["ab17"]


def test_failures_are_listed_with_their_errors(tmp_path):
    store = Store(tmp_path)
    store.put_failure("qc", "aa03", "QCError: boom")
    store.put("qc", "aa04", RESULT)
    assert store.failures("qc") == {"aa03": "QCError: boom"}
