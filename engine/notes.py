"""Operator notes appended to a run's log from any terminal, while the run goes on or after it ended."""

from __future__ import annotations

from typing import Any

from engine import audit
from engine.errors import InputError
from engine.events import RecordType
from engine.store import RunStore


def append_note(store: RunStore, run_id: str, text: str, operator: str) -> dict[str, Any]:
    """Append a ``note`` record; the driving process picks the chain up from there."""
    if not text.strip():
        raise InputError("a note needs some text")
    audit.require_utf8(text, "the note")
    audit.require_utf8(operator, "the operator name (--operator)")
    run_id = store.resolve(run_id)
    records = store.records(run_id)
    mode = records[0].get("mode", "live") if records else "live"
    writer = store.writer(run_id, {"run": run_id, "mode": mode})
    try:
        return writer.append(RecordType.NOTE, {"text": text, "by": operator})
    finally:
        writer.close()
