"""Run stage calls in a child process of the worker, so that one can be stopped.

A Dask task runs in a worker thread, and a thread cannot be stopped; a process can. Each
worker thread that runs a stage keeps one child process and hands it its calls, one at a
time; the child is forked from a forkserver that has already imported the stage modules.
Past a call's time limit, or on `stop`, the child is killed (the thread's next call gets a
new one). The child:

- leads a process group of its own, so the programs it starts (psi4, sqm) are killed with it;
- may run nicer than its worker (`niceness`), it and its programs: where compute fills every
  core, the worker, scheduler and coordinator still get the CPU at once when they need it;
- runs each call in a scratch directory of its own (its TMPDIR and working directory, so
  geomeTRIC's `tmp*` folders and sqm's files land there), removed afterwards unless
  BEFLOW_KEEP_TMP_FILES is set;
- watches its worker: when the worker dies, however it died, the child kills its group.

`warm` starts the forkserver ahead of the first call (the executor has every stage worker do it
as it joins: `graph.WarmStages`).
"""

import contextlib
import multiprocessing
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
import threading
import types
from collections.abc import Callable

from bespoke_dask.errors import StageTimeout, one_line
from bespoke_dask.settings import Settings

# Imported once by the forkserver, so every child has the stage modules loaded and set up.
PRELOAD = ["bespoke_dask.stages.preload"]


class StageStopped(RuntimeError):
    """A stage's process ended without an answer: killed by a cancel, or it crashed."""

    def __init__(self, message: str, cancelled: bool = False):
        super().__init__(message)
        self.cancelled = cancelled


_children: dict[str, multiprocessing.Process] = {}  # call name -> the child running it
_stopped: set[str] = set()
_lock = threading.Lock()
_local = threading.local()  # this thread's child
_context = None


class _Child:
    """A child process serving one worker thread, and the pipes to it."""

    def __init__(self, niceness: int):
        self.calls, theirs = _mp().Pipe(duplex=True)
        watch, self._alive = _mp().Pipe(duplex=False)  # never written: EOF when the worker dies
        self.process = _mp().Process(
            target=_serve, args=(theirs, watch, niceness), name="bespoke-stage", daemon=True
        )
        with _as_parent():
            self.process.start()
        theirs.close()
        watch.close()

    def close(self) -> None:
        _kill(self.process)
        self.calls.close()
        self._alive.close()


def run(
    function: Callable,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    name: str,
    timeout: float | None = None,
    label: str | None = None,
    scratch_root: str | None = None,
    niceness: int = 0,
):
    """`function(*args, **kwargs)` in this thread's child process; its result, or its exception.

    `name` identifies the call for `stop` (a Dask task key); `label` names the stage in the
    timeout error; `timeout` is in seconds (None: no limit); scratch goes under `scratch_root`
    (default: the system's temporary directory); a new child runs `niceness` nicer than this process.
    """
    child = getattr(_local, "child", None)
    if child is None or not child.process.is_alive():
        child = _local.child = _Child(niceness)
    scratch = tempfile.mkdtemp(prefix="bespoke-", dir=scratch_root)
    with _lock:
        _children[name] = child.process
        _stopped.discard(name)
    try:
        child.calls.send((function, args, kwargs or {}, scratch))
        if not child.calls.poll(timeout):
            _forget(child)
            raise StageTimeout(f"{label or name} stopped at its time limit of {timeout:g} s")
        try:
            status, value = child.calls.recv()
        except (EOFError, OSError):  # the child was killed: end of file, or a reset connection
            _forget(child)
            cancelled = name in _stopped
            reason = "cancelled" if cancelled else f"its process died (exit code {child.process.exitcode})"
            raise StageStopped(f"{label or name}: {reason}", cancelled=cancelled) from None
    finally:
        with _lock:
            _children.pop(name, None)
        if not Settings().keep_tmp_files:
            shutil.rmtree(scratch, ignore_errors=True)
    if status == "error":
        raise value
    return value


def stop(name: str) -> bool:
    """Kill the process (and its programs) running the call `name`, if it runs here."""
    with _lock:
        process = _children.get(name)
        if process is not None:
            _stopped.add(name)
    if process is None:
        return False
    _kill(process)
    return True


def running() -> dict[str, int]:
    """Name -> process id of every call running in a child of this process."""
    with _lock:
        return {name: process.pid for name, process in _children.items() if process.pid is not None}


def _forget(child: _Child) -> None:
    """Kill this thread's child; its next call starts another."""
    child.close()
    _local.child = None


def _mp():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def warm() -> None:
    """Start the forkserver now, so that it has imported the stage modules before the first call."""
    from multiprocessing import forkserver

    _mp()
    with _as_parent():
        forkserver.ensure_running()


@contextlib.contextmanager
def _as_parent():
    """Let this process start children, even a daemonic Dask worker, without re-running `__main__`.

    multiprocessing forbids children of daemonic processes so that none outlives its parent;
    ours cannot: each watches its worker and kills itself when the worker goes. And it runs
    the parent's main script again in the forkserver (as spawn does); a stage needs nothing from
    it, so the forkserver is shown an empty `__main__`.
    """
    me = multiprocessing.current_process()
    daemonic, main = me._config.get("daemon"), sys.modules["__main__"]
    with _lock:
        me._config["daemon"] = False
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            me._config["daemon"] = daemonic
            sys.modules["__main__"] = main


def _kill(child: multiprocessing.Process) -> None:
    """SIGKILL the child's process group (the child and whatever it started), then reap it."""
    if child.pid is None:
        return
    for kill in (lambda: os.killpg(child.pid, signal.SIGKILL), child.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
    child.join()


def _serve(calls, watch, niceness: int) -> None:
    """The child's main: own group, a watch on the worker, then calls until the worker hangs up."""
    os.setpgid(0, 0)
    os.nice(niceness)
    threading.Thread(target=_die_with_worker, args=(watch,), daemon=True).start()
    home = os.getcwd()
    while True:
        try:
            function, args, kwargs, scratch = calls.recv()
        except (EOFError, OSError):
            return
        os.environ["TMPDIR"] = tempfile.tempdir = scratch
        os.chdir(scratch)
        try:
            outcome = ("ok", function(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the worker
            outcome = ("error", _sendable(error))
        finally:
            os.chdir(home)
        try:
            calls.send(outcome)
        except (BrokenPipeError, EOFError, OSError):
            return


def _die_with_worker(watch) -> None:
    """Block until the worker's end of `watch` closes (it never writes), then kill this group."""
    select.select([watch.fileno()], [], [])
    os.killpg(0, signal.SIGKILL)


def _sendable(error: BaseException) -> BaseException:
    """The error itself if it survives pickling, else a RuntimeError with its one-line description."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any unpicklable error
        return RuntimeError(one_line(error))
