"""One precedence for every setting: command-line option > BEFLOW_* > user dask config > shipped YAML.

Each row is a setting with its command-line option (of `executor launch`) and its BEFLOW_*
variable, where it has one. The command line is parsed by the real Typer app, and the executor
the command would start is built but not started.
"""

import os
import subprocess
import sys
from pathlib import Path

import dask.config
import pytest
import typer.main
import yaml

import bespoke_dask
from bespoke_dask.cli import app
from bespoke_dask.cli import executor as executor_cli
from bespoke_dask.config import setting

SHIPPED = yaml.safe_load((Path(bespoke_dask.__file__).parent / "bespoke_dask.yaml").read_text())["bespoke-dask"]

# key under bespoke-dask, launch option, BEFLOW variable, three values (config, env, option),
# and how to read the setting back from the executor `launch` builds.
ROWS = [
    ("pools.qc.n-workers", "--n-qc-compute-workers", "BEFLOW_N_QC_COMPUTE_WORKERS", (2, 3, 4),
     lambda e: e.pools["qc"][0]),
    ("pools.fragmenter.n-workers", "--n-fragmenter-workers", "BEFLOW_N_FRAGMENTER_WORKERS", (2, 3, 0),
     lambda e: e.pools["fragmenter"][0]),
    ("pools.optimizer.n-workers", "--n-optimizer-workers", "BEFLOW_N_OPTIMIZER_WORKERS", (2, 3, 0),
     lambda e: e.pools["optimizer"][0]),
    ("pools.qc.n-cores", "--qc-compute-n-cores", "BEFLOW_QC_COMPUTE_WORKER_N_CORES", (2, 3, 4),
     lambda e: e.pools["qc"][1].n_cores),
    ("pools.qc.max-memory", "--qc-compute-max-mem", "BEFLOW_QC_COMPUTE_WORKER_MAX_MEM", (2.0, 3.0, 4.0),
     lambda e: e.pools["qc"][1].max_memory),
    ("host", "--host", None, ("10.0.0.2", None, "0.0.0.0"), lambda e: e.host),
    ("port", "--port", None, (8786, None, 8788), lambda e: e.port),
    ("dashboard-port", "--dashboard-port", None, (8787, None, 8789), lambda e: e.dashboard_port),
    ("tls", "--tls", None, (True, None, True), lambda e: e.tls),
]


def launched(*args: str):
    """The executor `bespoke-dask executor launch ARGS` would start (parsed, not started)."""
    command = typer.main.get_command(app).commands["executor"].commands["launch"]
    params = command.make_context("launch", list(args)).params
    return executor_cli._executor(
        params["n_fragmenter_workers"], params["n_qc_compute_workers"], params["qc_compute_n_cores"],
        params["qc_compute_max_mem"], params["n_optimizer_workers"], directory=params["directory"],
        host=params["host"], port=params["port"], dashboard_port=params["dashboard_port"], tls=params["tls"],
    )


@pytest.mark.parametrize("key, option, variable, values, read", ROWS, ids=[row[0] for row in ROWS])
def test_each_layer_overrides_the_one_below(key, option, variable, values, read, monkeypatch):
    in_config, in_env, on_command_line = values
    shipped = SHIPPED
    for part in key.split("."):
        shipped = shipped[part]
    assert setting(key) == shipped
    assert read(launched()) == shipped
    with dask.config.set({f"bespoke-dask.{key}": in_config}):
        assert read(launched()) == in_config
        if variable:
            monkeypatch.setenv(variable, str(in_env))
            assert read(launched()) == in_env
        flag = [option] if isinstance(on_command_line, bool) else [option, str(on_command_line)]
        assert read(launched(*flag)) == on_command_line


def test_the_dask_config_environment_is_the_user_config_layer(monkeypatch, config):
    monkeypatch.setenv("DASK_BESPOKE_DASK__POOLS__QC__N_WORKERS", "5")
    dask.config.refresh()
    assert launched().pools["qc"][0] == 5
    monkeypatch.setenv("BEFLOW_N_QC_COMPUTE_WORKERS", "6")
    assert launched().pools["qc"][0] == 6


def test_a_workers_memory_limit_is_memory_per_task_times_tasks():
    from bespoke_dask.cluster import worker_spec
    from bespoke_dask.config import BespokeWorkerConfig

    options = worker_spec("qc", BespokeWorkerConfig(n_cores=2, max_memory=1.5), "127.0.0.1", n_tasks=3)["options"]
    assert options["memory_limit"] == "4.5GiB"
    assert options["resources"] == {"qc": 3}
    assert options["pre_spawn_env"] == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


def test_with_tls_required_the_dashboard_listens_on_loopback_only(tmp_path):
    """The dashboard is plain HTTP without authentication: under TLS it is not served to the network."""
    from distributed.security import Security

    from bespoke_dask import tls
    from bespoke_dask.cluster import dashboard_address

    required = tls.generate(tmp_path, "127.0.0.1")
    assert dashboard_address("10.1.2.3", 8787, required) == "127.0.0.1:8787"
    assert dashboard_address("10.1.2.3", None, required) == "127.0.0.1:0"
    assert dashboard_address("10.1.2.3", 8787, Security()) == "10.1.2.3:8787"  # the user asked for that host


def test_our_workers_start_with_distributeds_timers_slowed_unless_the_user_set_them():
    """In a fresh interpreter: distributed's defaults load as it is imported, and ours must win over them."""
    code = (
        "import dask, bespoke_dask.cluster as c, bespoke_dask.config as b\n"
        "spec = c.worker_spec('qc', b.BespokeWorkerConfig(), '127.0.0.1')\n"
        "nanny = spec['cls']('tcp://127.0.0.1:1', **spec['options'])\n"  # built, not started
        "worker = nanny.config['distributed']\n"
        "print(worker['admin']['tick']['interval'], worker['worker']['profile']['interval'])\n"
        "print(b.distributed_environment()['DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL'])\n"
    )

    def shown(**variables: str) -> list[str]:
        run = subprocess.run([sys.executable, "-c", code], env=os.environ | variables, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    ours = SHIPPED["distributed"]
    tick, profile = ours["admin"]["tick"]["interval"], ours["worker"]["profile"]["interval"]
    assert (tick, profile) != ("20ms", "10ms")  # distributed's own
    assert shown() == [tick, profile, tick]
    assert shown(DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL="50ms") == ["50ms", profile, "50ms"]
