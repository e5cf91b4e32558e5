"""The one way a step runs concurrent work: many queries in flight, at most ``concurrency`` at once.

The engine calls actions from synchronous code. ``run`` starts an event loop for the step's coroutine, or a
private thread with its own loop when the caller already runs one (a test, an embedding application): a
second ``asyncio.run`` on a running loop's thread raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``factory`` makes to completion and return its result (or raise its exception).

    A factory, not a coroutine: the coroutine is created in the thread whose loop runs it.
    """
    import asyncio  # lazily: listing actions imports every action module, and this with them
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


async def gather_bounded(jobs: Iterable[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run every job, at most ``concurrency`` at once; results in the jobs' order."""
    import asyncio

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def call_all(calls: Sequence[Callable[[], T]], concurrency: int) -> list[T]:
    """Call every blocking function, at most ``concurrency`` at once, each in a worker thread; results in the
    calls' order. For work that blocks rather than awaits (a ``for_each`` step's items, each a whole action
    call): bounded by ``gather_bounded`` like every other fan-out, with a pool as large as that bound, since
    asyncio's default pool is sized by the CPU count, not by what the runbook asked for."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def main() -> list[T]:
        loop = asyncio.get_running_loop()
        # Leaving the pool waits for the calls already running (a Ctrl-C lets them record how they ended);
        # the semaphore in gather_bounded means no more than ``concurrency`` were handed to it.
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(calls))),
                                thread_name_prefix="item") as pool:
            return await gather_bounded([partial(loop.run_in_executor, pool, call) for call in calls],
                                        concurrency)

    return run(main)
