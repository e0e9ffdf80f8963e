"""The executor beyond one process: a user's own `dask scheduler --preload`, workers joining with
`launch-worker`, no silent waits for a missing pool, loopback-only sockets, and TLS.

Every server is a real subprocess bound to 127.0.0.1, stopped by its pid at the end.
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from distributed import Client
from launched import CLI, Executor, cli, wait_for
from test_service import submit

from bespoke_dask import BespokeWorkflowFactory
from bespoke_dask import tls as bespoke_tls
from bespoke_dask.cluster import THREAD_LIMITS
from bespoke_dask.executor import ExecutorNotFound, connect
from bespoke_dask.service import scheduler_address_from

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).absolute().parent
METHYL_FORMATE = "COC=O"


class Process:
    """A command in its own process group, logging to a file; `stop` sends SIGTERM and waits."""

    def __init__(self, log: Path, *command: str, env: dict | None = None):
        self.log = open(log, "a")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=os.environ | (env or {}),
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)


def launch_worker(workdir: Path, pool: str, address: str, *options: str) -> Process:
    return Process(workdir / f"{pool}-worker.log", *CLI, "launch-worker", "--worker-type", pool,
                   "--scheduler", address, *options)


def pools(executor) -> list[str]:
    """The pool of every worker the scheduler knows, sorted."""
    workers = executor.client.scheduler_info(n_workers=-1)["workers"].values()
    return sorted(pool for worker in workers for pool in worker["resources"])


def listening(pid: int) -> set[tuple[str, int]]:
    """Every listening socket of a process and all its descendants."""
    root = psutil.Process(pid)
    return {
        (connection.laddr.ip, connection.laddr.port)
        for process in [root, *root.children(recursive=True)]
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }


def handshake_accepted(address: str, ca: Path) -> bool:
    """Whether the server at `address` talks to a TLS client that shows no certificate."""
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"\0" * 8)
                return tls.recv(1) != b""  # TLS 1.3 reports a refused certificate on first read
    except (ssl.SSLError, ConnectionError):
        return False


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_user_started_scheduler_with_the_preload_hosts_the_executor(workdir):
    """`dask scheduler --preload bespoke_dask.preload`; pools join with launch-worker; a missing
    pool fails its workflow within no-workers-timeout, naming the pool and the fix."""
    directory = workdir / "executor"
    workflow = BespokeWorkflowFactory.from_name("debug").optimization_schema_from_smiles(METHYL_FORMATE)
    scheduler = Process(
        workdir / "scheduler.log", str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
        "--dashboard-address", "127.0.0.1:0", "--preload", "bespoke_dask.preload",
        "--bespoke-directory", str(directory),
        env={"DASK_BESPOKE_DASK__NO_WORKERS_TIMEOUT": "2s"},
    )
    workers = []
    try:
        address = wait_for(lambda: scheduler_address_from(directory), 120, "the scheduler's coordinator")
        workers += [launch_worker(workdir, pool, address) for pool in ("fragmenter", "optimizer")]
        executor = connect(address)
        try:
            wait_for(lambda: pools(executor) == ["fragmenter", "optimizer"], 120, "two workers")
            failed = executor.wait_until_complete(executor.submit(workflow), frequency=0.2)
            assert failed.status == "errored"
            assert "no qc-compute worker joined within 2.00 s" in failed.error, failed.error
            assert f"bespoke-dask launch-worker --worker-type qc-compute --scheduler {address}" in failed.error
            workers.append(launch_worker(workdir, "qc-compute", address, "--n-workers", "2"))
            wait_for(lambda: pools(executor).count("qc") == 2, 120, "two QC workers")
            retried = executor.wait_until_complete(executor.submit(workflow), frequency=0.5)
            assert retried.status == "success", retried.error
            assert retried.id != failed.id
        finally:
            executor.stop()
    finally:
        for worker in workers:
            worker.stop()
        assert scheduler.stop() == 0
    assert not (directory / "scheduler.json").exists()  # the plugin closed with its scheduler


def test_launch_worker_joins_an_executor_and_everything_listens_on_loopback(workdir, monkeypatch):
    """`executor launch` with no QC workers (the option beats BEFLOW_*), a QC worker from another
    process does the scans; every socket of both process trees is on 127.0.0.1."""
    directory = workdir / "executor"
    monkeypatch.setenv("BEFLOW_N_QC_COMPUTE_WORKERS", "4")
    executor = Executor(directory, "--n-qc-compute-workers", "0")
    worker = None
    try:
        client = connect(directory=directory)
        try:
            wait_for(lambda: pools(client) == ["fragmenter", "optimizer"], 120, "no QC workers, despite BEFLOW_*")
            worker = launch_worker(workdir, "qc-compute", client.scheduler_address)
            wait_for(lambda: "qc" in pools(client), 120, "the QC worker")
        finally:
            client.stop()
        (workflow_id,) = submit(directory, METHYL_FORMATE)
        cli("executor", "watch", "--id", workflow_id, "--directory", str(directory))
        sockets = listening(executor.process.pid) | listening(worker.process.pid)
        assert len(sockets) >= 6  # scheduler, dashboard, and per worker a nanny and a worker
        assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
    finally:
        if worker is not None:
            worker.stop()
        executor.terminate()


def test_a_tls_executor_refuses_clients_without_its_certificates(workdir, monkeypatch):
    """`executor launch --tls` generates a CA and a node certificate; only holders get in."""
    directory = workdir / "executor"
    monkeypatch.setenv("BEFLOW_N_QC_COMPUTE_WORKERS", "2")  # not overridden: it applies
    monkeypatch.setenv("BEFLOW_QC_COMPUTE_WORKER_N_CORES", "3")
    executor = Executor(directory, "--tls", "--n-fragmenter-workers", "0", "--n-optimizer-workers", "0")
    try:
        address = scheduler_address_from(directory)
        assert address.startswith("tls://127.0.0.1:")
        key = directory / "tls" / "node-key.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        ca = directory / "tls" / "ca.pem"
        assert not handshake_accepted(address, ca)  # TLS, trusting the executor, but no certificate
        strangers = {"no TLS": None, "another CA's certificate": bespoke_tls.generate(workdir / "other", "127.0.0.1")}
        for name, security in strangers.items():
            with pytest.raises(OSError):
                plain = address.replace("tls://", "tcp://") if security is None else address
                Client(plain, timeout="3s", security=security)
                pytest.fail(f"a client with {name} got in")
        refused = cli("executor", "list", "--scheduler", address, "--directory", str(workdir / "other"),
                      check=False)
        assert refused.returncode == 2 and "no executor answers" in refused.stderr, refused.stderr
        with pytest.raises(ExecutorNotFound, match="requires TLS"):
            connect(address, directory=workdir / "elsewhere")
        # With the certificates (found in the directory, or given as flags) clients get in.
        client = connect(directory=directory)
        try:
            wait_for(lambda: pools(client) == ["qc"] * 2, 120, "BEFLOW_N_QC_COMPUTE_WORKERS=2 workers")
            # The thread limits were in the workers' environment when their processes started
            # (/proc/PID/environ), before numpy loaded, not set afterwards.
            for pid in client.client.run(os.getpid).values():
                environ = psutil.Process(pid).environ()
                assert [environ[name] for name in THREAD_LIMITS] == ["3"] * 3
            assert client.list() == []
        finally:
            client.stop()
        tls = directory / "tls"
        listed = cli("executor", "list", "--scheduler", address, "--directory", str(workdir / "elsewhere"),
                     "--tls-ca-file", str(tls / "ca.pem"), "--tls-cert", str(tls / "node.pem"),
                     "--tls-key", str(key))
        assert "id" in listed.stdout
    finally:
        assert executor.terminate() == 0
