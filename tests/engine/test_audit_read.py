"""Reading a log another process is writing: the end of the file as read may be part of a line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import audit


def _log(tmp_path: Path, n: int) -> tuple[Path, list[bytes]]:
    writer = audit.AuditWriter(tmp_path / "audit.jsonl", {"run": "r"})
    for i in range(n):
        writer.append("note", {"text": f"note {i}", "by": "alice"})
    writer.close()
    path = tmp_path / "audit.jsonl"
    return path, path.read_bytes().splitlines(keepends=True)


def test_a_line_being_written_ends_the_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's end fell inside a line another process was writing, and the rest of that write arrived
    while reading went on: what came after the partial line is not a line of its own (`breakglass note`
    during a driven run failed with "not a valid audit record")."""
    path, lines = _log(tmp_path, 3)
    last = lines[-1]
    seen = [*lines[:-1], last[:40], last[40:]]  # what reading line by line meets when the write lands midway
    monkeypatch.setattr(audit, "_lines", lambda _path: iter(enumerate(seen, 1)))
    records, torn = audit.read(path)
    assert [r.seq for r in records] == [1, 2] and torn == 3


def test_an_invalid_complete_line_is_still_refused(tmp_path: Path) -> None:
    path, lines = _log(tmp_path, 3)
    path.write_bytes(b"".join([lines[0], b'{"seq": 2, "broken"\n', lines[2]]))
    with pytest.raises(audit.AuditError, match=":2: not a valid audit record"):
        audit.read(path)
