"""One run per key for all who ask meanwhile, and what cancelling a caller does to it."""

import asyncio

import pytest

from bespoke_dask.shared_runs import SharedRuns


class Work:
    """Work that counts its runs, finishes when `finish` is set and takes `stopping` to stop."""

    def __init__(self):
        self.started, self.stopped = [], []
        self.finish, self.stopping = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> int:
        number = len(self.started)
        self.started.append(number)
        try:
            await self.finish.wait()
            return number
        except asyncio.CancelledError:
            await self.stopping.wait()  # e.g. releasing its Dask task and killing its process
            self.stopped.append(number)
            raise


async def _settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_callers_at_the_same_time_share_one_run():
    async def main():
        runs, work = SharedRuns(), Work()
        callers = [asyncio.ensure_future(runs.run("key", work)) for _ in range(3)]
        await _settle()
        work.finish.set()
        assert await asyncio.gather(*callers) == [0, 0, 0]
        assert work.started == [0]

    asyncio.run(main())


def test_a_cancelled_caller_leaves_the_run_to_the_others():
    async def main():
        runs, work = SharedRuns(), Work()
        leaving, staying = (asyncio.ensure_future(runs.run("key", work)) for _ in range(2))
        await _settle()
        leaving.cancel()
        await _settle()
        work.finish.set()
        assert await staying == 0
        assert leaving.cancelled() and work.stopped == []

    asyncio.run(main())


def test_a_newcomer_waits_for_a_cancelled_run_to_stop_then_runs_its_own():
    """Joining the stopping run cancelled the newcomer with it."""

    async def main():
        runs, work = SharedRuns(), Work()
        first = asyncio.ensure_future(runs.run("key", work))
        await _settle()
        first.cancel()
        await _settle()
        newcomer = asyncio.ensure_future(runs.run("key", work))
        await _settle()
        assert work.started == [0] and not newcomer.done()  # the first run is still stopping
        work.stopping.set()
        await _settle()
        assert work.stopped == [0] and work.started == [0, 1]
        work.finish.set()
        assert await newcomer == 1
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())


def test_a_key_is_busy_until_its_last_caller_has_its_answer():
    """As the coordinator asks it: each caller, on its answer, whether the key is still busy (the
    run's re-run notes are kept until the last caller has read them)."""

    async def caller(runs, work):
        await runs.run("key", work)
        return runs.busy("key")

    async def main():
        runs, work = SharedRuns(), Work()
        callers = [asyncio.ensure_future(caller(runs, work)) for _ in range(2)]
        await _settle()
        assert runs.busy("key")
        work.finish.set()
        assert await asyncio.gather(*callers) == [True, False]

    asyncio.run(main())
