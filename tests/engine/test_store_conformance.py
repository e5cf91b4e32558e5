"""The run store contract, checked against every implementation of ``RunStore``.

Each implementation comes with a harness: how to open it (a fresh instance, as another process would) and how
to damage it behind the store's back, as an intruder (``tamper``) or a crash mid-write (``tear``) would. The
next store is one more entry in ``HARNESSES``; every test below then runs against it too.

Concurrency is checked across real processes (fork): locks and appends are what other processes see.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine import session
from engine import store as store_pkg
from engine.console import NullReporter
from engine.errors import AuditError, RunLocked, RunNotFound
from engine.loader import load_text
from engine.notes import append_note
from engine.report import from_store
from engine.session import RunOptions, load_stored
from engine.store import FileStore, RunStore

FORK = multiprocessing.get_context("fork")


class FileHarness:
    """The embedded file store."""

    name = "file"
    tears = True

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.root = tmp_path / "home"

    def open(self) -> RunStore:
        return FileStore(self.root)

    def tamper(self, run_id: str, seq: int) -> None:
        """Change what record ``seq`` says, leaving its hash as it was."""
        log = FileStore(self.root).log_path(run_id)
        rows = log.read_bytes().splitlines(keepends=True)
        rec = json.loads(rows[seq - 1])
        rec["tampered"] = "by someone"
        rows[seq - 1] = json.dumps(rec).encode() + b"\n"
        log.write_bytes(b"".join(rows))

    def tear(self, run_id: str) -> None:
        """What a crash half-way through writing the next record leaves."""
        with open(FileStore(self.root).log_path(run_id), "ab") as f:
            f.write(b'{"seq": 99, "type": "step.succ')


class PostgresHarness:
    """The shared store: a fresh database on the real PostgreSQL server the tests start (tests/lab/postgres.py)."""

    name = "postgres"
    tears = False  # a record is one transaction: a crash leaves it whole or absent, never half-written

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
        self.server = request.getfixturevalue("postgres")
        self.url = self.server.url(self.server.new_database())
        store_pkg.open_store(self.url, check_schema=False).migrate()  # type: ignore[attr-defined]

    def open(self) -> RunStore:
        return store_pkg.open_store(self.url)

    def sql(self, text: str, *args: Any) -> None:
        """As someone with database access (a superuser), the append-only triggers switched off."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(text, args)

    def tamper(self, run_id: str, seq: int) -> None:
        self.sql("UPDATE breakglass.records SET line = jsonb_set(line::jsonb, '{tampered}', '\"by someone\"')::text "
                 "WHERE run_id = %s AND seq = %s", run_id, seq)


HARNESSES: list[Callable[[Path, pytest.FixtureRequest], Any]] = [FileHarness, PostgresHarness]


@pytest.fixture(params=HARNESSES, ids=lambda h: h.name)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return request.param(tmp_path, request)


