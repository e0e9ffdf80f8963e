"""How fast client commands answer, as a ratio against `python -c "import distributed"`.

Client commands load no chemistry (openff, rdkit, qcengine), so each should cost little more than
importing Dask itself. Every command runs `--repeat` times, interleaved with the reference, in one
run; the median wall time of each is reported. `executor list` and `retrieve` talk to a real
executor started here (one workflow submitted to it, so they have something to show).

Run from the repository root (a quiet machine gives meaningful numbers):
    .venv/bin/python bench/cli_latency.py [--repeat 5]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

REFERENCE = [sys.executable, "-c", "import distributed"]


def bespoke_dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "bespoke_dask.cli", *args]


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()

    from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory

    workflow = BespokeWorkflowFactory.from_name("debug").optimization_schema_from_smiles("CCO")
    with tempfile.TemporaryDirectory() as directory:
        with BespokeDaskExecutor(directory=directory) as executor:
            workflow_id = executor.submit(workflow)
            executor.wait_until_complete(workflow_id)
            address = ["--scheduler", executor.scheduler_address]
            commands = {
                "bespoke-dask --help": bespoke_dask("--help"),
                "executor list": bespoke_dask("executor", "list", *address),
                "executor list --json": bespoke_dask("executor", "list", "--json", *address),
                "executor retrieve": bespoke_dask("executor", "retrieve", "--id", workflow_id, *address),
                "executor cancel (finished id)": bespoke_dask("executor", "cancel", "--id", workflow_id, *address),
            }
            times: dict[str, list[float]] = {name: [] for name in ["import distributed", *commands]}
            for _ in range(arguments.repeat):
                times["import distributed"].append(wall_time(REFERENCE))
                for name, command in commands.items():
                    times[name].append(wall_time(command))
    reference = statistics.median(times["import distributed"])
    print(f"median of {arguments.repeat} runs each, interleaved; reference `python -c \"import distributed\"`")
    print(f"{'command':32} {'s':>7} {'ratio':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:32} {median:7.2f} {median / reference:7.2f}")


if __name__ == "__main__":
    main()
