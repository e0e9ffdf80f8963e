"""Per-pool scaling against a fake `sbatch`/`scancel` that run job scripts as local processes.

dask-jobqueue only ever calls sbatch and scancel, so the fakes exercise the real submission
path, real Dask workers and the real scheduler state; only the batch system is faked.
"""

import os
import time

import dask
import pytest
from distributed import Client

from bespoke_dask.batch import BatchCluster
from bespoke_dask.scaling import PoolScaler

FAKE_SBATCH = """#!/usr/bin/env bash
# fake sbatch: run the job script in the background in its own session, like a started job
count_file="$(dirname "$0")/count"
n=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 )); echo $n > "$count_file"
cp "$1" "$(dirname "$0")/job-$n.sh"  # the caller deletes its file once sbatch returns
setsid bash "$(dirname "$0")/job-$n.sh" > "$(dirname "$0")/job-$n.log" 2>&1 < /dev/null &
echo $! > "$(dirname "$0")/job-$n.pid"
echo "Submitted batch job $n"
"""
FAKE_SCANCEL = """#!/usr/bin/env bash
# fake scancel: end the job's session
kill -TERM -- -"$(cat "$(dirname "$0")/job-$1.pid")" 2>/dev/null
exit 0
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A PATH whose sbatch/scancel (and qsub/qdel) run jobs locally; yields the folder holding their logs."""
    bin_directory = tmp_path / "fake-slurm"
    bin_directory.mkdir()
    # PBS's qsub/qdel behave alike for dask-jobqueue (a job id out, the id to cancel in)
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL), ("qsub", FAKE_SBATCH), ("qdel", FAKE_SCANCEL)):
        (bin_directory / name).write_text(text)
        (bin_directory / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_directory}{os.pathsep}{os.environ['PATH']}")
    yield bin_directory
    for pid_file in bin_directory.glob("job-*.pid"):  # jobs the test did not cancel
        try:
            os.killpg(int(pid_file.read_text()), 15)
        except (ProcessLookupError, ValueError):
            pass


def _wait(condition, timeout=150.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_fake_sbatch_qc_jobs_follow_the_qc_queue_and_are_released_when_idle(fake_slurm, tmp_path):
    shapes = {
        "jobqueue.slurm": {"cores": 1, "memory": "1GiB", "processes": 1, "walltime": "00:10:00"},
        "jobqueue.slurm-qc-compute": {"name": "test-qc", "cores": 1, "memory": "1GiB"},
    }
    with dask.config.set(shapes):
        cluster = BatchCluster("slurm", tmp_path / "executor")
    scaler = PoolScaler(cluster, max_jobs={"qc": 2}, idle_timeout=1.0, interval=0.2)
    try:
        scaler.start()
        with Client(cluster.scheduler_address) as client:
            # time.sleep: a function the job's workers can unpickle (they cannot import tests)
            futures = [client.submit(time.sleep, 2.0 + i / 10, resources={"qc": 1}, pure=False) for i in range(4)]
            _wait(lambda: len(cluster.jobs("qc")) == 2, what="two qc jobs")
            assert cluster.jobs("fragmenter") == [] and cluster.jobs("optimizer") == []
            client.gather(futures)
            _wait(lambda: len([e for e in scaler.events if e[2] == "released"]) == 2, what="idle qc jobs released")
            assert cluster.jobs("qc") == []
        history = {}
        for _, job, what in scaler.events:
            history.setdefault(job, []).append(what)
        assert set(history) == {"qc-compute-0", "qc-compute-1"}  # never above max-jobs
        assert ["submitted", "started", "released"] in history.values()
        assert all(events[-1] == "released" for events in history.values())
        script = (tmp_path / "executor" / "jobs" / "qc-compute-0.sh").read_text()
        assert "#SBATCH -J test-qc" in script and "--resources qc=1" in script
    finally:
        scaler.stop()
        cluster.close()


@pytest.mark.slow
@pytest.mark.parametrize("system", ["slurm", "pbs"])
def test_fake_sbatch_and_qsub_min_jobs_are_kept_while_idle(system, fake_slurm, tmp_path):
    with dask.config.set({f"jobqueue.{system}": {"cores": 1, "memory": "1GiB", "processes": 1}}):
        cluster = BatchCluster(system, tmp_path / "executor")
    scaler = PoolScaler(cluster, min_jobs={"optimizer": 1}, idle_timeout=0.5, interval=0.2)
    try:
        scaler.start()
        _wait(lambda: cluster.scheduler.workers, what="the optimizer job's worker")
        time.sleep(2)  # several idle timeouts
        assert cluster.jobs("optimizer") == ["optimizer-0"]
        (worker,) = cluster.scheduler.workers.values()
        assert worker.resources == {"optimizer": 1}
    finally:
        scaler.stop()
        cluster.close()


@pytest.mark.slow
def test_fake_sbatch_a_job_near_its_walltime_finishes_its_task_then_hands_over(fake_slurm, tmp_path):
    # walltime 20 s: drained for its second half, i.e. 10 s after its worker joined
    with dask.config.set({"jobqueue.slurm": {"cores": 1, "memory": "1GiB", "processes": 1, "walltime": "00:00:20"}}):
        cluster = BatchCluster("slurm", tmp_path / "executor")
    scaler = PoolScaler(cluster, max_jobs={"qc": 1}, idle_timeout=30.0, interval=0.2)
    try:
        scaler.start()
        with Client(cluster.scheduler_address) as client:
            first = client.submit(time.sleep, 0.1, resources={"qc": 1}, pure=False)
            first.result(timeout=150)
            # runs across the drain point: it must finish where it started, never be restarted
            long = client.submit(time.sleep, 12, resources={"qc": 1}, pure=False)
            queued = client.submit(time.sleep, 0.1, resources={"qc": 1}, pure=False)
            client.gather([long, queued])
            story = cluster.scheduler.story(long.key)
            assert sum(1 for event in story if event[1:3] == ("waiting", "processing")) == 1
            released = lambda: any(event[1:] == ("qc-compute-0", "released") for event in scaler.events)  # noqa: E731
            _wait(released, what="the drained job released")
            history = {}
            for _, job, what in scaler.events:
                history.setdefault(job, []).append(what)
            assert history["qc-compute-0"] == ["submitted", "started", "draining", "released"]
            assert history["qc-compute-1"][0] == "submitted"  # its successor, asked for while it drained
    finally:
        scaler.stop()
        cluster.close()
