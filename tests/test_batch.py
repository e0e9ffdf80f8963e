"""Job scripts per pool, line by line against jobqueue.yaml; which jobqueue.yaml is read."""

import sys
from pathlib import Path

import dask.config
import pytest
import yaml

from bespoke_dask.batch import job_script, load_jobqueue_config, parse_job_counts, walltime_seconds
from bespoke_dask.errors import InputError

REPOSITORY = Path(__file__).parents[1]
SHIPPED = yaml.safe_load((REPOSITORY / "jobqueue.yaml").read_text())["jobqueue"]
ADDRESS = "tcp://10.1.2.3:8786"
# bespoke-dask.distributed, which a job's worker starts with (it does not import bespoke_dask first)
DISTRIBUTED_TIMERS = [
    "export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=200ms",
    "export DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL=2s",
    "export DASK_DISTRIBUTED__WORKER__PROFILE__INTERVAL=100ms",
    "export DASK_DISTRIBUTED__WORKER__PROFILE__CYCLE=10s",
    "export DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL=1s",
]
POOLS = {"fragmenter": ("fragmenter", "FRAGMENTER"), "qc": ("qc-compute", "QC_COMPUTE"), "optimizer": ("optimizer", "OPTIMIZER")}


def _gib(memory: str) -> int:
    assert memory.endswith("GiB"), "the shipped shapes are in whole GiB"
    return int(memory[:-3])


def _shape(system: str, worker_type: str) -> dict:
    return SHIPPED[system] | SHIPPED[f"{system}-{worker_type}"]


def _worker_lines(shape: dict, pool: str, stage: str, name: str) -> list[str]:
    cores, gib = shape["cores"], _gib(shape["memory"])
    return [
        f"export BEFLOW_{stage}_WORKER_N_CORES={cores}",
        f"export OMP_NUM_THREADS={cores}",
        f"export MKL_NUM_THREADS={cores}",
        f"export OPENBLAS_NUM_THREADS={cores}",
        f"export BEFLOW_{stage}_WORKER_MAX_MEM={float(gib)}",
        *DISTRIBUTED_TIMERS,
        f"{sys.executable} -m distributed.cli.dask_worker {ADDRESS} --name {name} --nthreads {cores} "
        f"--memory-limit {gib:.2f}GiB --nanny --death-timeout {shape['death-timeout']} --resources {pool}=1",
    ]


@pytest.mark.parametrize("pool", POOLS)
def test_slurm_job_script_of_each_pool_is_its_jobqueue_yaml_section(pool, tmp_path, config):
    worker_type, stage = POOLS[pool]
    load_jobqueue_config()
    shape, logs = _shape("slurm", worker_type), tmp_path / "jobs"
    lines = job_script("slurm", pool, ADDRESS, tmp_path, name=f"{worker_type}-7").splitlines()
    assert lines == [
        "#!/usr/bin/env bash",
        "",
        f"#SBATCH -J {shape['name']}",
        f"#SBATCH -e {logs}/{shape['name']}-%J.err",
        f"#SBATCH -o {logs}/{shape['name']}-%J.out",
        "#SBATCH -n 1",
        f"#SBATCH --cpus-per-task={shape['cores']}",
        f"#SBATCH --mem={_gib(shape['memory'])}G",
        f"#SBATCH -t {shape['walltime']}",
        *_worker_lines(shape, pool, stage, f"{worker_type}-7"),
    ]


@pytest.mark.parametrize("pool", POOLS)
def test_pbs_job_script_of_each_pool_is_its_jobqueue_yaml_section(pool, tmp_path, config):
    worker_type, stage = POOLS[pool]
    load_jobqueue_config()
    shape, logs = _shape("pbs", worker_type), tmp_path / "jobs"
    gib = _gib(shape["memory"])
    memory = f"{gib}GB" if gib >= 10 else f"{gib * 1024}MB"  # PBS's binary units, as dask-jobqueue writes them
    lines = job_script("pbs", pool, ADDRESS, tmp_path, name=f"{worker_type}-0").splitlines()
    assert lines == [
        "#!/usr/bin/env bash",
        "",
        f"#PBS -N {shape['name']}",
        f"#PBS -l select=1:ncpus={shape['cores']}:mem={memory}",
        f"#PBS -l walltime={shape['walltime']}",
        f"#PBS -e {logs}/",
        f"#PBS -o {logs}/",
        *_worker_lines(shape, pool, stage, f"{worker_type}-0"),
    ]


