"""Client commands answer without loading the chemistry stack, and speak JSON for scripts."""

import json

import pytest

import client_process


def test_help_loads_no_chemistry():
    code, stdout, stderr, loaded = client_process.run("--help")
    assert code == 0, stderr
    assert "executor" in stdout
    assert loaded == []


@pytest.mark.slow
def test_list_and_retrieve_load_no_chemistry_and_print_json(running_executor):
    address = running_executor.scheduler_address
    code, stdout, stderr, loaded = client_process.run("executor", "list", "--json", "--scheduler", address)
    assert code == 0, stderr
    assert loaded == []
    listed = json.loads(stdout)
    assert [workflow["id"] for workflow in listed] == running_executor.ids
    assert all(workflow["status"] in ("waiting", "running", "success") for workflow in listed)

    code, stdout, stderr, loaded = client_process.run(
        "executor", "retrieve", "--id", running_executor.ids[0], "--json", "--scheduler", address
    )
    assert code == 0, stderr
    assert loaded == []
    assert json.loads(stdout)["id"] == running_executor.ids[0]


@pytest.mark.slow
def test_cancel_of_an_unknown_id_is_one_line_and_loads_no_chemistry(running_executor):
    code, stdout, stderr, loaded = client_process.run(
        "executor", "cancel", "--id", "99", "--scheduler", running_executor.scheduler_address
    )
    assert code == 2
    assert "99" in stderr and "Traceback" not in stderr
    assert loaded == []


@pytest.mark.slow
def test_watch_quiet_prints_nothing_and_exits_0_on_success(running_executor):
    code, stdout, stderr, loaded = client_process.run(
        "executor", "watch", "--id", running_executor.ids[0], "--quiet",
        "--scheduler", running_executor.scheduler_address, timeout=600,
    )
    assert code == 0, stderr
    assert stdout == ""
    assert loaded == []
