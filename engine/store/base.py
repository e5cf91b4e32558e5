"""What the engine needs from storage, whatever holds the runs.

A run is an append-only, hash-chained sequence of audit records (``engine.audit``). Session, notes, the CLI,
drills and reports reach storage only through ``RunStore``; none of them knows whether a run is a file or a
row. ``FileStore`` (``store.file``) is the embedded default; a shared database store implements the same
protocol and passes the same conformance suite (tests/engine/test_store_conformance.py).

The guarantees every store keeps:

- ``RunLog.append`` chains a record after the current head, whoever wrote it (the driving process, or
  ``breakglass note`` from another terminal), and with ``sync`` it is durable before ``append`` returns:
  nothing acts on the world before its record is. A record that cannot be written is an ``AuditError``.
  With ``hold`` (an outcome, written by the one thread driving the run) a store may keep the record back and
  write it with the next append, which the engine makes before anything waits on the world or a person:
  one commit then makes both durable. Held, a record is not yet visible to others, and a driver killed
  before the next append loses it (resume then asks about that step, as after a power cut).
- ``lock`` is held by the one process driving a run; a second driver gets ``RunLocked``, never a wait.
- Reading never repairs: a torn last record (a crash while writing) is reported and left out, and only
  ``set_aside_torn_tail``, called by resume under the lock, moves it aside, as evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from engine.audit import AuditRecord, Verdict
from engine.errors import AuditError, RunNotFound
from engine.events import outcome


@dataclass(frozen=True)
class RunSummary:
    id: str
    runbook: str
    mode: str
    status: str
    started: str
    operator: str
    driver: str = ""  # who drives it right now, where the store knows (a shared store does)

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


class RunLog(Protocol):
    """One run's log, opened for appending by this process."""

    def append(self, type_: str, data: Mapping[str, Any], sync: bool = True, hold: bool = False) -> dict[str, Any]:
        """Chain one record after the head; with ``sync`` it is durable before this returns; with ``hold`` it
        may be written with the next append instead (its number then changes if another writer's record
        comes first)."""
        ...

    def records(self) -> list[AuditRecord]:
        """Every complete record of the run, including those other processes appended."""
        ...

    def close(self) -> None: ...


class RunStore(Protocol):
    """Where runs live. Run ids are the store's: callers pass them back, never build locations from them."""

    def create(self, runbook_id: str) -> str:
        """Reserve a new run of ``runbook_id`` and return its id; a run with no records yet is listed nowhere."""
        ...

    def resolve(self, ref: str) -> str:
        """A full run id from an id, a unique prefix, or ``last`` (the run whose run.started is latest)."""
        ...

    def lock(self, run_id: str, holder: str = "") -> AbstractContextManager[None]:
        """Held while a process drives the run; ``RunLocked`` at once when another process holds it. ``holder``
        (the operator driving; default: this user@host) is who a refused driver or a take-over is told of."""
        ...

    def is_driven(self, run_id: str) -> bool:
        """Whether some process holds the run's lock right now."""
        ...

    def writer(self, run_id: str, stamp: Mapping[str, Any]) -> RunLog:
        """Open the run's log for appending; ``stamp`` holds fields put on every record (run id, mode)."""
        ...

    def records(self, run_id: str) -> list[AuditRecord]:
        """Every complete record; ``AuditError`` when one in the middle is not a record at all."""
        ...

    def read_lenient(self, run_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Every record that can be read, and a problem naming each one that cannot (for reports)."""
        ...

    def verify(self, run_id: str, head: str | None = None) -> Verdict:
        """Check the hash chain, naming each record that breaks it; with ``head``, that the chain passes it."""
        ...

    def set_aside_torn_tail(self, run_id: str) -> dict[str, Any] | None:
        """Move a torn last record out of the chain, kept as evidence; say what was moved (None: nothing)."""
        ...

    def list_runs(self) -> list[RunSummary]:
        """Every run that began, in the order they started, the most recent last."""
        ...

    def where(self, run_id: str) -> str:
        """Where the run is kept, for messages (a path, a database table)."""
        ...

    def take_over(self, run_id: str, confirm: Callable[[str], bool]) -> str | None:
        """Break the lease of a driver that is gone for good, once ``confirm(holder)`` agrees; who held it (None:
        nobody did). ``RunLocked`` when the store cannot break it, with what to do instead."""
        ...

    def follow(self, run_id: str, after: int = 0, poll: float = 1.0) -> Iterator[list[AuditRecord]]:
        """Batches of the run's records with seq > ``after``, each as soon as it is durable; an empty batch at
        least every ``poll`` seconds so the caller can decide to stop. Never ends by itself."""
        ...


def summarise(run_id: str, records: Sequence[AuditRecord], driven: bool) -> RunSummary | None:
    """A run's line in ``breakglass runs``, from its records alone (None for a run with none yet)."""
    if not records:
        return None
    first = records[0]
    try:
        status = str(outcome([r.to_dict() for r in records], alive=driven))
    except AuditError:
        status = "unreadable"  # a run.finished no engine wrote; `audit verify` tells more
    runbook = first.get("runbook")
    return RunSummary(
        id=run_id,
        runbook=str(runbook.get("id", "?")) if isinstance(runbook, dict) else "?",
        mode=str(first.get("mode", "?")),
        status=status,
        started=first.ts,
        operator=str(first.get("operator", "?")),
    )


def choose(ref: str, matches: Sequence[str], where: str) -> str:
    """The one run ``ref`` names among the ids it is a prefix of; advice when none or several match."""
    if ref in matches:
        return ref
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RunNotFound(f"'{ref}' matches {len(matches)} runs; give more of the id")
    raise RunNotFound(f"no run '{ref}' in {where}; `breakglass runs` lists them")


def latest(started: Sequence[tuple[str, str]]) -> str:
    """The id of the run that started last, from (run.started ts, run id) pairs.

    By the start the records hold, not by id: an id made to look like a future date would otherwise take
    ``last`` over, and a run with no run.started (one that never began) is no run.
    """
    if not started:
        raise RunNotFound("there are no runs yet")
    return max(started)[1]
