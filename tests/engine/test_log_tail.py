"""The live page reads a growing log by its new lines only (engine.store.file.LogTail): what it reads and the
chain's verdict must be what reading the whole log gives, through appends, a torn line, and edits."""

from __future__ import annotations

from pathlib import Path

from engine.store import FileStore
from engine.store.file import LogTail


def same(tail: LogTail, store: FileStore, run_id: str) -> None:
    records, unreadable = store.read_lenient(run_id)
    whole = store.verify(run_id)
    seen = tail.verdict()
    assert (seen.ok, seen.records, seen.head, seen.problems, seen.torn) == \
           (whole.ok, whole.records, whole.head, whole.problems, whole.torn)
    complete = [r for r in records if r.get("hash")]  # a torn line read leniently is not a record yet
    assert tail.records == complete


def test_a_growing_log_read_by_its_tail_reads_as_the_whole(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    run_id = store.create("tail")
    log = store.writer(run_id, {"run": run_id, "mode": "live"})
    path = store.log_path(run_id)
    tail = store.tail(run_id)
    log.append("run.started", {"runbook": {"id": "tail"}, "operator": "ops"})
    for i in range(5):
        tail.read()
        same(tail, store, run_id)
        log.append("note", {"text": f"note {i}", "by": "ops"})
    tail.read()
    same(tail, store, run_id)
    read_before = tail.offset

    with open(path, "ab") as f:  # a record being written: not part of the chain until its newline lands
        f.write(b'{"seq": 7, "ty')
    tail.read()
    assert tail.verdict().torn == 7 and not tail.verdict().ok and tail.offset > read_before
    with open(path, "ab") as f:
        f.write(b'pe": "note"}\n')
    tail.read()
    assert not tail.verdict().ok and "line 7" in tail.verdict().problems[0]
    log.close()


def test_an_edit_behind_the_tail_is_seen(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    run_id = store.create("tail")
    log = store.writer(run_id, {"run": run_id, "mode": "live"})
    path = store.log_path(run_id)
    for i in range(3):
        log.append("note", {"text": f"note {i}", "by": "ops"})
    tail = store.tail(run_id)
    tail.read()
    assert tail.verdict().ok
    # An edit in place, the log no longer than it was: read whole, and the broken line named.
    path.write_bytes(path.read_bytes().replace(b"note 1", b"note X"))
    tail.read()
    assert not tail.verdict().ok and "line 2" in tail.verdict().problems[0]
    same(tail, store, run_id)
    # An edit hidden behind an append is found when the whole log is read again (the page does it every 5 s).
    path.write_bytes(path.read_bytes().replace(b"note X", b"note 1"))
    tail.read(whole=True)
    assert tail.verdict().ok
    log = store.writer(run_id, {"run": run_id, "mode": "live"})
    log.append("note", {"text": "note 3", "by": "ops"})
    path.write_bytes(path.read_bytes().replace(b"note 0", b"note Y"))
    tail.read()
    assert tail.verdict().ok  # only the new line was read
    tail.read(whole=True)
    assert not tail.verdict().ok and "line 1" in tail.verdict().problems[0]
    same(tail, store, run_id)
    log.close()
