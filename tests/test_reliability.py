"""Nothing lost, nothing hangs, on a real LocalCluster with real engines (GFN2-xTB, MMFF94):
time limits that kill, partial fits, SIGKILLed workers, a precise cancel, a corrupt store, no leaks."""

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import dask.config
import psutil
import pytest

from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory, sandbox, service
from bespoke_dask.cli.options import batch_workflows
from bespoke_dask.executor import connect
from bespoke_dask.progress import topic
from bespoke_dask.schema import ForceBalanceSettings, QCSpec, StageTimeouts, WBOFragmentation
from bespoke_dask.store import Store
from launched import Executor

pytestmark = pytest.mark.slow

DEBUG = BespokeWorkflowFactory.from_name("debug")
MMFF = DEBUG.model_copy(update={"qc_spec": QCSpec(program="rdkit", method="mmff94", basis=None)})


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    """One worker per pool; the QC worker runs two QC tasks at once (for the precise cancel)."""
    with dask.config.set({"bespoke-dask.pools.qc.n-tasks": 2}):
        with BespokeDaskExecutor(
            n_fragmenter_workers=1,
            n_qc_compute_workers=1,
            n_optimizer_workers=1,
            directory=tmp_path_factory.mktemp("reliability"),
        ) as executor:
            yield executor


def _workers(executor, pool: str) -> list[str]:
    info = executor._client.scheduler_info()["workers"]
    return [address for address, worker in info.items() if pool in worker["resources"]]


def _children(executor, pool: str) -> dict[str, dict[str, int]]:
    """Worker address -> {task key: pid} of the stage processes running on `pool`'s workers."""
    return executor._client.run(sandbox.running, workers=_workers(executor, pool))


