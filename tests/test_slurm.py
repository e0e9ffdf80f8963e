"""`executor launch --cluster slurm` against a real one-node SLURM started by the test.

The shipped jobqueue.yaml, overridden to small shapes, drives every pool's batch jobs; a
molecule submitted from another process is fitted on those jobs' workers.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from single_node_slurm import SingleNodeSlurm, unavailable_reason

REPOSITORY = Path(__file__).parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
]
# Small shapes on a 2-core node, each pool's own cores and memory (whole GiB: SLURM rounds up).
SHAPES = {"fragmenter": ("1", "2G"), "qc-compute": ("2", "3G"), "optimizer": ("1", "4G")}


def small_jobqueue_config(path: Path) -> Path:
    """The shipped jobqueue.yaml with each pool shrunk to one core and its own memory."""
    config = yaml.safe_load((REPOSITORY / "jobqueue.yaml").read_text())
    for pool, (cores, memory) in SHAPES.items():
        config["jobqueue"][f"slurm-{pool}"].update(cores=int(cores), memory=memory.replace("G", "GiB"))
    config["jobqueue"]["slurm"]["death-timeout"] = 30
    config["bespoke-dask"] = {"batch": {"interval": "1s", "idle-timeout": "5s"}}
    path.write_text(yaml.safe_dump(config))
    return path


def bespoke(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bespoke-dask", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_a_molecule_is_fitted_on_slurm_jobs_of_each_pools_own_shape(tmp_path):
    directory = tmp_path / "executor"
    with SingleNodeSlurm(tmp_path / "slurm") as slurm:
        env = dict(slurm.env, PATH=f"{Path(sys.executable).parent}:{slurm.env['PATH']}")
        log = open(tmp_path / "launch.log", "w")
        launch = subprocess.Popen(
            ["bespoke-dask", "executor", "launch", "--cluster", "slurm", "--directory", str(directory),
             "--jobqueue-config", str(small_jobqueue_config(tmp_path / "jobqueue.yaml")),
             "--max-jobs", "qc-compute=1", "--tls"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while not (directory / "scheduler.json").exists():
                assert launch.poll() is None and time.monotonic() < deadline, (tmp_path / "launch.log").read_text()
                time.sleep(0.2)
            assert json.loads((directory / "scheduler.json").read_text())["address"].startswith("tls://127.0.0.1:")
            submitted = bespoke("executor", "submit", "--smiles", "COC=O", "--workflow", "debug",
                                "--qc-spec", "xtb", "gfn2xtb", "none", "--directory", str(directory), env=env)
            assert submitted.returncode == 0, submitted.stderr
            watch = subprocess.Popen(
                ["bespoke-dask", "executor", "watch", "--id", "1", "--directory", str(directory)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            seen: dict[str, set] = {}
            deadline = time.monotonic() + 300
            while watch.poll() is None:  # exits 0 on success, 2 on a failed fit
                for job in slurm.queue():
                    seen.setdefault(job["name"], set()).add((job["cpus"], job["memory"]))
                if time.monotonic() > deadline:
                    watch.kill()
                time.sleep(0.5)
            output = watch.stdout.read()
            assert watch.returncode == 0, output[-3000:] + (tmp_path / "launch.log").read_text()[-3000:]
            # every pool ran as SLURM jobs of its own shape
            assert seen["bespoke-fragmenter"] == {SHAPES["fragmenter"]}
            assert seen["bespoke-qc-compute"] == {SHAPES["qc-compute"]}
            assert seen["bespoke-optimizer"] == {SHAPES["optimizer"]}
            scripts = {path.stem: path.read_text() for path in (directory / "jobs").glob("*.sh")}
            qc_script = next(text for name, text in scripts.items() if name.startswith("qc-compute-"))
            assert "#SBATCH --cpus-per-task=2" in qc_script and "#SBATCH --mem=3G" in qc_script
            assert "--resources qc=1" in qc_script and "export BEFLOW_QC_COMPUTE_WORKER_N_CORES=2" in qc_script
            assert f"--tls-ca-file {directory / 'tls' / 'ca.pem'}" in qc_script  # the jobs' workers use TLS too
            fragmenter_script = next(text for name, text in scripts.items() if name.startswith("fragmenter-"))
            assert "--resources fragmenter=1" in fragmenter_script
            # the finished workflow leaves nothing to do: idle QC jobs are released
            deadline = time.monotonic() + 60
            while any(job["name"] == "bespoke-qc-compute" for job in slurm.queue()):
                assert time.monotonic() < deadline, slurm.queue()
                time.sleep(0.5)
        finally:
            launch.terminate()
            launch.wait(60)
            log.close()
        deadline = time.monotonic() + 30  # stopping the executor cancels every job
        while slurm.queue():
            assert time.monotonic() < deadline, slurm.queue()
            time.sleep(0.5)


def test_inside_one_allocation_each_pools_workers_are_srun_steps_of_its_shape(tmp_path):
    from distributed import Client

    directory = tmp_path / "executor"
    with SingleNodeSlurm(tmp_path / "slurm") as slurm:
        env = dict(slurm.env, PATH=f"{Path(sys.executable).parent}:{slurm.env['PATH']}")
        log = open(tmp_path / "launch.log", "w")
        salloc = subprocess.Popen(
            ["salloc", "-n", "1", "-c", "2", "--mem=4G", "--job-name=bespoke-allocation",
             "bespoke-dask", "executor", "launch", "--cluster", "slurm-allocation", "--directory", str(directory),
             "--jobqueue-config", str(small_jobqueue_config(tmp_path / "jobqueue.yaml"))],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while not (directory / "scheduler.json").exists():
                assert salloc.poll() is None and time.monotonic() < deadline, (tmp_path / "launch.log").read_text()
                time.sleep(0.2)
            info = yaml.safe_load((directory / "scheduler.json").read_text())
            steps = set()
            with Client(info["address"], timeout=30) as client:
                # a QC-pool task brings a QC step: the pool's job script run by srun
                future = client.submit(time.sleep, 3, resources={"qc": 1}, pure=False)
                deadline = time.monotonic() + 120
                while not future.done():
                    assert time.monotonic() < deadline, (tmp_path / "launch.log").read_text()[-3000:]
                    out = slurm.run("squeue", "-s", "-h", "-o", "%j|%i", check=False).stdout
                    steps |= {line.split("|")[0] for line in out.splitlines()}
                    time.sleep(0.5)
                future.result()
                (worker,) = client.scheduler_info()["workers"].values()
                assert worker["resources"] == {"qc": 1} and worker["name"] == "qc-compute-0"
            assert "bespoke-qc-compute" in steps and "bespoke-fragmenter" not in steps
            script = (directory / "jobs" / "qc-compute-0.sh").read_text()
            assert "--resources qc=1" in script and "#SBATCH --mem=3G" in script
            deadline = time.monotonic() + 60  # idle: the step ends, the allocation stays
            while "bespoke-qc-compute" in slurm.run("squeue", "-s", "-h", "-o", "%j", check=False).stdout:
                assert time.monotonic() < deadline
                time.sleep(0.5)
            assert [job["name"] for job in slurm.queue()] == ["bespoke-allocation"]
        finally:
            if (directory / "scheduler.json").exists():
                os.kill(yaml.safe_load((directory / "scheduler.json").read_text())["pid"], signal.SIGTERM)
            salloc.wait(60)
            log.close()
