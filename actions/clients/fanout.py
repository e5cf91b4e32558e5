"""The one way a step runs concurrent work: many queries in flight, at most ``concurrency`` at once.

The engine calls actions from synchronous code. ``run`` starts an event loop for the step's coroutine, or a
private thread with its own loop when the caller already runs one (a test, an embedding application): a
second ``asyncio.run`` on a running loop's thread raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
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
    call): the pool's size is the bound. No event loop in between: handing each call from a loop to the pool
    and back cost more CPU under the GIL than a probe's own Python.

    An exception (Ctrl-C in this thread, or one a call raised) starts no further call, waits for those
    already running (so they record how they ended), then propagates."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(calls))), thread_name_prefix="item")
    try:
        futures = [pool.submit(call) for call in calls]
        results = [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results
