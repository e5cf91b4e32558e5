"""Every record is on disk before the next action is called, with one fsync per call, not one per record.

The file store's log is watched through ``os.fsync``: each fsync of the log marks how many bytes are durable,
and a world wrapped around the live one checks, at every call of an action (plan, run, apply), that nothing
written to the log is still waiting for its fsync.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.console import NullReporter
from engine.loader import load_text
from engine.session import RunOptions, start
from engine.store import FileStore
from engine.world import LiveWorld

BOOK = """\
id: rb
title: durability
steps:
  - {id: look, title: Look, action: shell.run, with: {argv: [/bin/true], read_only: true}}
  - {id: note, title: Note, action: log.note, with: {text: noted}}
  - {id: change, title: Change, action: shell.run, with: {argv: [/bin/true]}, confirm: false}
  - id: flaky
    title: Works the second time
    action: shell.run
    with: {argv: [sh, -c, 'test -e MARKER || { touch MARKER; exit 1; }']}
    confirm: false
    retries: {attempts: 2, delay: 0}
  - {id: gated, title: Gated, action: shell.run, with: {argv: [/bin/true]}}
  - {id: last, title: Last look, action: shell.run, with: {argv: [/bin/true], read_only: true}}
"""


class Disk:
    """What of the log is durable: its size at the last fsync of it."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.durable = 0
        self.fsyncs = 0

    def pending(self) -> int:
        assert self.path is not None
        return self.path.stat().st_size - self.durable


class CheckedWorld(LiveWorld):
    """The live world, checking at each call that every record written so far is durable."""

    def __init__(self, disk: Disk) -> None:
        self.disk, self.calls = disk, 0

    def _check(self, step_id: str, call: str) -> None:
        self.calls += 1
        assert self.disk.pending() == 0, f"{call} of step {step_id} began with {self.disk.pending()} bytes " \
                                         "of the log not yet fsync'd"

    def run(self, step_id: str, *args: Any, **kwargs: Any) -> Any:
        self._check(step_id, "run")
        return super().run(step_id, *args, **kwargs)

    def plan(self, step_id: str, *args: Any, **kwargs: Any) -> Any:
        self._check(step_id, "plan")
        return super().plan(step_id, *args, **kwargs)

    def apply(self, step_id: str, *args: Any, **kwargs: Any) -> Any:
        self._check(step_id, "apply")
        return super().apply(step_id, *args, **kwargs)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
def test_every_record_is_durable_before_the_next_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk()
    store = FileStore(tmp_path / "home")
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path.name == "audit.jsonl":
            disk.path, disk.durable, disk.fsyncs = path, os.fstat(fd).st_size, disk.fsyncs + 1

    monkeypatch.setattr(audit.os, "fsync", fsync)
    world = CheckedWorld(disk)
    loaded = load_text(BOOK.replace("MARKER", str(tmp_path / "flaked")), str(tmp_path / "rb.yaml"))
    outcome = start(loaded, {}, RunOptions(operator="tester", approvals=frozenset({"gated"}), world=world),
                    NullReporter(), store=store)
    assert outcome.status == "succeeded"
    assert disk.pending() == 0, "the run's last records were never fsync'd"
    records = [r.type for r in audit.read(store.log_path(outcome.run_id))[0]]
    assert records.count("step.retried") == 1 and records.count("gate.approved") == 1
    assert world.calls == 3 + 2 + 3 + 2  # 3 reads; plan and apply of each change, the flaky one applied twice
    # One fsync per call and per question, none for an outcome: run.started; the 3 reads' starts; the ungated
    # change's start and applying; the flaky one's start, applying and retried; the gated one's start, the
    # gate's question and answer, applying; run.finished. (23 records; 19 fsyncs before they were grouped.)
    assert len(records) == 23
    assert disk.fsyncs == 1 + 3 + 2 + 3 + 4 + 1
