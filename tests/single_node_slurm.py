"""A real one-node SLURM (Debian's slurm-wlm) on loopback, started and stopped by a test.

As root, without systemd or munge (auth/none): slurmctld and slurmd with every pid, state,
spool and log file under one directory. Clients find it through SLURM_CONF.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun", "salloc")


def unavailable_reason() -> str | None:
    """Why a SLURM cannot be started here, or None."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurmctld slurmd slurm-client"
    if os.geteuid() != 0:
        return "a test SLURM without munge runs slurmd as root only"
    return None


def slurm_conf(directory: Path, cpus: int, memory_mib: int) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join([
        "ClusterName=bespoke-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root",
        "AuthType=auth/none",
        "CredType=cred/none",
        "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "JobAcctGatherType=jobacct_gather/none",
        "SchedulerParameters=sched_interval=1",
        "MinJobAge=600",
        f"SlurmctldPidFile={directory}/slurmctld.pid",
        f"SlurmdPidFile={directory}/slurmd.pid",
        f"SlurmdSpoolDir={directory}/spool",
        f"StateSaveLocation={directory}/state",
        f"SlurmctldLogFile={directory}/slurmctld.log",
        f"SlurmdLogFile={directory}/slurmd.log",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mib} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class SingleNodeSlurm:
    """`with SingleNodeSlurm(tmp_path) as slurm:` a running SLURM; `slurm.env` for its clients."""

    def __init__(self, directory: Path, cpus: int | None = None, memory_mib: int = 8000):
        self.directory = Path(directory).resolve()
        self.cpus = cpus or os.cpu_count()
        self.memory_mib = memory_mib
        self.conf = self.directory / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def __enter__(self) -> "SingleNodeSlurm":
        for name in ("spool", "state"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(slurm_conf(self.directory, self.cpus, self.memory_mib))
        subprocess.run(["slurmctld", "-f", str(self.conf), "-i"], env=self.env, check=True)
        subprocess.run(["slurmd", "-f", str(self.conf)], env=self.env, check=True)
        try:
            self._wait_idle()
        except Exception:
            self.__exit__()
            raise
        return self

    def _wait_idle(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-o", "%t", check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"SLURM node not idle after {timeout} s: {state!r}\n{self.logs()}")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)

    def queue(self) -> list[dict[str, str]]:
        """Jobs pending or running: id, name, state, cpus, memory (as squeue shows them)."""
        fields = ("id", "name", "state", "cpus", "memory")
        out = self.run("squeue", "-h", "-o", "%i|%j|%T|%C|%m", check=False).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]

    def logs(self) -> str:
        return "\n".join(
            path.read_text()[-3000:] for path in sorted(self.directory.glob("slurm*.log"))
        )

    def __exit__(self, *exc_info) -> None:
        self.run("scancel", "--full", "-u", "root", check=False)
        for name in ("slurmd", "slurmctld"):
            pid_file = self.directory / f"{name}.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text())
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)
