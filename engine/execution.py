"""How one action call runs: in a worker thread when the step has a timeout, with termination signals turned
into the same clean stop as Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from actions.base import ActionContext, ActionResult
from engine.errors import ActionTimeout


def call_with_timeout(call: Callable[[], ActionResult], timeout: float, actx: ActionContext) -> ActionResult:
    """Run the action in a daemon thread; past the timeout, signal cancel and give up on it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name=f"step-{actx.step_id}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        actx.cancel.set()
        worker.join(0.5)  # a cooperative action stops promptly; an abandoned one dies with the process
        raise ActionTimeout(f"step timed out after {timeout:g}s")
    if "error" in box:
        raise box["error"]
    result: ActionResult = box["result"]
    return result


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A termination signal stops the run the way Ctrl-C does: recorded, not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
