"""How fast client commands answer, as a ratio against `python -c "import distributed"`.

Client commands load no chemistry (openff, rdkit, qcengine), so each should cost little more than
importing Dask itself. Every command runs `--repeat` times, interleaved with the reference, in one
run; the median wall time and CPU time (user + system: less disturbed by a busy machine) of each
are reported. `executor list`, `retrieve` and `watch` talk to a real
executor started here (one workflow submitted to it, so they have something to show): found from
its directory as users do, they read its dashboard over HTTP; given only `--scheduler`, they use a
Dask client (timed too, for comparison). `cancel` from the directory posts to the dashboard with
the executor's token; with `--scheduler` it goes through Dask.

`--baseline DIR` also times the same commands with another source tree of the package first on
the path (e.g. an older commit unpacked with `git archive`), against the same executor.

Run from the repository root (a quiet machine gives meaningful numbers):
    .venv/bin/python bench/cli_latency.py [--repeat 5] [--baseline DIR]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = [sys.executable, "-c", "import distributed"]
SOURCE = str(Path(__file__).resolve().parents[1])  # this tree: what `python -m` would find from here


def bespoke_dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "bespoke_dask.cli", *args]


def timed(command: list[str], source: str = SOURCE, cwd: str = "/") -> tuple[float, float]:
    """(wall time, CPU time) of one run of `command`, in seconds, with the package from `source`.

    It runs in `cwd`, not here: `python -m` puts the working directory first on the path.
    """
    env = dict(os.environ, PYTHONPATH=source)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", help="another source tree of bespoke_dask to time as well")
    arguments = parser.parse_args()

    from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory

    workflow = BespokeWorkflowFactory.from_name("debug").optimization_schema_from_smiles("CCO")
    with tempfile.TemporaryDirectory() as directory:
        with BespokeDaskExecutor(directory=directory) as executor:
            workflow_id = executor.submit(workflow)
            executor.wait_until_complete(workflow_id)
            found = ["--directory", directory]
            address = ["--scheduler", executor.scheduler_address]
            commands = {
                "bespoke-dask --help": bespoke_dask("--help"),
                "executor retrieve --help": bespoke_dask("executor", "retrieve", "--help"),
                "executor list": bespoke_dask("executor", "list", *found),
                "executor list --json": bespoke_dask("executor", "list", "--json", *found),
                "executor retrieve": bespoke_dask("executor", "retrieve", "--id", workflow_id, *found),
                "executor list --scheduler (Dask client)": bespoke_dask("executor", "list", *address),
                "executor retrieve --scheduler (Dask client)": bespoke_dask(
                    "executor", "retrieve", "--id", workflow_id, *address
                ),
                "executor watch (finished id)": bespoke_dask("executor", "watch", "--id", workflow_id, *found),
                "executor watch --scheduler (Dask client)": bespoke_dask(
                    "executor", "watch", "--id", workflow_id, *address
                ),
                "executor cancel (finished id)": bespoke_dask("executor", "cancel", "--id", workflow_id, *found),
                "executor cancel --scheduler (Dask client)": bespoke_dask(
                    "executor", "cancel", "--id", workflow_id, *address
                ),
            }
            sources = {"": SOURCE} | ({" (baseline)": arguments.baseline} if arguments.baseline else {})
            runs = {f"{name}{label}": (command, source) for name, command in commands.items()
                    for label, source in sources.items()}
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in ["import distributed", *runs]}
            for _ in range(arguments.repeat):
                times["import distributed"].append(timed(REFERENCE, cwd=directory))
                for name, (command, source) in runs.items():
                    times[name].append(timed(command, source, cwd=directory))
    medians = {name: [statistics.median(column) for column in zip(*samples)] for name, samples in times.items()}
    wall_reference, cpu_reference = medians["import distributed"]
    print(f"median of {arguments.repeat} runs each, interleaved; reference `python -c \"import distributed\"`")
    print(f"{'command':56} {'wall s':>7} {'ratio':>6} {'CPU s':>7} {'ratio':>6}")
    for name, (wall, cpu) in medians.items():
        print(f"{name:56} {wall:7.2f} {wall / wall_reference:6.2f} {cpu:7.2f} {cpu / cpu_reference:6.2f}")


if __name__ == "__main__":
    main()