def _started(store: RunStore, runbook: str = "conf", finish: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """A run with a run.started record (and a run.finished one when ``finish``), as the engine writes them."""
    run_id = store.create(runbook)
    with store.lock(run_id):
        log = store.writer(run_id, {"run": run_id, "mode": "drill"})
        try:
            recs = [log.append("run.started", {"runbook": {"id": runbook}, "operator": "ops"})]
            recs.append(log.append("step.started", {"step": "a"}))
            if finish:
                recs.append(log.append("run.finished", {"status": finish}))
        finally:
            log.close()
    return run_id, recs


# --- reading and writing ------------------------------------------------------------------------------


def test_append_then_read_round_trips(harness: Any) -> None:
    store = harness.open()
    run_id = store.create("round-trip")
    odd = {"text": "ö 雪 \x1b[31mred\x07\nsecond line", "nested": {"list": [1, 2.5, None, True, "x"]}}
    with store.lock(run_id):
        log = store.writer(run_id, {"run": run_id, "mode": "live"})
        try:
            written = [log.append("run.started", {"runbook": {"id": "round-trip"}, "operator": "ops"}),
                       log.append("step.started", odd, sync=False),
                       log.append("note", {"text": "after"})]
            assert [r.to_dict() for r in log.records()] == written
        finally:
            log.close()
    read = [r.to_dict() for r in harness.open().records(run_id)]
    assert read == written
    assert [r["seq"] for r in read] == [1, 2, 3]
    assert all(r["run"] == run_id and r["mode"] == "live" for r in read)
    assert read[1]["text"] == odd["text"] and read[1]["nested"] == odd["nested"]
    assert [r["prev"] for r in read[1:]] == [r["hash"] for r in read[:-1]]
    verdict = store.verify(run_id, head=written[-1]["hash"])
    assert verdict.ok and verdict.records == 3 and verdict.head == written[-1]["hash"]
    lenient, problems = store.read_lenient(run_id)
    assert [r["hash"] for r in lenient] == [r["hash"] for r in written] and problems == []


def test_a_run_that_was_never_created_is_refused_everywhere(harness: Any) -> None:
    store = harness.open()
    _started(store)
    for call in (lambda: store.resolve("no-such-run"), lambda: store.records("no-such-run"),
                 lambda: store.writer("no-such-run", {}), lambda: store.lock("no-such-run").__enter__()):
        with pytest.raises(RunNotFound):
            call()


# --- the chain --------------------------------------------------------------------------------------------


def test_a_tampered_record_is_detected_and_named(harness: Any) -> None:
    store = harness.open()
    run_id, recs = _started(store, finish="succeeded")
    assert store.verify(run_id).ok
    harness.tamper(run_id, 2)
    verdict = store.verify(run_id, head=recs[-1]["hash"])
    assert not verdict.ok
    assert len(verdict.problems) == 1 and re.search(r"\b2\b", verdict.problems[0]), verdict.problems
    with pytest.raises(AuditError, match=r"does not verify"):
        load_stored(store, run_id)


# --- locks and concurrent writers ---------------------------------------------------------------------------


def _drive(harness: Any, run_id: str, start: Any, release: Any, results: Any, tag: str) -> None:
    """In a child: take the lock, append a burst of records, hold the lock until released; report how it went."""
    store = harness.open()
    start.wait()
    try:
        with store.lock(run_id):
            log = store.writer(run_id, {"run": run_id, "mode": "drill"})
            for i in range(10):
                log.append("step.started", {"step": f"s{i}", "driver": tag})
            log.close()
            results.put((tag, "won"))
            release.wait(30)
    except RunLocked:
        results.put((tag, "locked"))
    except BaseException as exc:  # anything else is a failure of the contract: report it, do not hang
        results.put((tag, f"error {type(exc).__name__}: {exc}"))


def test_two_drivers_racing_one_wins_the_other_is_refused_cleanly(harness: Any) -> None:
    store = harness.open()
    run_id, _ = _started(store)
    start, release, results = FORK.Event(), FORK.Event(), FORK.Queue()
    drivers = [FORK.Process(target=_drive, args=(harness, run_id, start, release, results, tag)) for tag in "ABCD"]
    for p in drivers:
        p.start()
    start.set()
    outcomes = dict(results.get(timeout=30) for _ in drivers)  # the winner holds the lock until all have tried
    release.set()
    for p in drivers:
        p.join(30)
    assert sorted(outcomes.values()) == ["locked", "locked", "locked", "won"], outcomes
    winner = next(tag for tag, how in outcomes.items() if how == "won")
    records = store.records(run_id)
    assert {r.get("driver") for r in records[2:]} == {winner} and len(records) == 12
    assert store.verify(run_id).ok


def _hold(harness: Any, run_id: str, held: Any, release: Any) -> None:
    with harness.open().lock(run_id):
        held.set()
        release.wait(30)


def test_the_lock_is_exclusive_across_processes_and_dies_with_its_holder(harness: Any) -> None:
    store = harness.open()
    run_id, _ = _started(store)
    assert not store.is_driven(run_id)
    held, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold, args=(harness, run_id, held, release))
    holder.start()
    assert held.wait(30)
    assert store.is_driven(run_id)
    with pytest.raises(RunLocked, match="another process"):
        store.lock(run_id).__enter__()
    release.set()
    holder.join(30)
    assert _lets_go(store, run_id)
    with store.lock(run_id):
        pass

    # A driver killed outright (kill -9, power) leaves no lock behind: the run can be resumed.
    held, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold, args=(harness, run_id, held, release))
    holder.start()
    assert held.wait(30) and store.is_driven(run_id)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    assert _lets_go(store, run_id)
    with store.lock(run_id):
        pass


