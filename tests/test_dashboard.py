"""The /bespoke page of the Dask dashboard and its JSON routes, against a running executor."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import browser

pytestmark = pytest.mark.slow


def dashboard(executor, path: str) -> str:
    return executor.dashboard_link.rsplit("/", 1)[0] + path


def get_json(executor, path: str):
    with urllib.request.urlopen(dashboard(executor, path)) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        return json.load(answer)


def wait_for_grid_points(executor, workflow_id: str, timeout: float = 300) -> dict:
    """The workflow's JSON row once its torsiondrive has at least one grid point done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = get_json(executor, f"/bespoke/api/workflows/{workflow_id}")
        if row["grid_points_done"] > 0 or row["status"] != "running":
            return row
        time.sleep(0.5)
    raise TimeoutError("no grid point finished")


def test_the_json_route_lists_every_workflow_with_its_progress(running_executor):
    rows = get_json(running_executor, "/bespoke/api/workflows")
    assert [row["id"] for row in rows] == running_executor.ids
    assert {"smiles", "status", "stage", "torsiondrives", "grid_points_done", "grid_points", "elapsed", "error"} <= set(rows[0])


def test_the_json_route_of_one_workflow_has_its_stages_and_qc_profile(running_executor):
    row = wait_for_grid_points(running_executor, running_executor.ids[0])
    assert row["grid_points"] == 12 and row["torsiondrives"] == 1
    scan = row["output"]["stages"][1]["scans"][0]
    assert len(scan["angles"]) == len(scan["energies"]) == scan["grid_points_done"]
    assert min(scan["energies"]) == 0.0  # kcal/mol above the lowest so far


def test_an_unknown_workflow_is_a_404(running_executor):
    with pytest.raises(urllib.error.HTTPError) as error:
        get_json(running_executor, "/bespoke/api/workflows/99")
    assert error.value.code == 404


def test_the_page_is_served_and_linked_from_the_dashboard_navigation(running_executor):
    with urllib.request.urlopen(dashboard(running_executor, "/bespoke")) as answer:
        page = answer.read().decode()
    assert answer.status == 200 and "Bespoke" in page
    with urllib.request.urlopen(dashboard(running_executor, "/status")) as answer:
        assert 'href="bespoke"' in answer.read().decode()


@pytest.mark.skipif(browser.CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_a_browser_shows_the_workflows_and_their_progress_during_the_run(running_executor):
    text = running_executor.page_text.result(timeout=300)  # loaded when the run started
    print(f"screenshot of /bespoke: {running_executor.screenshot}")
    assert running_executor.screenshot.stat().st_size > 10_000
    assert "Bespoke fits" in text
    assert "COC=O" in text  # the molecule, without atom maps
    assert browser.shows_progress_under_way(text), text  # seen mid-run: a torsiondrive partly done
    assert "torsion profiles" in text


def post_cancel(executor, workflow_id: str, token: str | None) -> tuple[int, dict]:
    headers = {} if token is None else {"X-Bespoke-Token": token}
    url = dashboard(executor, f"/bespoke/api/outputs/{workflow_id}/cancel")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", headers=headers)) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_cancel_route_needs_the_token_that_only_the_directory_holds(running_executor):
    record = running_executor.directory / "scheduler.json"
    token = json.loads(record.read_text())["token"]
    assert record.stat().st_mode & 0o077 == 0  # the token is this user's alone
    finished = running_executor.ids[0]
    running_executor.wait_until_complete(finished)
    assert post_cancel(running_executor, finished, None)[0] == 403
    assert post_cancel(running_executor, finished, token[::-1])[0] == 403
    assert post_cancel(running_executor, "99", token)[0] == 404
    status, output = post_cancel(running_executor, finished, token)
    assert (status, output["stages"][2]["status"]) == (200, "success")  # it had finished: as it was
    assert running_executor.retrieve(finished).status == "success"


COLLECTIONS_OF_A_CLOSED_SESSION = """
import gc
from bokeh.document import Document
from bokeh.models import Div
from bespoke_dask.service import tame_garbage_collection

def generations_collected_when_a_session_closes():
    document, seen = Document(), []
    document.add_root(Div(text="a workflow"))
    document.on_change(session := (lambda event: None))
    record = lambda phase, info: phase == "start" and seen.append(info["generation"])
    gc.callbacks.append(record)
    document.destroy(session)
    gc.callbacks.remove(record)
    return seen

print(generations_collected_when_a_session_closes())
tame_garbage_collection()
print(generations_collected_when_a_session_closes(), gc.get_freeze_count() > 0)
"""


def test_a_tamed_scheduler_process_sweeps_only_young_garbage_when_a_dashboard_session_closes():
    """In a process of its own: the taming freezes and patches that process's collector."""
    answer = subprocess.run([sys.executable, "-c", COLLECTIONS_OF_A_CLOSED_SESSION], capture_output=True, text=True)
    assert answer.stdout.splitlines() == ["[2]", "[1] True"], answer.stderr  # Bokeh's own: a full one
