"""A long-lived executor in its own process, driven by the CLI from other processes.

Everything waits on state (files, statuses), never on sleeps that hope for timing.
"""

import json
import re
from pathlib import Path

import pytest

from bespoke_dask.executor import connect
from launched import Executor, cli, wait_for

pytestmark = pytest.mark.slow

PARACETAMOL, CHLOROACETANILIDE = "CC(=O)Nc1ccc(O)cc1", "CC(=O)Nc1ccc(Cl)cc1"


def status(directory: Path, workflow_id: str):
    client = connect(directory=directory)
    try:
        return client.retrieve(workflow_id)
    finally:
        client.stop()


def submit(directory: Path, *smiles: str) -> list[str]:
    args = [arg for s in smiles for arg in ("--smiles", s)]
    cli("executor", "submit", *args, "--workflow", "debug", "--directory", str(directory),
        "--save-submission-info")
    return [entry["id"] for entry in json.loads(Path("submission.json").read_text())]


def qc_files(directory: Path) -> dict[str, int]:
    """Each stored constrained optimization and its inode (a recomputation replaces the file)."""
    return {path.name: path.stat().st_ino for path in (directory / "store" / "qc").glob("*/*.json")}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_submit_watch_retrieve_list_from_other_processes(workdir):
    directory = workdir / "executor"
    executor = Executor(directory, "--n-qc-compute-workers", "2")
    try:
        ids = submit(directory, PARACETAMOL, CHLOROACETANILIDE)
        assert ids == ["1", "2"]
        for workflow_id in ids:
            cli("executor", "watch", "--id", workflow_id, "--directory", str(directory))
        cli("executor", "retrieve", "--id", "1", "--output", "out.json", "--force-field", "ff.offxml",
            "--directory", str(directory))
        result = json.loads(Path("out.json").read_text())
        assert [stage["status"] for stage in result["stages"]] == ["success"] * 3
        assert "<ProperTorsions" in Path("ff.offxml").read_text()
        listing = cli("executor", "list", "--status", "success", "--directory", str(directory)).stdout
        assert listing.count("success") == 2
        # Both molecules' fragments are the same two acetanilide scans: each ran once.
        assert len(list((directory / "store" / "scan").glob("*/*.json"))) == 2
        info = cli("cache", "info", "--directory", str(directory)).stdout
        assert re.search(r"│ torsiondrives\s+│ 2\s+│ 0\s+│", info), info
        # Resubmitting an identical workflow returns the finished one at once.
        assert submit(directory, PARACETAMOL) == ["1"]
        # A second executor cannot take the same directory.
        busy = cli("executor", "launch", "--directory", str(directory), check=False)
        assert busy.returncode == 2 and "held by another running executor" in busy.stderr
    finally:
        assert executor.terminate() == 0
    assert not (directory / "scheduler.json").exists()


def test_unknown_id_and_missing_executor_are_one_line_errors(workdir):
    missing = cli("executor", "retrieve", "--id", "1", "--directory", str(workdir / "none"), check=False)
    assert missing.returncode == 2 and "no running executor" in missing.stderr
    refused = cli("executor", "list", "--scheduler", "tcp://127.0.0.1:9", check=False)
    assert refused.returncode == 2 and "no executor answers" in refused.stderr
    directory = workdir / "executor"
    executor = Executor(directory)
    try:
        unknown = cli("executor", "retrieve", "--id", "42", "--directory", str(directory), check=False)
        assert unknown.returncode == 2 and "no workflow with id 42" in unknown.stderr
    finally:
        executor.terminate()


def test_cancel_stops_the_work_and_frees_the_workers(workdir):
    directory = workdir / "executor"
    executor = Executor(directory, "--n-qc-compute-workers", "1")
    try:
        (workflow_id,) = submit(directory, PARACETAMOL)
        wait_for(lambda: qc_files(directory), what="a first optimization")
        out = cli("executor", "cancel", "--id", workflow_id, "--directory", str(directory)).stdout
        assert "cancelled" in out
        assert status(directory, workflow_id).status == "cancelled"
        client = connect(directory=directory)
        try:
            wait_for(lambda: not any(client._client.processing().values()), 60, "idle workers")
        finally:
            client.stop()
    finally:
        executor.terminate()


def test_a_killed_executor_resumes_without_recomputing(workdir):
    directory = workdir / "executor"
    executor = Executor(directory, "--n-qc-compute-workers", "1")
    (workflow_id,) = submit(directory, PARACETAMOL)
    before = wait_for(lambda: len(qc_files(directory)) >= 4 and qc_files(directory), what="4 optimizations")
    executor.kill()
    assert status_is_unfinished(directory, workflow_id)
    executor = Executor(directory, "--n-qc-compute-workers", "2")
    try:
        cli("executor", "watch", "--id", workflow_id, "--directory", str(directory))
        after = qc_files(directory)
        assert {name: after[name] for name in before} == before  # not one recomputed
        assert len(after) > len(before)
        assert status(directory, workflow_id).status == "success"
    finally:
        executor.terminate()


def status_is_unfinished(directory: Path, workflow_id: str) -> bool:
    record = json.loads(next((directory / "store" / "workflows").glob(f"*/{int(workflow_id):08d}.json")).read_text())
    return all(stage["status"] in ("waiting", "running", "success") for stage in record["value"]["output"]["stages"])
