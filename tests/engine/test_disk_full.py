"""A log that cannot be written stops the run before anything acts: real ENOSPC from /dev/full."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.audit import AuditWriter
from engine.console import NullReporter
from engine.errors import AuditError
from engine.loader import load_file
from engine.session import RunOptions, start
from engine.store import FileStore

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def test_append_to_a_full_disk_is_an_audit_error(tmp_path: Path) -> None:
    writer = AuditWriter(tmp_path / "audit.jsonl")
    full = os.open("/dev/full", os.O_WRONLY)  # not a symlink to it: a log is never written through one
    os.dup2(full, writer._fd)
    os.close(full)
    with pytest.raises(AuditError, match="cannot write the audit log .*No space left on device"):
        writer.append("note", {"text": "x"})


class _DiskFillsAfterStart(FileStore):
    """The disk fills up right after the run's first record: every later write gets ENOSPC."""

    def writer(self, run_id: str, stamp: Any) -> AuditWriter:
        real = super().writer(run_id, stamp)
        original = real.append

        def append(type_: str, data: Any, sync: bool = True, hold: bool = False) -> dict[str, Any]:
            rec = original(type_, data, sync, hold)
            if type_ == "run.started":
                full = os.open("/dev/full", os.O_WRONLY)
                os.dup2(full, real._fd)
                os.close(full)
                real.size = 0  # /dev/full reports no size; the writer must not mistake it for another writer
            return rec

        real.append = append  # type: ignore[method-assign]
        return real


def test_run_stops_before_acting_when_the_log_cannot_be_written(tmp_path: Path, bg_home: Path) -> None:
    marker = tmp_path / "changed"
    rb = tmp_path / "acts.yaml"
    rb.write_text(f"""\
id: acts
title: Changes the world
steps:
  - id: change
    title: Change
    action: shell.run
    confirm: false
    with: {{argv: [touch, "{marker}"]}}
""")
    store = _DiskFillsAfterStart(bg_home)
    with pytest.raises(AuditError, match="No space left on device"):
        start(load_file(rb), {}, RunOptions(operator="tester"), NullReporter(), store=store)
    assert not marker.exists()
    logs = list((bg_home / "runs").glob("*/audit.jsonl"))
    assert len(logs) == 1 and audit.verify(logs[0]).ok