def test_a_users_file_replaces_the_shipped_one_and_shares_cores_among_processes_and_tasks(
    tmp_path, config, monkeypatch
):
    own = {
        "jobqueue": {
            "slurm": {"cores": 2, "memory": "8GiB", "walltime": "01:00:00", "queue": "short",
                      "account": "chem123", "job-extra-directives": ["--qos=low"],
                      "job-script-prologue": ["module load xtb"], "worker-extra-args": []},
            "slurm-qc-compute": {"name": "my-qc", "cores": 16, "memory": "64GiB", "processes": 2},
        }
    }
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(own))
    monkeypatch.setenv("BEFLOW_QC_COMPUTE_WORKER_N_TASKS", "2")
    load_jobqueue_config(tmp_path / "mine.yaml")
    qc = job_script("slurm", "qc", "tcp://127.0.0.1:8786", tmp_path).splitlines()
    assert qc[2:4] == ["#SBATCH -J my-qc", f"#SBATCH -e {tmp_path}/jobs/my-qc-%J.err"]
    assert qc[5:12] == [
        "#SBATCH -p short", "#SBATCH -A chem123", "#SBATCH -n 1", "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=64G", "#SBATCH -t 01:00:00", "#SBATCH --qos=low",
    ]
    # 16 cores, 2 processes of 2 QC tasks each: 4 cores and 16 GiB per calculation
    assert qc[12:18] == [
        "module load xtb", "export BEFLOW_QC_COMPUTE_WORKER_N_CORES=4", "export OMP_NUM_THREADS=4",
        "export MKL_NUM_THREADS=4", "export OPENBLAS_NUM_THREADS=4", "export BEFLOW_QC_COMPUTE_WORKER_MAX_MEM=16.0",
    ]
    assert qc[18:23] == DISTRIBUTED_TIMERS
    assert qc[23].endswith(
        "--nthreads 8 --memory-limit 32.00GiB --nworkers 2 --nanny --death-timeout 60 "
        "--resources qc=2 --host 127.0.0.1 --dashboard-address 127.0.0.1:0"
    )
    # a pool without its own section takes the base shape, not the shipped one
    fragmenter = job_script("slurm", "fragmenter", ADDRESS, tmp_path)
    assert "#SBATCH --cpus-per-task=2\n" in fragmenter and "#SBATCH --mem=8G\n" in fragmenter
    assert "bespoke-fragmenter" not in fragmenter


def test_a_jobqueue_section_in_the_users_dask_config_replaces_the_shipped_file(tmp_path, config, monkeypatch):
    (tmp_path / "jobqueue.yaml").write_text(yaml.safe_dump({"jobqueue": {"slurm": {"cores": 3, "memory": "3GiB"}}}))
    monkeypatch.setattr(dask.config, "paths", [str(tmp_path)])
    dask.config.refresh(paths=[str(tmp_path)])
    load_jobqueue_config()
    script = job_script("slurm", "qc", ADDRESS, tmp_path)
    assert "#SBATCH --cpus-per-task=3\n" in script and "bespoke-qc-compute" not in script


def test_job_counts_and_walltimes_in_the_users_words():
    assert parse_job_counts(["qc-compute=4", "fragmenter=0", "optimizer=2"]) == {"qc": 4, "fragmenter": 0, "optimizer": 2}
    assert parse_job_counts(["qc=3"]) == {"qc": 3}
    with pytest.raises(InputError, match="POOL=N"):
        parse_job_counts(["gpu=1"])
    assert walltime_seconds("24:00:00") == 86400
    assert walltime_seconds("1-02:00:00") == 93600
    assert walltime_seconds("30") == 1800
    assert walltime_seconds(None) is None


def test_launch_names_the_problem_with_an_unknown_cluster_or_outside_an_allocation(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bespoke_dask.cli import app

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    runner = CliRunner()
    unknown = runner.invoke(app, ["executor", "launch", "--cluster", "lsf", "--directory", str(tmp_path)])
    assert unknown.exit_code == 2 and "unknown cluster 'lsf'" in unknown.output
    outside = runner.invoke(app, ["executor", "launch", "--cluster", "slurm-allocation", "--directory", str(tmp_path)])
    assert outside.exit_code == 2 and "runs inside a SLURM allocation" in outside.output
    bad_count = runner.invoke(app, ["executor", "launch", "--cluster", "slurm", "--max-jobs", "qc-compute=many",
                                    "--directory", str(tmp_path)])
    assert bad_count.exit_code == 2 and "POOL=N" in bad_count.output
