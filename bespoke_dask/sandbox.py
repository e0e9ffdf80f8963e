"""Run one stage call in a child process of the worker, so that it can be stopped.

A Dask task runs in a worker thread, and a thread cannot be stopped; a process can. Each
stage call therefore runs in a child process, forked from a forkserver that has already
imported the stage modules (a child starts in milliseconds, not the seconds an import of the
chemistry takes). The child:

- leads a process group of its own, so the programs it starts (psi4, sqm) are killed with it;
- works in a scratch directory of its own (its TMPDIR and working directory, so geomeTRIC's
  `tmp*` folders and sqm's files land there), removed afterwards unless BEFLOW_KEEP_TMP_FILES;
- watches its worker: when the worker dies, however it died, the child kills its group.

`run` waits for the child up to a time limit and kills its group past it; `stop` kills the
child of a named call from another thread (a precise cancel: other calls on the worker go on).
"""

import multiprocessing
import os
import pickle
import select
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable

from bespoke_dask.errors import StageTimeout, one_line
from bespoke_dask.settings import Settings

# Imported once by the forkserver, so every child has them loaded.
PRELOAD = [
    "bespoke_dask.stages.fragment",
    "bespoke_dask.stages.smirks",
    "bespoke_dask.stages.qc",
    "bespoke_dask.stages.torsiondrive",
    "bespoke_dask.stages.optimize",
]


class StageStopped(RuntimeError):
    """A stage's process ended without an answer: killed by a cancel, or it crashed."""

    def __init__(self, message: str, cancelled: bool = False):
        super().__init__(message)
        self.cancelled = cancelled


_children: dict[str, multiprocessing.Process] = {}
_stopped: set[str] = set()
_lock = threading.Lock()
_context = None


def run(
    function: Callable,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    name: str,
    timeout: float | None = None,
    label: str | None = None,
    scratch_root: str | None = None,
):
    """`function(*args, **kwargs)` in a child process; its result, or its exception re-raised.

    `name` identifies the call for `stop` (a Dask task key); `label` names the stage in the
    timeout error; `timeout` is in seconds (None: no limit); scratch goes under `scratch_root`
    (default: the system's temporary directory).
    """
    scratch = tempfile.mkdtemp(prefix="bespoke-", dir=scratch_root)
    ours, theirs = _mp().Pipe(duplex=True)  # duplex: the child sees EOF when the worker dies
    child = _mp().Process(
        target=_child, args=(theirs, function, args, kwargs or {}, scratch), name=name, daemon=True
    )
    with _lock:
        _children[name] = child
        _stopped.discard(name)
    try:
        _start(child)
        theirs.close()
        if not ours.poll(timeout):
            _kill(child)
            raise StageTimeout(f"{label or name} stopped at its time limit of {timeout:g} s")
        try:
            status, value = ours.recv()
        except EOFError:
            child.join()
            cancelled = name in _stopped
            reason = "cancelled" if cancelled else f"its process died (exit code {child.exitcode})"
            raise StageStopped(f"{label or name}: {reason}", cancelled=cancelled) from None
    finally:
        _kill(child)
        ours.close()
        with _lock:
            _children.pop(name, None)
        if not Settings().keep_tmp_files:
            shutil.rmtree(scratch, ignore_errors=True)
    if status == "error":
        raise value
    return value


def stop(name: str) -> bool:
    """Kill the process (and its programs) of the call `name`, if it runs here."""
    with _lock:
        child = _children.get(name)
        if child is not None:
            _stopped.add(name)
    if child is None:
        return False
    _kill(child)
    return True


def running() -> dict[str, int]:
    """Name -> process id of every call running in a child of this process."""
    with _lock:
        return {name: child.pid for name, child in _children.items() if child.pid is not None}


def _mp():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _start(child: multiprocessing.Process) -> None:
    """Start `child` even from a daemonic Dask worker process.

    multiprocessing forbids children of daemonic processes so that none outlives its parent;
    ours cannot: each watches its worker and kills itself when the worker goes.
    """
    me = multiprocessing.current_process()
    daemonic = me._config.get("daemon")
    me._config["daemon"] = False
    try:
        child.start()
    finally:
        me._config["daemon"] = daemonic


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


def _child(connection, function: Callable, args: tuple, kwargs: dict, scratch: str) -> None:
    """The child's main: own group, own scratch, a watch on the worker, then the call."""
    os.setpgid(0, 0)
    os.environ["TMPDIR"] = tempfile.tempdir = scratch
    os.chdir(scratch)
    threading.Thread(target=_die_with_worker, args=(connection,), daemon=True).start()
    try:
        outcome = ("ok", function(*args, **kwargs))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the worker
        outcome = ("error", _sendable(error))
    try:
        connection.send(outcome)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the worker is gone; the watch ends this process group


def _die_with_worker(connection) -> None:
    """Block until the worker's end of the pipe closes, then kill this process group."""
    select.select([connection.fileno()], [], [])
    os.killpg(0, signal.SIGKILL)


def _sendable(error: BaseException) -> BaseException:
    """The error itself if it survives pickling, else a RuntimeError with its one-line description."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any unpicklable error
        return RuntimeError(one_line(error))
