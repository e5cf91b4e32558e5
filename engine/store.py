"""Where runs live, behind one small interface.

``RunStore`` is what the engine needs: create a run, open its audit log for writing, read it back, lock it,
list runs. ``FileStore`` keeps each run in ``$BREAKGLASS_HOME/runs/<run id>/audit.jsonl`` (default: the XDG
state directory); a shared database store for teams (hand-over between machines, remote approvals) can
implement the same protocol later.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from breakglass.engine import audit
from breakglass.engine.errors import AuditError, RunLocked, RunNotFound
from breakglass.engine.events import RecordType, outcome


def home() -> Path:
    explicit = os.environ.get("BREAKGLASS_HOME")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "breakglass"


@dataclass(frozen=True)
class RunSummary:
    id: str
    runbook: str
    mode: str
    status: str
    started: str
    operator: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


class RunStore(Protocol):
    def new_run_id(self, runbook_id: str) -> str: ...
    def writer(self, run_id: str, stamp: Mapping[str, Any]) -> audit.AuditWriter: ...
    def records(self, run_id: str) -> list[audit.AuditRecord]: ...
    def log_path(self, run_id: str) -> Path: ...
    def lock(self, run_id: str) -> Any: ...
    def list_runs(self) -> list[RunSummary]: ...


class FileStore:
    """Runs as files under one directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or home()) / "runs"

    def new_run_id(self, runbook_id: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{runbook_id[:40]}-{secrets.token_hex(3)}"

    def log_path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise RunNotFound(f"'{run_id}' is not a run id")
        return self.root / run_id / "audit.jsonl"

    def resolve(self, run_id: str) -> str:
        """A full run id from a unique prefix, or 'last' for the most recently started run."""
        if run_id == "last":
            # By the start its log records, not by directory name: a directory named for a future date would
            # otherwise take 'last' over, and a log with no run.started (a run that never began) is no run.
            started = [(ts, p.parent.name) for p in self.root.glob("*/audit.jsonl") if (ts := _started_at(p))]
            if not started:
                raise RunNotFound("there are no runs yet")
            return max(started)[1]
        if (self.root / run_id / "audit.jsonl").exists():
            return run_id
        matches = [p.parent.name for p in self.root.glob(f"{run_id}*/audit.jsonl")] if "/" not in run_id else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RunNotFound(f"'{run_id}' matches {len(matches)} runs; give more of the id")
        raise RunNotFound(f"no run '{run_id}' in {self.root}; `breakglass runs` lists them")

    def writer(self, run_id: str, stamp: Mapping[str, Any]) -> audit.AuditWriter:
        return audit.AuditWriter(self.log_path(run_id), stamp)

    def records(self, run_id: str) -> list[audit.AuditRecord]:
        path = self.log_path(run_id)
        if not path.exists():
            raise RunNotFound(f"no run '{run_id}' in {self.root}")
        return audit.read(path)[0]

    @contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Exclusive lock: two processes may not drive the same run."""
        path = self.log_path(run_id).parent / "lock"
        private_dir(path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise RunLocked(f"run {run_id}: cannot open its lock {path} ({exc.strerror}); a symlink there is "
                            "refused") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(f"run {run_id} is being driven by another process (lock {path})") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)

    def list_runs(self) -> list[RunSummary]:
        """Runs in the order they started (as their logs record it), the most recent last."""
        out = []
        for path in self.root.glob("*/audit.jsonl"):
            summary = _summarise(path)
            if summary:
                out.append(summary)
        return sorted(out, key=lambda r: (r.started, r.id))


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as owner-only (0700): runs and crash reports tell what was
    done to production, by whom, and with which arguments. Directories that exist are left as they are."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass  # another process made it first
    return path


def _started_at(log: Path) -> str | None:
    """The ``ts`` of the run.started record that begins ``log``, or None when it does not begin with one."""
    try:
        with open(log, "rb") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    if not isinstance(first, dict) or first.get("type") != RecordType.RUN_STARTED:
        return None
    if not isinstance(first.get("ts"), str):
        return None
    return str(first["ts"])


def driver_alive(log_path: Path) -> bool:
    """Whether a process holds the run's lock, i.e. is driving it right now."""
    lock = log_path.parent / "lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _summarise(path: Path) -> RunSummary | None:
    records, _ = audit.read(path)
    if not records:
        return None
    first = records[0]
    try:
        status = str(outcome([r.to_dict() for r in records], alive=driver_alive(path)))
    except AuditError:
        status = "unreadable"  # a run.finished no engine wrote; `audit verify` tells more
    return RunSummary(
        id=path.parent.name,
        runbook=str(first.get("runbook", {}).get("id", "?")),
        mode=str(first.get("mode", "?")),
        status=status,
        started=first.ts,
        operator=str(first.get("operator", "?")),
    )
