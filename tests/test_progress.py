"""Progress pushed from the executor: `watch --json` follows a workflow that waits on another's scan."""

import json
import time

import pytest
from distributed import Client, LocalCluster

import client_process
from bespoke_dask.progress import WorkflowEvents, topic

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("source", ["scheduler", "directory"])
def test_watch_streams_the_shared_scans_progress_to_the_second_workflow(running_executor, source):
    """From the scheduler's events (Dask client), or polled from the dashboard (no Dask distributed)."""
    code, stdout, stderr, loaded = client_process.finish(running_executor.watchers[source])
    assert code == 0, stderr
    assert loaded == []  # a client command loads no chemistry (nor, from the directory, distributed)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines[-1]["status"] == "success"
    scans = [line["stages"][1]["scans"][0] for line in lines if line["stages"][1]["scans"]]
    done = [scan["grid_points_done"] for scan in scans]
    assert done == sorted(done)  # progress only moves forward
    assert any(0 < count < 12 for count in done), done  # seen while the first workflow's scan ran
    assert scans[-1]["grid_points"] == 12 and len(scans[-1]["energies"]) == 12


def test_a_followed_workflow_gets_its_results_at_the_end(running_executor):
    seen = []
    result = running_executor.wait_until_complete(running_executor.ids[0], callback=seen.append)
    assert result.status == "success", result.error
    assert result.results is not None and result.results.metrics
    assert seen[-1].status == "success"


def test_a_finished_workflows_events_are_dropped_from_the_scheduler(running_executor):
    """A long-lived scheduler must not keep every status it ever pushed (the record is on disk)."""
    workflow_id = running_executor.ids[0]
    assert running_executor.wait_until_complete(workflow_id).status == "success"
    with Client(running_executor.scheduler_address) as client:
        deadline = time.monotonic() + 60
        while client.get_events(topic(workflow_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get_events(topic(workflow_id)) == ()


def _push_three(dask_scheduler=None) -> None:
    events = WorkflowEvents(dask_scheduler)
    for status in ("waiting", "running", "running"):
        events.log("7", {"status": status})


def test_a_workflows_topic_keeps_only_its_latest_status():
    """Followers read the current status as they start; the scheduler keeps no history of 1,000 workflows."""
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        client.run_on_scheduler(_push_three)
        assert [status for _, status in client.get_events(topic("7"))] == [{"status": "running"}]
