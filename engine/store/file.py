"""The embedded run store: each run is a directory ``$BREAKGLASS_HOME/runs/<run id>/`` holding its audit log
(``audit.jsonl``, see ``engine.audit``) and the lock of the process driving it.

``BREAKGLASS_HOME`` defaults to the XDG state directory. Everything is owner-only: a run tells what was done
to production, by whom, and with which arguments.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import audit
from engine.errors import AuditError, RunLocked, RunNotFound
from engine.events import RecordType
from engine.store.base import RunSummary, choose, latest, summarise
from engine.text import visible_line

LOG = "audit.jsonl"


def home() -> Path:
    explicit = os.environ.get("BREAKGLASS_HOME")
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "breakglass"


class FileLog(audit.AuditWriter):
    """A run's audit log file, open for appending (``RunLog``)."""

    def records(self) -> list[audit.AuditRecord]:
        return audit.read(self.path)[0]


class FileStore:
    """Runs as files under one directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or home()) / "runs"

    def log_path(self, run_id: str) -> Path:
        """The file behind a run's log: for tests and tools that inspect the file itself, never for the engine."""
        if not run_id or "/" in run_id or run_id.startswith(".") or "\0" in run_id:
            raise RunNotFound(f"'{run_id}' is not a run id")
        return self.root / run_id / LOG

    def where(self, run_id: str) -> str:
        return str(self.log_path(run_id))

    def create(self, runbook_id: str) -> str:
        private_dir(self.root)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for _ in range(8):
            run_id = f"{stamp}-{runbook_id[:40]}-{secrets.token_hex(3)}"
            try:
                self.log_path(run_id).parent.mkdir(mode=0o700)
            except FileExistsError:
                continue  # another run took this id in the same second: draw again
            except OSError as exc:
                raise AuditError(f"{self.root}: cannot create a run there ({exc.strerror}); fix the directory "
                                 "or point BREAKGLASS_HOME elsewhere") from None
            return run_id
        raise AuditError(f"{self.root}: could not find a free run id; is something creating runs in a loop?")

    def resolve(self, ref: str) -> str:
        if ref == "last":
            return latest([(ts, p.parent.name) for p in self.root.glob(f"*/{LOG}") if (ts := _started_at(p))])
        if not ref or "/" in ref or "\0" in ref or ref.startswith("."):
            raise RunNotFound(f"'{ref}' is not a run id")
        if (self.root / ref / LOG).exists():
            return ref
        return choose(ref, [p.parent.name for p in self.root.glob(f"{_glob_escape(ref)}*/{LOG}")], str(self.root))

    def writer(self, run_id: str, stamp: Mapping[str, Any]) -> FileLog:
        self._existing(run_id)
        return FileLog(self.log_path(run_id), stamp)

    def records(self, run_id: str) -> list[audit.AuditRecord]:
        path = self.log_path(run_id)
        if not path.exists():
            raise RunNotFound(f"no run '{run_id}' in {self.root}")
        return audit.read(path)[0]

    def read_lenient(self, run_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        return _read_lenient(self.log_path(run_id))

    def verify(self, run_id: str, head: str | None = None) -> audit.Verdict:
        return audit.verify(self.log_path(run_id), head)

    def tail(self, run_id: str) -> LogTail:
        """The run's log, to be read again and again as it grows (the live page)."""
        return LogTail(self._existing(run_id) / LOG)

    def set_aside_torn_tail(self, run_id: str) -> dict[str, Any] | None:
        return audit.set_aside_torn_tail(self.log_path(run_id))

    @contextmanager
    def lock(self, run_id: str, holder: str = "") -> Iterator[None]:
        """Exclusive lock: two processes may not drive the same run."""
        path = self._existing(run_id) / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise RunLocked(f"run {run_id}: cannot open its lock {path} ({exc.strerror}); a symlink there is "
                            "refused") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, who = self._holder(run_id)
                raise RunLocked(f"run {run_id} is being driven by another process (pid {pid}{who}; lock {path})"
                                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n{holder}\n".encode())
            yield
        finally:
            os.close(fd)

    def is_driven(self, run_id: str) -> bool:
        lock = self.log_path(run_id).parent / "lock"
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # a lock that cannot be opened (planted symlink): assume a driver, resume refuses anyway
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def take_over(self, run_id: str, confirm: Callable[[str], bool]) -> str | None:
        """A file lock lives exactly as long as its process, on this machine: there is no lease to break."""
        if not self.is_driven(run_id):
            return None
        pid, who = self._holder(run_id)
        raise RunLocked(f"run {run_id} is driven by process {pid}{who} on this machine; its lock ends with it: "
                        f"stop that process (kill {pid}) and resume")

    def _holder(self, run_id: str) -> tuple[str, str]:
        """The pid the lock file names, and ", <operator>" when the driver gave one (for messages)."""
        try:
            lines = (self.log_path(run_id).parent / "lock").read_text().splitlines()
        except OSError:
            lines = []
        pid = lines[0].strip() if lines and lines[0].strip() else "?"
        who = visible_line(lines[1].strip()) if len(lines) > 1 and lines[1].strip() else ""
        return pid, f", {who}" if who else ""

    def list_runs(self) -> list[RunSummary]:
        out = []
        for path in self.root.glob(f"*/{LOG}"):
            run_id = path.parent.name
            summary = summarise(run_id, audit.read(path)[0], self.is_driven(run_id))
            if summary:
                out.append(summary)
        return sorted(out, key=lambda r: (r.started, r.id))

    def follow(self, run_id: str, after: int = 0, poll: float = 1.0) -> Iterator[list[audit.AuditRecord]]:
        """Batches of the run's records with seq > ``after`` as they land, by following the file (a stat every
        10 ms; a torn last line is left until its newline arrives). An empty batch at least every ``poll`` s."""
        path = self._existing(run_id) / LOG
        offset, pending = 0, b""
        while True:
            batch: list[audit.AuditRecord] = []
            try:
                if path.stat().st_size < offset:  # resume set a torn last line aside: it was never a record
                    offset, pending = offset - len(pending), b""
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                try:
                    rec = audit.AuditRecord.from_dict(json.loads(raw))
                except (ValueError, KeyError, TypeError):
                    raise AuditError(f"{path}: a line is not an audit record; `breakglass audit verify` names "
                                     "it") from None
                if rec.seq > after:
                    batch.append(rec)
            yield batch
            deadline = time.monotonic() + poll
            size = offset
            while size == offset and time.monotonic() < deadline:
                time.sleep(0.01)
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    size = offset

    def _existing(self, run_id: str) -> Path:
        """The run's directory; a run that was never created is refused, not made on the fly."""
        directory = self.log_path(run_id).parent
        if not directory.is_dir():
            raise RunNotFound(f"no run '{run_id}' in {self.root}; `breakglass runs` lists them")
        return directory


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


def _glob_escape(text: str) -> str:
    # A prefix is matched literally: '*' or '[' typed as a run id must not match other runs.
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _started_at(log: Path) -> str | None:
    """The ``ts`` of the run.started record that begins ``log``, or None when it does not begin with one."""
    try:
        with open(log, "rb") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    if not isinstance(first, dict) or first.get("type") != RecordType.RUN_STARTED \
            or not isinstance(first.get("ts"), str):
        return None
    return str(first["ts"])


def _read_lenient(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit log: {exc.strerror or exc}") from None
    for lineno, raw in enumerate(lines, 1):
        _take(lineno, raw, records, problems)
    return records, problems


def _take(lineno: int, raw: bytes, records: list[dict[str, Any]], problems: list[str]) -> None:
    """One line, read leniently: its record, or a problem naming it."""
    try:
        rec = json.loads(raw)
        if not isinstance(rec, dict) or "type" not in rec:
            raise ValueError("not a record")
        rec.setdefault("seq", lineno)
        rec.setdefault("ts", "")
        records.append(rec)
    except ValueError:
        problems.append(f"line {lineno}: unreadable, left out of this report")


class LogTail:
    """A run's log read as it grows, for the live page: each poll reads, parses and checks only the lines that
    were added, where rereading the whole log cost every watched run O(records) per record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reset()

    def _reset(self) -> None:
        self.offset, self.lines, self.pending = 0, 0, b""
        self.records: list[dict[str, Any]] = []
        self.unreadable: list[str] = []
        self.check = audit.ChainCheck()

    def read(self, whole: bool = False) -> None:
        """Take in what was appended since the last read; the whole log again when ``whole``, or when it did not
        grow (it changed all the same, or the caller would not ask: an edit in place) or got shorter (resume
        set a torn last line aside)."""
        try:
            with open(self.path, "rb") as f:
                if whole or os.fstat(f.fileno()).st_size <= self.offset:
                    self._reset()
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        self.offset += len(chunk)
        *complete, self.pending = (self.pending + chunk).split(b"\n")
        for raw in complete:
            self.lines += 1
            self.check.feed(self.lines, raw + b"\n")
            _take(self.lines, raw, self.records, self.unreadable)

    def verdict(self) -> audit.Verdict:
        """What ``audit.verify`` says of the log as read so far."""
        if not self.pending:
            return self.check.verdict()
        torn = copy.copy(self.check)
        torn.problems = list(torn.problems)
        torn.feed(self.lines + 1, self.pending)
        return torn.verdict()
