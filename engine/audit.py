"""The audit log: append-only JSON Lines, each record hash-chained to the one before it.

Every record carries ``seq``, a UTC ``ts``, ``prev`` (the previous record's hash) and ``hash`` (SHA-256 of
the record's canonical JSON without ``hash``). Editing, deleting or reordering any line breaks the chain at
that line. Whoever holds the file can still rewrite the whole chain, so the final hash (the chain head) is
printed at the end of a run: pasted into the incident channel, it pins the log (``audit verify --head``).

Records are written with one ``write`` each and fsync'd when the engine says so (before any step that acts on
the world and after every outcome), so a crash loses at most a record being written: a torn last line is
reported as such and ignored by readers, never silently "repaired".
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import AuditError, InputError

GENESIS = "0" * 64


def canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def require_utf8(value: Any, what: str) -> None:
    """Refuse text the log cannot hold (bytes that are not UTF-8, passed through as surrogates) before anything
    is written: found at the first record, it left an empty log that `last` then picked."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            bad = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
            raise InputError(f"{what} is not valid UTF-8 ({bad} at character {exc.start + 1}); the audit log "
                             "holds UTF-8 text only: check the terminal's locale and give it again") from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            require_utf8(key, what)
            require_utf8(item, f"{what} '{key}'" if isinstance(key, str) and key.isprintable() else what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            require_utf8(item, what)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AuditRecord:
    """One line of the log, as read back."""

    seq: int
    ts: str
    type: str
    data: dict[str, Any]
    prev: str
    hash: str

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AuditRecord:
        body = {k: v for k, v in raw.items() if k not in ("seq", "ts", "type", "prev", "hash")}
        return cls(int(raw["seq"]), str(raw["ts"]), str(raw["type"]), body, str(raw["prev"]), str(raw["hash"]))

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "type": self.type, **self.data, "prev": self.prev, "hash": self.hash}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class AuditWriter:
    """Appends records to one run's log.

    Several processes may append to the same log: the one driving the run, and ``breakglass note`` from
    another terminal. Each append takes an exclusive lock on the file and first catches up with whatever
    another writer added, so the chain stays one chain.
    """

    def __init__(self, path: Path, stamp: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.stamp = dict(stamp or {})  # fields on every record, e.g. {"run": ..., "mode": "drill"}
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = _open_log(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        self.seq, self.head, self.size = 0, GENESIS, 0
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._catch_up()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        """Read records appended since we last looked (by another process) to learn the chain head."""
        end = os.fstat(self._fd).st_size
        if end == self.size:
            return
        tail = os.pread(self._fd, end - self.size, self.size)
        if not tail.endswith(b"\n"):
            lineno = self.seq + tail.count(b"\n") + 1
            raise AuditError(f"{self.path}: line {lineno} is incomplete (a crash while writing); "
                             "`breakglass audit verify` shows the log")
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            rec = json.loads(last)
            self.seq, self.head = int(rec["seq"]), str(rec["hash"])
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{self.path}: the last line is not a valid audit record") from None
        self.size = end

    def append(self, type_: str, data: Mapping[str, Any], sync: bool = True, hold: bool = False) -> dict[str, Any]:
        """Write one record; when ``sync``, it is on disk before this returns. ``hold`` is ignored: a write
        here costs no round trip, so nothing is kept back."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                return self._append_locked(type_, data, sync)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as exc:
            # Nothing may act on the world without its record: the run stops here (fail closed).
            raise AuditError(f"{self.path}: cannot write the audit log ({exc.strerror}); the run stops "
                             "here; free space or fix the disk, then resume") from None

    def _append_locked(self, type_: str, data: Mapping[str, Any], sync: bool) -> dict[str, Any]:
        self._catch_up()
        record: dict[str, Any] = {"seq": self.seq + 1, "ts": utc_now(), "type": type_, **self.stamp, **data,
                                  "prev": self.head}
        try:
            record["hash"] = digest(record)
            line = canonical(record) + b"\n"
        except UnicodeEncodeError:
            # Inputs, notes and --operator are checked where they enter; anything else is refused whole,
            # so the log never holds half a record.
            raise AuditError(f"{self.path}: a '{type_}' record holds text that is not valid UTF-8; nothing was "
                             "written and the run stops here") from None
        written = os.write(self._fd, line)
        if sync:
            os.fsync(self._fd)
        if written != len(line):
            raise AuditError(f"{self.path}: short write ({written} of {len(line)} bytes); disk full?")
        self.seq, self.head, self.size = self.seq + 1, record["hash"], self.size + written
        return record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_log(path: Path, flags: int) -> int:
    """Open a run's log, never through a symlink: one planted as audit.jsonl would have the engine append
    (or truncate a torn tail) in a file elsewhere, and the run's own log stay empty."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if path.is_symlink():
            raise AuditError(f"{path} is a symbolic link; an audit log must be a plain file in its run's "
                             "directory: find out who replaced it before going on") from None
        raise AuditError(f"{path}: cannot open the audit log ({exc.strerror})") from None


def read(path: Path) -> tuple[list[AuditRecord], int | None]:
    """All complete records, and the line number of a torn last line if there is one."""
    records: list[AuditRecord] = []
    torn: int | None = None
    for lineno, raw in _lines(path):
        try:
            records.append(AuditRecord.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            if not raw.endswith(b"\n"):
                # The end of the file as it was read: a crash while writing, or another process's write
                # still going on. Reading on would take the rest of that write for a line of its own.
                torn = lineno
                break
            raise AuditError(f"{path}:{lineno}: not a valid audit record") from None
    return records, torn


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with open(path, "rb") as f:
            yield from enumerate(f, 1)
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    head: str
    problems: list[str]
    torn: int | None = None  # line number of an incomplete last line (a crash while writing), if any
    after_head: list[str] = field(default_factory=list)  # record types appended after a published head

    @property
    def only_torn(self) -> bool:
        """The chain is intact up to a last line a crash cut short: resumable once that line is set aside."""
        return self.torn is not None and len(self.problems) == 1


def verify(path: Path, head: str | None = None) -> Verdict:
    """Check every line's hash and link; with ``head``, also that the chain passes through that head.

    A published head pins everything up to it. Records may legitimately follow it (an operator's note
    added after the run, a resume): they are listed, not refused; a head the chain does not pass through
    means the log was cut or rewritten.
    """
    return verify_lines(_lines(path), head)


def verify_lines(lines: Iterable[tuple[int, bytes]], head: str | None = None) -> Verdict:
    """``verify`` over numbered lines of canonical JSON, wherever a store keeps them."""
    check = ChainCheck(head)
    for lineno, raw in lines:
        check.feed(lineno, raw)
    return check.verdict()


class ChainCheck:
    """The chain's rules, fed one line at a time: ``verify`` over a whole log, the live page over a growing one."""

    def __init__(self, head: str | None = None) -> None:
        self.head = head
        self.problems: list[str] = []
        self.prev, self.expected_seq, self.count = GENESIS, 1, 0
        self.torn: int | None = None
        self.seen_head = False
        self.after_head: list[str] = []

    def feed(self, lineno: int, raw: bytes) -> None:
        self.count += 1
        if not raw.endswith(b"\n"):
            # Every record ends in a newline, so a last line without one was cut short: by a crash while
            # writing, or by someone truncating the file. Either way it is not part of the chain.
            self.torn = lineno
            self.problems.append(f"line {lineno}: incomplete (torn by a crash while writing, or the file was "
                                 f"cut); the {self.count - 1} records before it are checked above")
            return
        try:
            rec = json.loads(raw)
            claimed = rec.pop("hash")
        except (ValueError, KeyError, AttributeError, TypeError):
            self.problems.append(f"line {lineno}: not valid JSON, or not an audit record (the line was edited)")
            return
        if digest(rec) != claimed:
            self.problems.append(f"line {lineno}: content does not match its hash (the line was edited)")
        if rec.get("prev") != self.prev:
            self.problems.append(f"line {lineno}: does not follow the previous line (a line was deleted, "
                                 "inserted or moved before it)")
        if rec.get("seq") != self.expected_seq:
            self.problems.append(f"line {lineno}: sequence number {rec.get('seq')} where {self.expected_seq} was "
                                 "expected")
        if self.seen_head:
            self.after_head.append(str(rec.get("type")))
        self.seen_head = self.seen_head or claimed == self.head
        self.prev, self.expected_seq = claimed, int(rec.get("seq", self.expected_seq)) + 1

    def verdict(self) -> Verdict:
        problems = list(self.problems)
        if self.count == 0:
            problems.append("the log is empty")
        if self.head is not None and not self.seen_head:
            problems.append(f"the chain does not pass through the head {self.head[:16]}… you gave: the log was "
                            "cut before it or rewritten (or the head was mistyped)")
        return Verdict(not problems, self.count, self.prev, problems, self.torn, list(self.after_head))


def set_aside_torn_tail(path: Path) -> dict[str, Any] | None:
    """Move an incomplete last line out of the log, into a side file kept as evidence; say what was moved.

    A record is complete only with its newline, and the engine acts on the world only after a record is
    complete, so a torn line never announced anything that happened. Resume calls this (under the run lock)
    and records the result in ``run.resumed``: the log is cut back explicitly, never silently "repaired".
    """
    fd = _open_log(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        start = max(0, size - 1_048_576)
        tail = os.pread(fd, size - start, start)
        if not tail or tail.endswith(b"\n"):
            return None
        cut = tail.rfind(b"\n")
        if cut < 0 and start > 0:
            raise AuditError(f"{path}: the last line is over 1 MiB and incomplete; inspect the file by hand")
        keep = start + cut + 1
        torn = tail[cut + 1:]
        with open(path, "rb") as f:
            line = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b"")) + 1
        sha256 = hashlib.sha256(torn).hexdigest()
        side = _keep_as_evidence(path, f"torn-line-{line}", torn, sha256)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return {"line": line, "bytes": len(torn), "sha256": sha256, "saved_as": side.name}
    finally:
        os.close(fd)


def _keep_as_evidence(log: Path, label: str, data: bytes, sha256: str) -> Path:
    """Write ``data`` beside the log, owner-only like the log (it may hold what the log held), never over
    an earlier side file nor through a symlink."""
    for name in (f"{log.name}.{label}", f"{log.name}.{label}-{sha256[:12]}"):
        side = log.with_name(name)
        try:
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return side
    raise AuditError(f"{log}: cannot set the torn last line aside ({label} exists twice); inspect the files by hand")


def elapsed(start_ts: str, end_ts: str) -> float:
    """Seconds between two record timestamps."""
    def parse(ts: str) -> float:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

    return parse(end_ts) - parse(start_ts)