def _lets_go(store: Any, run_id: str, within: float = 10.0) -> bool:
    """Whether the run is free again soon: a database frees a dead session's lock once the server has seen
    the connection close, a moment after the process is gone (resume, refused meanwhile, asks again)."""
    deadline = time.monotonic() + within
    while store.is_driven(run_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _drive_until(harness: Any, run_id: str, going: Any, stop: Any) -> None:
    """In a child: drive the run, a step after another, until told to stop."""
    store = harness.open()
    with store.lock(run_id):
        log = store.writer(run_id, {"run": run_id, "mode": "live"})
        going.set()
        i = 0
        while not stop.is_set() or i < 5:
            log.append("step.started", {"step": f"s{i}"})
            log.append("step.succeeded", {"step": f"s{i}"})
            i += 1
        log.append("run.finished", {"status": "succeeded"})
        log.close()


def _take_notes(harness: Any, run_id: str, going: Any, who: str, count: int) -> None:
    going.wait(30)
    store = harness.open()
    for i in range(count):
        append_note(store, run_id, f"{who} note {i}", who)


def test_notes_from_other_processes_while_a_run_is_driven_keep_one_chain(harness: Any) -> None:
    store = harness.open()
    run_id, _ = _started(store)
    going, stop = FORK.Event(), FORK.Event()
    driver = FORK.Process(target=_drive_until, args=(harness, run_id, going, stop))
    takers = [FORK.Process(target=_take_notes, args=(harness, run_id, going, who, 15)) for who in ("bob", "eve")]
    for p in [driver, *takers]:
        p.start()
    for p in takers:
        p.join(60)
        assert p.exitcode == 0
    assert store.is_driven(run_id)  # every note went in while the run was driven
    stop.set()
    driver.join(60)
    assert driver.exitcode == 0
    records = store.records(run_id)
    assert store.verify(run_id).ok
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    notes = sorted(str(r.get("text")) for r in records if r.type == "note")
    assert notes == sorted(f"{who} note {i}" for who in ("bob", "eve") for i in range(15))
    # The driver's own records stay in its order, whatever came between them.
    steps = [(r.type, r.get("step")) for r in records[2:-1] if r.type != "note"]
    assert steps == [(kind, f"s{i}") for i in range(len(steps) // 2) for kind in ("step.started", "step.succeeded")]
    assert records[-1].type == "run.finished"


# --- finding runs -------------------------------------------------------------------------------------------


def test_last_prefixes_and_the_list(harness: Any) -> None:
    store = harness.open()
    with pytest.raises(RunNotFound):
        store.resolve("last")
    done, _ = _started(store, "alpha", finish="failed")
    stopped, _ = _started(store, "beta")
    never = store.create("gamma")  # created, never begun: no run anyone can name or list
    held, release = FORK.Event(), FORK.Event()
    driven, _ = _started(store, "delta")
    holder = FORK.Process(target=_hold, args=(harness, driven, held, release))
    holder.start()
    try:
        assert held.wait(30)
        assert store.resolve("last") == driven
        rows = [(r.id, r.runbook, r.mode, r.status, r.operator) for r in store.list_runs()]
        assert rows == [(done, "alpha", "drill", "failed", "ops"), (stopped, "beta", "drill", "interrupted", "ops"),
                        (driven, "delta", "drill", "running", "ops")]
    finally:
        release.set()
        holder.join(30)
    assert never not in {r.id for r in store.list_runs()}
    ids = [done, stopped, driven]
    for run_id in ids:
        assert store.resolve(run_id) == run_id
        unique = next(run_id[:k] for k in range(1, len(run_id) + 1)
                      if sum(other.startswith(run_id[:k]) for other in ids + [never]) == 1)
        assert store.resolve(unique) == run_id
    shared = os.path.commonprefix(ids)
    assert shared
    with pytest.raises(RunNotFound, match="matches 3 runs"):
        store.resolve(shared)
    for hostile in ("", "*", "../x", "a/b", "."):
        with pytest.raises(RunNotFound):
            store.resolve(hostile)


# --- crashes ------------------------------------------------------------------------------------------------


def test_a_torn_tail_is_reported_refused_then_set_aside_under_the_lock(harness: Any) -> None:
    if not harness.tears:
        pytest.skip(f"the {harness.name} store cannot hold half a record")
    store = harness.open()
    run_id, recs = _started(store)
    harness.tear(run_id)
    assert [r.to_dict() for r in store.records(run_id)] == recs
    verdict = store.verify(run_id)
    assert not verdict.ok and verdict.only_torn
    with pytest.raises(AuditError):
        store.writer(run_id, {"run": run_id})  # nothing chains onto half a record
    with store.lock(run_id):
        moved = store.set_aside_torn_tail(run_id)
        assert moved is not None and moved["bytes"] > 0
        assert store.set_aside_torn_tail(run_id) is None
        log = store.writer(run_id, {"run": run_id, "mode": "drill"})
        log.append("run.resumed", {"torn_tail": moved})
        log.close()
    assert store.verify(run_id).ok and len(store.records(run_id)) == len(recs) + 1


RUNBOOK = """
id: conformance
title: a run through the engine
steps:
  - id: first
    title: say one thing
    action: log.note
    with: {text: one}
  - id: second
    title: say another
    action: log.note
    with: {text: two}
"""


def test_the_engine_resumes_a_run_torn_by_a_crash(harness: Any, tmp_path: Path) -> None:
    if not harness.tears:
        pytest.skip(f"the {harness.name} store cannot hold half a record")
    store = harness.open()
    loaded = load_text(RUNBOOK, str(tmp_path / "conformance.yaml"))
    first = session.start(loaded, {}, RunOptions(operator="ops"), NullReporter(), store=store)
    assert first.status == "succeeded"
    harness.tear(first.run_id)
    again = session.resume(store, first.run_id, {}, RunOptions(operator="ops"), NullReporter())
    assert again.status == "succeeded" and store.verify(again.run_id).ok
    resumed = [r for r in store.records(first.run_id) if r.type == "run.resumed"]
    assert len(resumed) == 1 and resumed[0].get("torn_tail")


# --- nothing reaches past the interface -----------------------------------------------------------------------


class InterfaceOnly:
    """A store that answers only what ``RunStore`` declares: a caller reaching for files or paths fails."""

    MEMBERS = frozenset(n for n in vars(RunStore) if not n.startswith("_"))

    def __init__(self, inner: RunStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name not in self.MEMBERS:
            raise AttributeError(f"{name} is not part of the RunStore interface")
        return getattr(self._inner, name)


def test_the_interface_names_no_file() -> None:
    assert not any("path" in name or "file" in name for name in InterfaceOnly.MEMBERS)


def test_engine_cli_drills_and_reports_use_only_the_interface(harness: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import app

    guarded = InterfaceOnly(harness.open())
    monkeypatch.setattr(store_pkg, "default_store", lambda: guarded)
    monkeypatch.setattr(session, "default_store", lambda: guarded)
    rb = tmp_path / "conformance.yaml"
    rb.write_text(RUNBOOK)
    cli = CliRunner()

    def bg(*args: str) -> Any:
        result = cli.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    bg("run", str(rb), "--operator", "ops")
    run_id = guarded.resolve("last")
    bg("note", run_id[:24], "paged the registrar", "--operator", "bob")
    assert run_id in bg("runs", "--json").output
    assert "ok:" in bg("audit", "verify", "last").output
    assert "paged the registrar" in bg("audit", "show", "last").output
    assert "paged the registrar" in bg("report", "last", "--format", "json").output
    bg("resume", "last")
    bg("drill", "dns-failover", "--scenario", "primary-is-up", "--yes")
    report = from_store(guarded, "last")  # the drill's own run
    assert report.chain.ok


@pytest.fixture(autouse=True)
def _no_leaked_children() -> Iterator[None]:
    yield
    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)
