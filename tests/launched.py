"""`bespoke-dask executor launch` in a process of its own, and the CLI run as a user types it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [str(Path(sys.executable).absolute().parent / "bespoke-dask")]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def wait_for(condition, timeout: float = 300.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Executor:
    """`bespoke-dask executor launch` in its own process group."""

    def __init__(self, directory: Path, *options: str):
        self.directory = directory
        self.log = open(directory.parent / f"{directory.name}-launch.log", "a")
        self.process = subprocess.Popen(
            [*CLI, "executor", "launch", "--directory", str(directory), *options],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self.ready, 120, "the executor to start")

    def ready(self) -> bool:
        """The executor has written its own scheduler.json (a killed one leaves a stale file)."""
        if self.process.poll() is not None:
            raise AssertionError(f"launch exited with {self.process.returncode}")
        try:
            info = json.loads((self.directory / "scheduler.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return info["pid"] == self.process.pid

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)

    def kill(self) -> None:
        """SIGKILL the executor and every process it started, as a crashed node would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
