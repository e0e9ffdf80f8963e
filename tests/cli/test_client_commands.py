"""Client commands answer without loading the chemistry stack, and speak JSON for scripts.

`--help` loads no Dask either, and `list`/`retrieve` read a local executor's dashboard without it.
"""

import json

import pytest

import client_process

DISTRIBUTED = ("distributed", *client_process.CHEMISTRY)
DASK = ("dask", *DISTRIBUTED)  # dask itself loads only to read the settings (dask.config)


def test_help_loads_no_chemistry():
    code, stdout, stderr, loaded = client_process.run("--help")
    assert code == 0, stderr
    assert "executor" in stdout
    assert loaded == []


@pytest.mark.parametrize("command", [(), ("executor",), ("executor", "list"), ("launch-worker",), ("cache", "info")])
def test_help_loads_no_dask(command):
    code, stdout, stderr, loaded = client_process.run(*command, "--help", packages=DASK)
    assert code == 0, stderr
    assert "Usage" in stdout
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


@pytest.mark.slow
def test_list_and_retrieve_from_the_directory_read_the_dashboard_without_dask(running_executor):
    finished = running_executor.ids[0]
    running_executor.wait_until_complete(finished)
    directory = str(running_executor.directory)
    through_dask = ("--scheduler", running_executor.scheduler_address)  # no directory: no dashboard known

    code, stdout, stderr, loaded = client_process.run(
        "executor", "retrieve", "--id", finished, "--json", "--directory", directory, packages=DISTRIBUTED
    )
    assert code == 0, stderr
    assert loaded == []
    code, expected, stderr, loaded = client_process.run(
        "executor", "retrieve", "--id", finished, "--json", *through_dask, packages=("distributed",)
    )
    assert code == 0 and loaded == ["distributed"], stderr  # the same document through a Dask client
    assert json.loads(stdout) == json.loads(expected)

    code, stdout, stderr, loaded = client_process.run("executor", "list", "--directory", directory, packages=DISTRIBUTED)
    assert code == 0, stderr
    assert loaded == []
    assert all(workflow_id in stdout for workflow_id in running_executor.ids) and "success" in stdout
    code, stdout, stderr, loaded = client_process.run(
        "executor", "list", "--json", "--status", "success", "--directory", directory, packages=DISTRIBUTED
    )
    assert loaded == []
    listed = {workflow["id"]: workflow for workflow in json.loads(stdout)}
    assert listed[finished] == {key: value for key, value in json.loads(expected).items() if key != "results"}


@pytest.mark.slow
def test_cancel_from_the_directory_goes_through_the_dashboard_without_dask(running_executor):
    finished = running_executor.ids[0]
    running_executor.wait_until_complete(finished)
    code, stdout, stderr, loaded = client_process.run(
        "executor", "cancel", "--id", finished, "--directory", str(running_executor.directory), packages=DISTRIBUTED
    )
    assert code == 0, stderr
    assert loaded == []
    assert f"workflow {finished}: success" in stdout  # finished before the cancel: nothing to stop


@pytest.mark.slow
def test_an_unknown_id_read_from_the_directory_is_one_line(running_executor):
    code, _, stderr, _ = client_process.run(
        "executor", "retrieve", "--id", "99", "--directory", str(running_executor.directory)
    )
    assert code == 2
    assert "99" in stderr and "Traceback" not in stderr
