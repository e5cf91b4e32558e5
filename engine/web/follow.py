"""One run followed in its store while people watch it.

However many browsers watch a run, one ``Follower`` reads it: every ``interval`` it asks the store whether
the run changed (for the file store a ``stat``, so a quiet run costs next to nothing), and when it did, it
rebuilds the run's report once (``engine.report``: the same reading of the log the post-incident report
gives) and renders it once. Watchers then only copy strings, so 100 watchers cost the driving process nothing
and the server little more than one.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import BreakglassError
from engine.report import Report, checked, from_store
from engine.store import RunStore
from engine.web.pages import Pages

POLL_SECONDS = 0.1  # a record shows within this plus one render; the issue asks for 1 s at most
MAX_PAUSE_SECONDS = 0.6  # however busy the server is, a record shows within this plus one render
WHOLE_LOG_SECONDS = 5.0  # how often a growing log is read and verified whole, not only its new lines


@dataclass(frozen=True)
class Snapshot:
    """A run as rendered after one change: every record's row, and the panels of where it stands; each also as
    the server-sent event that carries it, encoded once for every watcher."""

    version: int
    seqs: tuple[int, ...]
    rows: tuple[str, ...]
    panels: str
    status: str
    row_events: tuple[str, ...] = ()
    state_event: str = ""

    def events_after(self, seq: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """The seqs and encoded events of the records after ``seq``."""
        start = bisect.bisect_right(self.seqs, seq)
        return self.seqs[start:], self.row_events[start:]


def record_event(seq: int, row: str) -> str:
    return f"id: {seq}\nevent: record\ndata: {json.dumps({'html': row})}\n\n"


def state_event(panels: str, status: str) -> str:
    state = {"html": panels, "status": status, "now": datetime.now(UTC).isoformat()}
    return f"event: state\ndata: {json.dumps(state)}\n\n"


class Follower:
    """Reads one run whenever it changes and hands every watcher the latest ``Snapshot``."""

    def __init__(self, store: RunStore, run_id: str, pages: Pages, interval: float = POLL_SECONDS) -> None:
        self.store, self.run_id, self.pages, self.interval = store, run_id, pages, interval
        self.snapshot: Snapshot | None = None
        self._changed = asyncio.Event()  # set when the next snapshot is out, then replaced
        self._rows: RowCache = {}
        self._tail: Any = None  # the file store's LogTail of the run, once a build made it
        self._whole_at = 0.0  # when the whole log is read and checked again
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll(), name=f"follow {self.run_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def next(self, version: int, timeout: float) -> Snapshot | None:
        """The first snapshot newer than ``version``, or None when nothing changed within ``timeout``."""
        try:
            # One event per snapshot, set once: a hundred watchers wake once each, with no lock to pass
            # along and no task per wait (asyncio.wait_for made one), which is most of a snapshot's cost.
            async with asyncio.timeout(timeout):
                while self.snapshot is None or self.snapshot.version == version:
                    await self._changed.wait()
        except TimeoutError:
            return None
        return self.snapshot

    async def _poll(self) -> None:
        seen: Any = None
        version = 0
        mark = time.process_time()
        while True:
            pause = self.interval
            try:
                stamp = await asyncio.to_thread(self._stamp)
                if stamp != seen:
                    version += 1
                    snapshot = await asyncio.to_thread(self._build, version)
                    # The server works at most a fifth of the time: on a busy machine (the operator's, during
                    # an outage) the run being watched must not slow down because it is watched. Counted in
                    # CPU since the last snapshot: this build, and handing the last one to every watcher,
                    # which with 100 watchers cost more than the build (bench/bench_web.py).
                    spent, mark = time.process_time() - mark, time.process_time()
                    pause = min(MAX_PAUSE_SECONDS, max(self.interval, 4 * spent))
                    seen = stamp
                    await self._publish(snapshot)
            except BreakglassError as exc:  # the run vanished or cannot be read: say so, keep watching
                version += 1
                seen = None
                panel = self.pages.problem_panel(str(exc))
                unreadable = state_event(panel, "unreadable")
                await self._publish(Snapshot(version, (), (), panel, "unreadable", (), unreadable))
            await asyncio.sleep(pause)

    async def _publish(self, snapshot: Snapshot) -> None:
        self.snapshot, changed, self._changed = snapshot, self._changed, asyncio.Event()
        changed.set()

    def _stamp(self) -> Any:
        """Something that changes whenever the run does: its file's size and time, or its records' count and
        last hash for a store without files; and whether a process drives it (a driver may die silently)."""
        driven = self.store.is_driven(self.run_id)
        log_path = getattr(self.store, "log_path", None)
        if callable(log_path):
            try:
                info = os.stat(log_path(self.run_id))
            except OSError:
                return (None, driven)
            return (info.st_size, info.st_mtime_ns, info.st_ino, driven)
        records = self.store.records(self.run_id)
        return (len(records), records[-1].get("hash") if records else None, driven)

    def _build(self, version: int) -> Snapshot:
        tail = getattr(self.store, "tail", None)
        if not callable(tail):
            return snapshot_of(from_store(self.store, self.run_id), version, self.pages, self._rows)
        # A log file is read from where the last build stopped: only new lines are parsed and their hashes
        # checked, so a long run's every record does not cost the server (and the run beside it) the whole log.
        if self._tail is None:
            self._tail = tail(self.run_id)
        # Lines already read are checked again now and then: a line edited while new ones were appended (an
        # edit alone makes the log not grow, and is read whole at once) turns the page's chain status red.
        whole = time.monotonic() >= self._whole_at
        if whole:
            self._whole_at = time.monotonic() + WHOLE_LOG_SECONDS
        self._tail.read(whole)
        report = checked(self.run_id, self._tail.records, self._tail.unreadable, self._tail.verdict(),
                         self.store.is_driven(self.run_id))
        return snapshot_of(report, version, self.pages, self._rows)


RowCache = dict[tuple[int, str, str], tuple[str, str]]  # (seq, ts, type) → the row and its encoded event


def snapshot_of(report: Report, version: int, pages: Pages, cache: RowCache) -> Snapshot:
    """Render what changed since the last snapshot (rows are cached by record) and encode it once."""
    rows, events = [], []
    for event in report.events:
        key = (event.seq, event.ts, event.type)
        if key not in cache:
            row = pages.row(event, report.first_ts)
            cache[key] = (row, record_event(event.seq, row))
        rows.append(cache[key][0])
        events.append(cache[key][1])
    panels = pages.panels(report)
    return Snapshot(version, tuple(e.seq for e in report.events), tuple(rows), panels, report.status,
                    tuple(events), state_event(panels, report.status))


class Followers:
    """The followers of the runs someone watches right now: started by the first watcher, stopped by the last."""

    def __init__(self, store: RunStore, pages: Pages, interval: float = POLL_SECONDS) -> None:
        self.store, self.pages, self.interval = store, pages, interval
        self._running: dict[str, tuple[Follower, int]] = {}

    @asynccontextmanager
    async def watch(self, run_id: str) -> AsyncIterator[Follower]:
        follower, watchers = self._running.get(run_id) or (self._new(run_id), 0)
        self._running[run_id] = (follower, watchers + 1)
        try:
            yield follower
        finally:
            follower, watchers = self._running[run_id]
            if watchers > 1:
                self._running[run_id] = (follower, watchers - 1)
            else:
                del self._running[run_id]
                await follower.stop()

    def _new(self, run_id: str) -> Follower:
        follower = Follower(self.store, run_id, self.pages, self.interval)
        follower.start()
        return follower

    @property
    def watched(self) -> dict[str, int]:
        return {run_id: n for run_id, (_, n) in self._running.items()}

