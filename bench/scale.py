"""`perf.py scale`: N cheap workflows on one executor launched as users launch it.

The executor runs as `bespoke-dask executor launch` in its own process, so the scheduler's
memory (the coordinator lives on the scheduler) is that process's RSS alone. While it works,
a thread samples every few seconds: `bespoke-dask executor list` (a new process, as a user
types it), the same call from this client, two dashboard URLs and the scheduler's RSS; the
longest event-loop tick the scheduler saw (a blocked loop shows here) is read after each request
and before each round, so that a long tick is pinned on a request or on the time between them.
"""

import collections
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from itertools import product
from pathlib import Path

import cloudpickle
import psutil
import taskstream
import workload

from bespoke_dask import connect
from bespoke_dask.schema import FINISHED
from bespoke_dask.service import SCHEDULER_FILE

# The functions this bench runs on the scheduler go by value: its process cannot import bench/.
cloudpickle.register_pickle_by_value(taskstream)
cloudpickle.register_pickle_by_value(workload)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# Small molecules MMFF94 covers, built as alkyl-linker-alkyl (the left alkyl a branch on the
# linker's first atom) and deduplicated by canonical SMILES.
ALKYLS = ["C", "CC", "CCC", "C(C)C", "CCCC", "CC(C)C", "C(C)(C)C", "C1CC1", "CC1CC1", "C=C", "CC=C",
          "CF", "C(F)(F)F", "CCl", "CCF", "C1CCC1", "CC#N", "CO"]
LINKERS = ["O", "S", "N", "N(C)", "NC(=O)", "C(=O)N", "OC(=O)", "C(=O)", "S(=O)(=O)", "C(=O)NC"]


def small_molecules(n: int) -> list[str]:
    """`n` distinct small molecules (canonical SMILES), always the same ones."""
    from rdkit import Chem

    made = (f"{link[0]}({a}){link[1:]}{b}" for a, link, b in product(ALKYLS, LINKERS, ALKYLS))
    unique = sorted({Chem.CanonSmiles(smiles) for smiles in made}, key=lambda s: (len(s), s))
    if n > len(unique):
        raise SystemExit(f"only {len(unique)} small molecules are generated; ask for fewer")
    return unique[:n]


def unchecked_workflows(smiles: list[str], qc_spec: list[str], grid_spacing: int):
    """Debug workflows (at `grid_spacing` degrees) without `check_workflow` (~1 s each: its
    force-field check), for molecules known to pass."""
    from openff.toolkit import Molecule

    from bespoke_dask import BespokeWorkflowFactory
    from bespoke_dask.schema import BespokeWorkflow, TorsionDriveSettings

    factory = BespokeWorkflowFactory.from_name("debug")
    scans = TorsionDriveSettings(**(factory.torsiondrive.model_dump() | {"grid_spacing": grid_spacing}))  # checked
    settings = dict(factory.model_copy(update={"qc_spec": workload.spec(qc_spec), "torsiondrive": scans}))
    return [BespokeWorkflow(smiles=Molecule.from_smiles(s).to_smiles(mapped=True), **settings) for s in smiles]