def _wait_for_child(
    executor, pool: str, count: int = 1, within: float = 300, stage: str | None = None
) -> tuple[str, dict[str, int]]:
    """A worker of `pool` running `count` stage processes (of `stage` only, if given), and them."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for address, running in _children(executor, pool).items():
            running = {key: pid for key, pid in running.items() if stage is None or key.startswith(f"{stage}-")}
            if len(running) >= count:
                return address, running
        time.sleep(0.02)
    raise AssertionError(f"no {pool} task ran within {within} s")


def _worker_pid(executor, address: str) -> int:
    return executor._client.run(os.getpid, workers=[address])[address]


def _gone(pid: int, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _stray_processes(executor) -> list[str]:
    """Processes under the workers other than their forkservers: a leftover stage or program."""
    pids = executor._client.run(os.getpid).values()
    stray = []
    for pid in pids:
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "forkserver" not in " ".join(child.cmdline()):
                    stray.append(" ".join(child.cmdline())[:80])
    return stray


def test_a_qc_optimization_past_its_limit_is_stopped_and_only_its_workflow_errors(executor):
    limited = DEBUG.optimization_schema_from_smiles("COc1ccccc1").model_copy(
        update={"timeouts": StageTimeouts(qc=0.05)}
    )
    good = DEBUG.optimization_schema_from_smiles("COC=O")
    limited_id, good_id = executor.submit(limited), executor.submit(good)
    limited_out = executor.wait_until_complete(limited_id, frequency=0.2)
    assert limited_out.status == "errored"
    assert limited_out.error.startswith("qc-generation: ")
    assert "one QC optimization stopped at its time limit of 0.05 s" in limited_out.error
    assert executor.wait_until_complete(good_id, frequency=0.2).status == "success"
    assert all(not running for running in executor._client.run(sandbox.running).values())
    assert _stray_processes(executor) == []
    assert _eventually_released(executor) == []  # the timed-out task's error too


def _wanted_keys(dask_scheduler=None) -> list[str]:
    """Run on the scheduler: the keys a client still holds."""
    return [str(key) for key, task in dask_scheduler.tasks.items() if task.who_wants]


def _eventually_released(executor, within: float = 30) -> list[str]:
    """The keys still held once nothing runs (drawings may finish after their workflow)."""
    deadline = time.monotonic() + within
    while (held := executor._client.run_on_scheduler(_wanted_keys)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return held


def test_failed_torsions_are_skipped_with_allow_partial_and_listed_without(executor):
    """Real engine input the engine cannot do: MMFF94 (rdkit) on the charged fragments of a zwitterion."""
    strict = MMFF.optimization_schema_from_smiles("[O-]C(=O)c1ccc(cc1)OCC[NH3+]")
    lenient = strict.model_copy(update={"allow_partial": True})
    strict_out, lenient_out = (
        executor.wait_until_complete(executor.submit(w), frequency=0.2) for w in (strict, lenient)
    )
    assert strict_out.status == "errored"
    failed = re.search(r"(\d) of (\d) torsiondrives failed \(allow_partial fits the others\)", strict_out.error)
    assert failed, strict_out.error
    assert strict_out.error.count("rdkit cannot do charged molecules") == int(failed.group(1))

    assert lenient_out.status == "success", lenient_out.error
    skipped = lenient_out.results.skipped
    assert len(skipped) == int(failed.group(1)) and all("charged" in s.error for s in skipped)
    fitted = {parameter.smirks for parameter in lenient_out.results.parameters}
    assert fitted and not fitted & {smirks for s in skipped for smirks in s.smirks}
    assert fitted <= {p.smirks for p in lenient_out.bespoke_force_field["ProperTorsions"].parameters}


def test_killed_workers_are_replaced_and_their_tasks_run_again(executor):
    """SIGKILL the fragmenter worker during fragmentation, the QC worker during an optimization,
    the optimizer worker during the fit: the workflow succeeds and says what ran again."""
    workflow = DEBUG.optimization_schema_from_smiles("CSc1ccccc1").model_copy(
        update={"fragmentation": WBOFragmentation(), "optimizer": ForceBalanceSettings(max_iterations=1)}
    )
    workflow_id = executor.submit(workflow)
    killed = []
    for pool, stage in (("fragmenter", "fragment"), ("qc", "qc"), ("optimizer", "optimize")):
        address, running = _wait_for_child(executor, pool, stage=stage)  # the charges run on the optimizer pool too
        os.kill(_worker_pid(executor, address), signal.SIGKILL)
        killed += running.values()
    result = executor.wait_until_complete(workflow_id, frequency=0.2)
    assert result.status == "success", result.error
    assert all(_gone(pid) for pid in killed)  # the stage processes died with their workers
    fragmentation, qc_generation, optimization = result.stages
    for notes in (fragmentation.retries, qc_generation.scans[0].retries, optimization.retries):
        assert any("run again (1 of 2)" in note for note in notes), result.stages
    assert executor._client.run_on_scheduler(_retry_notes_kept) == 0  # they grew for ever


def _retry_notes_kept(dask_scheduler=None) -> int:
    """Run on the scheduler: how many task keys the coordinator keeps re-run notes for."""
    return len(dask_scheduler.plugins[service.PLUGIN_NAME].coordinator._retried)


def test_cancel_stops_one_workflows_calculations_and_not_the_others(executor):
    """Both workflows' optimizations share the QC worker's two slots when one is cancelled.

    Which workflow a running key belongs to shows afterwards: the kept workflow's results are
    all stored, and a key that was killed never is. (A thread's stage process outlives its
    call and serves the next one, so a finished call's process is alive, not gone.)
    """
    cancelled = DEBUG.optimization_schema_from_smiles("CC(=O)Nc1ccccc1")
    kept = DEBUG.optimization_schema_from_smiles("CC(=O)OC")
    cancelled_id = executor.submit(cancelled)
    address, _ = _wait_for_child(executor, "qc")
    worker_pid = _worker_pid(executor, address)
    kept_id = executor.submit(kept)
    _, running = _wait_for_child(executor, "qc", count=2)
    started = time.monotonic()
    assert executor.cancel(cancelled_id).status == "cancelled"
    assert time.monotonic() - started < 30
    kept_out = executor.wait_until_complete(kept_id, frequency=0.2)
    assert kept_out.status == "success", kept_out.error
    assert all(not scan.retries for scan in kept_out.stage("qc-generation").scans)  # nothing of it was killed
    assert _worker_pid(executor, address) == worker_pid  # the worker was not restarted
    store = Store(executor.directory / "store")
    killed = [pid for key, pid in running.items() if not store.path("qc", key).exists()]
    assert killed, f"none of {sorted(running)} was the cancelled workflow's"
    assert all(_gone(pid) for pid in killed)
    assert _stray_processes(executor) == []


async def _cancel_at_once(ids: list[str], dask_scheduler=None) -> None:
    """Run on the scheduler: cancel the workflows in one go, so that they end together."""
    await asyncio.gather(*(service.call("cancel", i, dask_scheduler=dask_scheduler) for i in ids))


def test_workflows_cancelled_together_all_drop_their_events(executor):
    """Each ending workflow drops its status events from the scheduler once its own pushes are
    out; workflows ending together must not wait for each other's (they did, for ever)."""
    smiles = ["CCOC", "CCSC", "CCOCC", "CCSCC", "CCCOC", "CCCSC"]
    ids = [executor.submit(DEBUG.optimization_schema_from_smiles(s)) for s in smiles]
    executor._client.run_on_scheduler(_cancel_at_once, ids)
    assert {executor.wait_until_complete(i, frequency=0.2).status for i in ids} <= {"cancelled", "success"}
    deadline = time.monotonic() + 60
    while any(map(_events_of, [executor] * len(ids), ids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [i for i in ids if _events_of(executor, i)] == []


def _events_of(executor, workflow_id: str) -> tuple:
    return executor._client.get_events(topic(workflow_id))


def _waiting_priorities(prefix: str, dask_scheduler=None) -> set[int]:
    """Run on the scheduler: the user priorities of the tasks of one stage it holds."""
    return {-task.priority[0] for key, task in dask_scheduler.tasks.items() if str(key).startswith(prefix)}


def test_the_tasks_of_a_workflow_submitted_earlier_go_first(executor):
    """Each workflow's tasks carry minus its number as their Dask priority, so that molecules
    started first finish first instead of all advancing in step."""
    ids = [executor.submit(DEBUG.optimization_schema_from_smiles(smiles)) for smiles in ("CCOC", "CCSC")]
    wanted, seen = {-int(workflow_id) for workflow_id in ids}, set()
    deadline = time.monotonic() + 300
    while not wanted <= seen and time.monotonic() < deadline:
        seen |= executor._client.run_on_scheduler(_waiting_priorities, "qc-")
        time.sleep(0.05)
    assert wanted <= seen, seen
    assert all(executor.cancel(i).status in ("cancelled", "success") for i in ids)


def test_corrupt_and_truncated_entries_are_recomputed(executor, caplog):
    store = executor.directory / "store"
    done = DEBUG.optimization_schema_from_smiles("COC=O")  # finished in the first test, if it ran
    finished = executor.wait_until_complete(executor.submit(done), frequency=0.2)
    scanned = finished.stage("qc-generation").scans[0].smiles
    (scan_entry,) = [
        path for path in (store / "scan").glob("*/*.json")
        if json.loads(path.read_text())["value"]["task"]["smiles"] == scanned
    ]
    qc_entries = list((store / "qc").glob("*/*.json"))
    scan_entry.write_bytes(b"\x00garbage")
    for entry in qc_entries:
        entry.write_bytes(entry.read_bytes()[:100])
    caplog.set_level(logging.WARNING, logger="bespoke_dask.store")
    refit = done.model_copy(update={"prior_width": 3.0})  # a new workflow needing the same scan
    result = executor.wait_until_complete(executor.submit(refit), frequency=0.2)
    assert result.status == "success", result.error
    assert "corrupt" in caplog.text
    rescanned = json.loads(scan_entry.read_text())["value"]
    assert len(rescanned["grid"]) == 12

    def whole(path):
        with contextlib.suppress(ValueError):
            return "value" in json.loads(path.read_text())
        return False

    assert sum(map(whole, qc_entries)) >= rescanned["n_optimizations"]  # its optimizations ran again


WIDTH = 10  # workflows in flight at once in the leak test


def _resources(executor, scheduler: psutil.Process) -> dict[str, Counter]:
    """What the scheduler's process and every worker hold, and this client's connections to them.

    Per process: descriptors that are not TCP sockets (files, pipes, Unix sockets), threads, child
    processes, and TCP connections per peer process (`tcp->PID`; an in-process connection counts
    once). Dask pools its connections: a pool holds at most one per call made at once, so under load
    the TCP count may rise up to the number of workflows in flight, never with the workflows run.
    """
    workers = executor.client.run(os.getpid)
    processes = {"scheduler": scheduler} | {a: psutil.Process(pid) for a, pid in workers.items()}
    owners = {c.laddr: c.pid for c in psutil.net_connections("tcp") if c.pid}
    counts = {name: _held(process, owners) for name, process in processes.items()}
    ports = {int(address.rsplit(":", 1)[1]) for address in [*workers, executor.client.scheduler.address]}
    mine = [c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port in ports]
    return counts | {"client": Counter({"tcp": len(mine)})}


def _held(process: psutil.Process, owners: dict) -> Counter:
    connections = process.net_connections("tcp")
    listening = {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}
    held = Counter(
        files=process.num_fds() - len(connections), threads=process.num_threads(),
        children=len(process.children(recursive=True)),
    )
    for c in connections:
        if c.raddr and not (owners.get(c.raddr) == process.pid and c.raddr.port not in listening):
            held[f"tcp->{owners.get(c.raddr, 'elsewhere')}"] += 1  # elsewhere: e.g. CLOSE_WAIT
    return held


def _grown_beyond_bounds(before: Counter, after: Counter) -> dict[str, tuple[int, int]]:
    """What grew more than it may: files +3, threads +2, children none, connections to a process
    of ours by WIDTH (pooled), others by 3."""
    bound = {"files": 3, "threads": 2, "children": 0, "tcp->elsewhere": 3}
    return {
        what: (before[what], count) for what, count in after.items()
        if count > before[what] + bound.get(what, WIDTH)
    }


def _files_under(directory: Path) -> set[Path]:
    return set(directory.rglob("*"))


def test_thirty_workflows_leak_no_files_threads_or_processes(tmp_path, monkeypatch):
    """Fits of one molecule with 50 priors, 10 at a time, on a launched executor: fragments and
    scans from the store.

    The executor runs in a process of its own, so only its own descriptors, threads and children
    count (this test process holds what earlier tests left). Two warm-up batches open the
    connections, pools and stage processes that 10 concurrent workflows need; the 30 after them may
    not add to them, except Dask's pooled connections, which a busier machine makes grow up to
    the calls made at once (CI saw the scheduler's process gain 7), never one per workflow. The workers' temporary files go
    to the executor's scratch, this client's to a folder of the test's own (the machine's /tmp is
    shared): neither may gain a file.
    """
    molecule = DEBUG.optimization_schema_from_smiles("COC=O")
    directory, client_tmp = tmp_path / "executor", tmp_path / "client-tmp"
    client_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(client_tmp))
    launched = Executor(directory, *(f"--n-{pool}-workers=1" for pool in ("fragmenter", "qc-compute", "optimizer")))
    executor = connect(directory=directory)
    try:
        def batch(widths):
            ids = [executor.submit(molecule.model_copy(update={"prior_width": w})) for w in widths]
            for workflow_id in ids:
                assert executor.wait_until_complete(workflow_id, frequency=0.1).status == "success"

        for start in range(2):  # warm up: one batch left Dask's connection pool still growing
            batch([3.0 + start + i / 10 for i in range(WIDTH)])
        scheduler, scratch = psutil.Process(launched.process.pid), directory / "scratch"
        before, files = _resources(executor, scheduler), _files_under(scratch)
        for start in range(3):
            batch([5.0 + start + i / 10 for i in range(WIDTH)])
        after = _resources(executor, scheduler)
    finally:
        executor.stop()
        assert launched.terminate() == 0
    grown = {name: _grown_beyond_bounds(held, after[name]) for name, held in before.items()}
    assert not any(grown.values()), (grown, before, after)
    assert _files_under(scratch) - files == set()
    assert list(client_tmp.iterdir()) == []


def test_in_a_mixed_batch_the_good_molecules_finish_whatever_the_bad_ones_do(executor):
    """One batch: unparsable SMILES (refused at submission), nothing to fit, a QC engine that cannot
    do the molecule, and two good molecules, all on one executor at once."""
    smiles = ["COC=O", "C1CC(", "c1ccccc1", "[O-]C(=O)c1ccc(cc1)OCC[NH3+]", "CCOC"]
    workflows, problems = batch_workflows(MMFF, smiles, None)
    assert len(problems) == 1 and "C1CC(" in problems[0]
    ids = [executor.submit(workflow) for workflow in workflows]
    good, nothing, charged, other = (executor.wait_until_complete(i, frequency=0.2) for i in ids)
    for output in (good, other):
        assert output.status == "success", output.error
        assert output.results.parameters
    assert nothing.status == "success" and nothing.results.message.startswith("nothing to fit")
    assert not nothing.results.parameters
    assert charged.status == "errored" and "rdkit cannot do charged molecules" in charged.error
