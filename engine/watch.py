"""Following a run live, from any machine: each record as it lands, until the run finishes (``breakglass watch``).

The store says when a record is durable (the file store by following the file, the PostgreSQL store by
LISTEN/NOTIFY); this module decides when watching ends.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.audit import AuditRecord
from engine.events import RecordType
from engine.store.base import RunStore


def watch(store: RunStore, run_id: str, poll: float = 1.0) -> Iterator[AuditRecord | None]:
    """The run's records in order, from its first, ending once the run has finished.

    A run has finished when its last record, notes aside, is ``run.finished``: a run finished, resumed and
    finished again is followed to its second end. ``None`` comes at least every ``poll`` seconds while nothing
    lands, so a caller can say the run is waiting (nobody drives it) or stop.
    """
    last = ""
    for batch in store.follow(run_id, 0, poll):
        if not batch:
            yield None
        for rec in batch:
            yield rec
            if rec.type != RecordType.NOTE:
                last = rec.type
        if batch and last == RecordType.RUN_FINISHED:
            return
