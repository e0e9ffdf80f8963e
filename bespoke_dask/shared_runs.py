"""One run of a piece of work at a time, shared by everyone who asks for it meanwhile."""

import asyncio
from collections.abc import Awaitable, Callable


class SharedRuns:
    """Concurrent callers asking for the same key share one run of its work.

    A caller that is cancelled leaves; the run is cancelled only when no other caller still
    waits for it. A caller that comes while a cancelled run is still stopping (releasing its
    Dask task, killing its process) waits for it to stop, then gets a run of its own: joining
    the stopping run would cancel the newcomer with it.
    """

    def __init__(self):
        self._runs: dict[str, asyncio.Future] = {}
        self._callers: dict[str, int] = {}
        self._stopping: dict[str, asyncio.Future] = {}

    async def run(self, key: str, start: Callable[[], Awaitable]):
        """The result of the run of `key`: the one under way, or `start()` run now."""
        while (stopping := self._stopping.get(key)) is not None:  # another may stop meanwhile
            await asyncio.wait([stopping])
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = asyncio.ensure_future(start())
            run.add_done_callback(lambda _: self._forget(self._runs, key, run))
        self._callers[key] = self._callers.get(key, 0) + 1
        try:
            return await asyncio.shield(run)
        except asyncio.CancelledError:
            if self._callers[key] == 1 and self._runs.get(key) is run:
                self._stop(key, run)
            raise
        finally:
            self._callers[key] -= 1
            if not self._callers[key]:
                del self._callers[key]

    def busy(self, key: str) -> bool:
        """Whether a run of `key` is under way, stopping, or still has a caller to answer."""
        return key in self._runs or key in self._stopping or key in self._callers

    def _stop(self, key: str, run: asyncio.Future) -> None:
        """Cancel a run nobody waits for; until it has stopped, newcomers wait instead of joining."""
        del self._runs[key]
        self._stopping[key] = run
        run.add_done_callback(lambda _: self._forget(self._stopping, key, run))
        run.cancel()

    @staticmethod
    def _forget(runs: dict[str, asyncio.Future], key: str, run: asyncio.Future) -> None:
        if runs.get(key) is run:
            del runs[key]