def measure(args) -> dict:
    from structure import cpu_bound, schedule

    made = time.perf_counter()
    batch = unchecked_workflows(small_molecules(args.n), args.qc_spec, args.grid_spacing)
    made = time.perf_counter() - made
    with tempfile.TemporaryDirectory() as directory, launched(directory) as executor_process:
        scheduler_pid, dashboard = executor_process.pid, executor_process.dashboard
        executor = connect(directory=directory)
        executor.client.wait_for_workers(4)  # 1 fragmenter, 2 QC, 1 optimizer
        pool_slots = taskstream.slots(executor.client)
        taskstream.record(executor.client)
        workers = workload.CPUSampler(workload.worker_pids(executor.client), interval=1.0)  # with their stages
        everything = workload.CPUSampler([scheduler_pid], interval=1.0)  # the launched process: workers and executor
        with Sampler(executor, directory, scheduler_pid, dashboard, args.sample_every) as sampler, workers, everything:
            start = time.time()
            ids = [executor.submit(workflow) for workflow in batch]
            accepted = time.time() - start
            outputs, stopped, cancelled_s = run_for(executor, ids, args.window)
        runs = taskstream.tasks(executor.client, start)
        done = [o for o in outputs if o.status == "success"]
        failed = [o for o in outputs if o.status == "errored"]
        workers_rate = workers.rate(start, stopped)
        figures = {
            "engine": " ".join(args.qc_spec)
            + f", debug workflow (Pfizer fragments, {args.grid_spacing} deg, 1 conformer): cheap, not QC",
            "workflows": args.n,
            "window_s": args.window,
            "succeeded": len(done),
            "failed": len(failed),
            "cancelled_at_window_end": len(outputs) - len(done) - len(failed),
            "cancel_the_rest_s": cancelled_s,
            "first_failures": sorted({o.error for o in failed})[:3],
            "workflows_made_s": made,
            "accept_all_s": accepted,
            "accept_per_workflow_ms": 1000 * accepted / args.n,
            **sampler.summary(),
            "cpu_per_wall_s_until_done_or_window_end": {  # every core busy: workers at `cores`
                "workers_and_their_stages": workers_rate,
                "executor_itself": everything.rate(start, stopped) - workers_rate,
                "cores": os.cpu_count(),
            },
            "median_gap_between_tasks_ms": {
                pool: 1000 * gap for pool in pool_slots if (gap := taskstream.median_worker_gap(runs, pool)) is not None
            },
        }
        if len(done) == args.n:  # the bound needs every workflow's tasks
            end = max(map(workload.finished_at, done))
            try:
                figures["schedule"] = schedule(directory, batch, runs, start, end, pool_slots, os.cpu_count() or 1)
            except LookupError as error:  # a chain not replayed: the CPU bound still holds, without it
                figures["schedule"] = {"makespan_s": end - start, "longest_chain_s": 0.0, "chain_not_replayed": str(error)}
            figures["schedule"] |= cpu_bound(figures["schedule"], workers.used(start, end), os.cpu_count() or 1)
        executor.stop()
    figures["executor_log_warnings"] = warnings_in(executor_process.log)
    return figures


def warnings_in(log: Path) -> dict[str, int]:
    """The executor's distinct WARNING lines (numbers masked: "Event loop was unresponsive for N s"), counted."""
    lines = [line for line in log.read_text().splitlines() if "WARNING" in line]
    masked = [re.sub(r"\d+(\.\d+)?", "N", line.split("WARNING", 1)[1]).strip(" -") for line in lines]
    return dict(collections.Counter(masked).most_common(8))


def run_for(executor, ids: list[str], window: float | None) -> tuple[list, float, float | None]:
    """Every workflow's final output, cancelling those unfinished after `window` s; when the work
    stopped (all finished or the window ended) and how long cancelling took."""
    deadline = None if window is None else time.time() + window
    while deadline is None or time.time() < deadline:
        if all(o.status in FINISHED for o in executor.list()):
            break
        time.sleep(5)
    stopped = time.time()
    unfinished = [o.id for o in executor.list() if o.status not in FINISHED]
    start = time.perf_counter()
    for workflow_id in unfinished:
        executor.cancel(workflow_id)
    cancelled_s = time.perf_counter() - start if unfinished else None
    return [executor.retrieve(i) for i in ids], stopped, cancelled_s


