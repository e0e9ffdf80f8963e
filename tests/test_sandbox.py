"""Stage calls in killable child processes: results, errors, time limits, stop, scratch, orphans."""

import os
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

from bespoke_dask import sandbox
from bespoke_dask.errors import InputError, StageTimeout


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:  # also when it ends between the lookup and the status
            return True
        time.sleep(0.05)
    return False


def _sleeper_pids() -> set[int]:
    """Process ids of `sleep 3600` processes (the grandchildren these tests start)."""
    return {p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "3600"]}


def test_a_call_returns_its_result_and_leaves_no_scratch(tmp_path):
    result = sandbox.run(os.getcwd, name="cwd", scratch_root=str(tmp_path))
    assert result.startswith(str(tmp_path))  # the child worked in its own scratch directory
    made = sandbox.run(tempfile.mkdtemp, name="mkdtemp", scratch_root=str(tmp_path))  # as geomeTRIC does
    assert made.startswith(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_an_error_comes_back_as_itself():
    with pytest.raises(InputError, match="bad"):
        sandbox.run(_raise_input_error, ("bad",), name="error")


def _raise_input_error(message):
    raise InputError(message)


def test_a_call_past_its_limit_is_killed_with_the_programs_it_started(tmp_path):
    before = _sleeper_pids()
    started = time.monotonic()
    with pytest.raises(StageTimeout, match="one QC optimization stopped at its time limit of 1 s"):
        sandbox.run(
            subprocess.run, (["sleep", "3600"],), name="slow", timeout=1,
            label="one QC optimization", scratch_root=str(tmp_path),
        )
    assert time.monotonic() - started < 10
    assert all(_gone(pid) for pid in _sleeper_pids() - before)
    assert list(tmp_path.iterdir()) == []


def test_stop_kills_one_call_and_leaves_another_running():
    results = {}

    def call(name):
        try:
            results[name] = sandbox.run(subprocess.run, (["sleep", "3" if name == "kept" else "3600"],), name=name)
        except sandbox.StageStopped as error:
            results[name] = error

    threads = [threading.Thread(target=call, args=(name,)) for name in ("stopped", "kept")]
    for thread in threads:
        thread.start()
    while len(sandbox.running()) < 2:
        time.sleep(0.05)
    stopped_pid = sandbox.running()["stopped"]
    assert sandbox.stop("stopped")
    for thread in threads:
        thread.join(30)
    assert isinstance(results["stopped"], sandbox.StageStopped) and results["stopped"].cancelled
    assert results["kept"].returncode == 0
    assert _gone(stopped_pid)


def test_a_child_and_its_programs_die_with_their_worker(tmp_path):
    """A stand-in worker (a plain Python process) is SIGKILLed while its call runs."""
    before = _sleeper_pids()
    script = (
        "import subprocess; from bespoke_dask import sandbox; "
        "sandbox.run(subprocess.run, (['sleep', '3600'],), name='orphan')"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + 60
    while not (_sleeper_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    sleepers = _sleeper_pids() - before
    assert sleepers, "the call never started"
    worker.kill()
    worker.wait()
    assert all(_gone(pid) for pid in sleepers)


def test_calls_share_a_child_until_one_is_killed():
    first = sandbox.run(os.getpid, name="first")
    assert sandbox.run(os.getpid, name="second") == first  # no fork per call
    with pytest.raises(StageTimeout):
        sandbox.run(time.sleep, (60,), name="stuck", timeout=0.5)
    assert _gone(first)
    assert sandbox.run(os.getpid, name="third") not in (first, os.getpid())


def _forkservers() -> int:
    """How many forkservers this process has started."""
    children = psutil.Process().children()
    return sum("forkserver" in " ".join(child.cmdline()) for child in children)


def _light_steps_loaded() -> bool:
    """Whether this worker has imported the modules of the steps it runs itself (graph.LIGHT)."""
    from bespoke_dask import graph

    return all(stage.function.partition(":")[0] in sys.modules for stage in graph.LIGHT)


@pytest.mark.slow
def test_stage_workers_load_their_stages_before_their_first_task(tmp_path):
    """The stage modules are imported while the workers wait, not when the first task needs them:
    in the forkserver of stage processes, and in the worker itself for the light steps; a worker
    of no stage pool (none here) would do neither."""
    from bespoke_dask import BespokeDaskExecutor

    with BespokeDaskExecutor(
        n_fragmenter_workers=1, n_qc_compute_workers=1, n_optimizer_workers=0, directory=tmp_path
    ) as executor:
        deadline = time.monotonic() + 120
        while sorted(executor._client.run(_forkservers).values()) != [1, 1] or not all(
            executor._client.run(_light_steps_loaded).values()
        ):
            assert time.monotonic() < deadline, (executor._client.run(_forkservers), executor._client.run(_light_steps_loaded))
            time.sleep(0.2)
        assert executor.list() == []  # nothing was submitted: no task started them


def _host_facts_read_again() -> bool:
    """In a stage process: whether qcengine's first computation would read the host's facts
    (py-cpuinfo, about 1 s) instead of finding them read by the forkserver."""
    import cpuinfo
    import qcengine

    read = []
    real, cpuinfo.get_cpu_info = cpuinfo.get_cpu_info, lambda: read.append(1) or real()
    try:
        qcengine.config.get_config(task_config={"ncores": 1})
    finally:
        cpuinfo.get_cpu_info = real
    return bool(read)


def test_a_new_stage_process_finds_qcengines_host_facts_already_read():
    result = []
    thread = threading.Thread(target=lambda: result.append(sandbox.run(_host_facts_read_again, name="facts")))
    thread.start()  # a thread of its own: a child that has run nothing yet
    thread.join()
    assert result == [False]


def test_a_child_and_the_programs_it_starts_run_nicer_than_their_worker_by_the_niceness_given():
    result = []
    thread = threading.Thread(  # a thread of its own: its child is new, made with this niceness
        target=lambda: result.append(
            sandbox.run(subprocess.check_output, (["nice"],), {"text": True}, name="nice", niceness=5)
        )
    )
    thread.start()
    thread.join()
    assert result == [f"{os.nice(0) + 5}\n"]


@pytest.mark.parametrize("pool", ["fragmenter", "qc", "optimizer"])
def test_a_pools_stage_processes_run_as_nice_as_its_config_says(pool):
    """Fragmentation and fits go before QC where they share the cores (bespoke_dask.yaml)."""
    import dask.config
    from distributed import Client, LocalCluster

    from bespoke_dask import graph

    configured = dask.config.get(f"bespoke-dask.pools.{pool}.niceness")
    isolated = {"name": f"nice-{pool}", "timeout": 60, "label": pool, "pool": pool}
    with (  # in this process: in-process transport, nothing listens
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, resources={pool: 1}, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        niceness = client.submit(graph._run, "os:nice", None, isolated, 0, resources={pool: 1}, pure=False).result()
    assert niceness == os.nice(0) + configured
    assert dask.config.get("bespoke-dask.pools.qc.niceness") > dask.config.get("bespoke-dask.pools.fragmenter.niceness")
