"""Batch-job latencies on a real one-node SLURM: job start, and release of an idle job.

What it measures, per round: a QC-pool task is submitted to a `BatchCluster` with no jobs;
the scaler (interval 0.5 s) submits a QC job (`sbatch`); the job's worker joins and runs it.
Reported: sbatch -> worker joined (job-start latency: SLURM scheduling plus the worker's
Python start), task submitted -> result, and last task finished -> job cancelled
(idle-release time; expected: idle-timeout plus up to one interval). Raw numbers go to
`bench/results/slurm_jobs.json`.

Run as root where slurmctld/slurmd are installed (the daemons are started on loopback in a
temporary directory and stopped at the end):

    PATH=/work/main/.venv/bin:$PATH python bench/slurm_jobs.py [--rounds 3] [--idle-timeout 5]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dask
from distributed import Client

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from single_node_slurm import SingleNodeSlurm, unavailable_reason  # noqa: E402

from bespoke_dask.batch import BatchCluster  # noqa: E402
from bespoke_dask.scaling import PoolScaler  # noqa: E402

SHAPE = {"jobqueue.slurm": {"cores": 1, "memory": "1GiB", "processes": 1, "walltime": "00:30:00"}}


def one_round(cluster: BatchCluster, scaler: PoolScaler, client: Client) -> dict:
    """Timings (s) of one cold QC job: start, task, release."""
    before = len(scaler.events)
    submitted = time.time()
    client.submit(time.sleep, 0.5, resources={"qc": 1}, pure=False).result()
    finished = time.time()
    while not any(what == "released" for _, _, what in scaler.events[before:]):
        time.sleep(0.05)
    (job,) = {name for _, name, what in scaler.events[before:] if what == "started"}
    events = {what: when for when, name, what in scaler.events[before:] if name == job}
    while "released" not in events:
        time.sleep(0.05)
        events = {what: when for when, name, what in scaler.events[before:] if name == job}
    return {
        "jobs_submitted": sum(what == "submitted" for _, _, what in scaler.events[before:]),
        "job_start": events["started"] - events["submitted"],
        "task_latency": finished - submitted,
        "idle_release": events["released"] - finished,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-timeout", type=float, default=5.0)
    args = parser.parse_args()
    if unavailable_reason():
        sys.exit(unavailable_reason())
    with tempfile.TemporaryDirectory() as scratch, SingleNodeSlurm(Path(scratch) / "slurm") as slurm:
        os.environ["SLURM_CONF"] = slurm.env["SLURM_CONF"]
        with dask.config.set(SHAPE):
            cluster = BatchCluster("slurm", Path(scratch) / "executor")
        scaler = PoolScaler(cluster, idle_timeout=args.idle_timeout, interval=0.5)
        scaler.start()
        try:
            with Client(cluster.scheduler_address) as client:
                rounds = [one_round(cluster, scaler, client) for _ in range(args.rounds)]
        finally:
            scaler.stop()
            cluster.close()
    summary = {name: statistics.median(r[name] for r in rounds) for name in rounds[0] if name != "jobs_submitted"}
    for name, value in summary.items():
        print(f"{name:>13}: median {value:5.1f} s  ({', '.join(f'{r[name]:.1f}' for r in rounds)})")
    results = Path(__file__).parent / "results" / "slurm_jobs.json"
    results.write_text(json.dumps({"idle_timeout": args.idle_timeout, "rounds": rounds, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