class launched:
    """`bespoke-dask executor launch` on `directory` (1 fragmenter, 2 QC x 1 core, 1 optimizer); its
    log is kept beside the directory (`log`)."""

    def __init__(self, directory: str):
        self.directory = directory

    def __enter__(self) -> "launched":
        command = [sys.executable, "-m", "bespoke_dask.cli", "executor", "launch", "--directory", self.directory,
                   "--n-fragmenter-workers", "1", "--n-qc-compute-workers", "2", "--qc-compute-n-cores", "1",
                   "--n-optimizer-workers", "1"]
        # its log to a file: a pipe nobody reads would block the scheduler once full
        self.log = Path(self.directory).parent / f"{Path(self.directory).name}-launch.log"
        with self.log.open("w") as log:
            # every task of 1,000 workflows in the task stream (Dask keeps the last 100,000)
            length = {"DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__TASKS__TASK_STREAM_LENGTH": "1000000"}
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=os.environ | length)
        info = Path(self.directory) / SCHEDULER_FILE
        deadline = time.time() + 120
        while not info.exists():
            if self.process.poll() is not None or time.time() > deadline:
                self.process.kill()
                raise SystemExit(f"executor launch failed: {self.log.read_text()[-500:]}")
            time.sleep(0.2)
        scheduler = json.loads(info.read_text())
        self.pid, self.dashboard = scheduler["pid"], scheduler["dashboard"]
        return self

    def __exit__(self, *exc_info) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Sampler:
    """Latencies (s) of `list` and the dashboard, scheduler RSS (bytes) and event-loop ticks, sampled."""

    def __init__(self, executor, directory: str, scheduler_pid: int, dashboard: str, every: float):
        self.executor, self.directory, self.every = executor, directory, every
        self.scheduler = psutil.Process(scheduler_pid)
        base = dashboard.rsplit("/", 1)[0]  # ".../status" -> the server
        self.urls = {"dashboard /bespoke/api/workflows": f"{base}/bespoke/api/workflows", "dashboard /status": f"{base}/status"}
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self.executor.client.run_on_scheduler(_watch_full_collections)
        self.started = time.time()
        self.ticks: dict[str, list[float]] = {}  # the longest tick during each request, and between samples
        self.long_ticks: list[tuple[float, str, float]] = []  # (s since the start, during what, tick s) over 1 s
        self.rss_before = self.scheduler.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        latencies = {
            name: {"median_s": statistics.median(values), "max_s": max(values), "samples": len(values)}
            for name, values in self.samples.items() if name != "rss" and values
        }
        return {
            "scheduler_rss_before_MiB": self.rss_before / 2**20,
            "scheduler_rss_peak_MiB": max(self.samples.get("rss", [self.rss_before])) / 2**20,
            "scheduler_longest_tick_s": max((t for ticks in self.ticks.values() for t in ticks), default=0.0),
            "longest_tick_s_during": {during: max(ticks) for during, ticks in self.ticks.items()},
            "ticks_over_1s": self.long_ticks,
            "full_garbage_collections": self.executor.client.run_on_scheduler(_full_collections),
            "latency": latencies,
        }

    def _run(self) -> None:
        command = [sys.executable, "-m", "bespoke_dask.cli", "executor", "list", "--directory", self.directory]
        requests = {
            "bespoke-dask executor list (new process)": lambda: subprocess.run(command, capture_output=True, env=os.environ),
            "executor.list() from this client": self.executor.list,
            **{name: lambda u=url: urllib.request.urlopen(u, timeout=60).read() for name, url in self.urls.items()},
        }
        self._tick()  # start the window
        while not self._stop.wait(self.every):
            self._tick("between samples")  # submission, the work itself, cancelling
            for name, request in requests.items():
                self._add(name, _timed(request))
                self._tick(name)
            self._add("rss", self.scheduler.memory_info().rss)

    def _tick(self, during: str | None = None) -> None:
        """File the scheduler's longest event-loop tick since the last call under `during`."""
        tick = self.executor.client.run_on_scheduler(_longest_tick)
        if during is not None:
            self.ticks.setdefault(during, []).append(tick)
            if tick > 1.0:
                self.long_ticks.append((time.time() - self.started, during, tick))

    def _add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)


def _timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def _watch_full_collections(dask_scheduler=None) -> None:
    """Time every full garbage collection of the scheduler's process, by what started it: an
    explicit `gc.collect()` (the caller's file and function) or the collector's own thresholds."""
    import gc
    import os
    import time
    import traceback

    started = {}

    def callback(phase, info):
        if info["generation"] != 2:
            return
        if phase == "start":
            caller = traceback.extract_stack(limit=2)[0]  # the frame that called gc.collect, or allocated
            explicit = caller.line.strip().startswith("gc.collect") if caller.line else False
            started["by"] = f"{os.path.basename(caller.filename)}:{caller.name}" if explicit else "automatic"
            started["at"] = time.perf_counter()
        else:
            dask_scheduler.bench_full_collections.append((started["by"], time.perf_counter() - started["at"]))

    dask_scheduler.bench_full_collections = []
    gc.callbacks.append(callback)


def _full_collections(dask_scheduler=None) -> dict:
    """Count and longest duration (s) of the full collections seen, per what started them."""
    seen = {}
    for by, duration in dask_scheduler.bench_full_collections:
        count, longest = seen.get(by, (0, 0.0))
        seen[by] = (count + 1, max(longest, duration))
    return {by: {"count": count, "longest_s": longest} for by, (count, longest) in seen.items()}


def _longest_tick(dask_scheduler=None) -> float:
    """The longest event-loop tick (s) since the last call (distributed's own tick digest)."""
    longest = dask_scheduler.digests_max.get("tick-duration", 0.0)
    dask_scheduler.digests_max["tick-duration"] = 0.0
    return longest
