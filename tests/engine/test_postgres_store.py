"""The PostgreSQL store beyond the shared contract (tests/engine/test_store_conformance.py): its schema and
migrations, what the database itself refuses, tampering seen by `audit verify`, a database that dies mid-run,
`watch` on both stores, and `store copy`. Always against a real server the tests start (tests/lab/postgres.py).
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")

from engine import session  # noqa: E402
from engine.console import NullReporter  # noqa: E402
from engine.loader import load_text  # noqa: E402
from engine.session import RunOptions  # noqa: E402
from engine.store import FileStore, open_store  # noqa: E402
from engine.store import postgres as pg  # noqa: E402
from tests.cli.screen import Screen  # noqa: E402
from tests.conftest import BREAKGLASS  # noqa: E402
from tests.lab.postgres import PostgresServer, remove, start_server  # noqa: E402

NOTES = """
id: notes
title: two harmless steps
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


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    """A fresh database with the breakglass schema."""
    db_url = postgres.url(postgres.new_database())
    open_store(db_url, check_schema=False).migrate()  # type: ignore[attr-defined]
    return db_url


def bg(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BREAKGLASS, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def as_superuser(db_url: str, text: str, *args: Any) -> None:
    """Someone with database access who switches the append-only triggers off first."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(text, args)


def a_run(db_url: str, tmp_path: Path, runbook: str = NOTES) -> str:
    loaded = load_text(runbook, str(tmp_path / "notes.yaml"))
    outcome = session.start(loaded, {}, RunOptions(operator="alice"), NullReporter(), store=open_store(db_url))
    assert outcome.status == "succeeded"
    return outcome.run_id


# --- schema ------------------------------------------------------------------------------------------------


def test_migrate_creates_then_leaves_the_schema_and_an_old_or_new_one_says_what_to_do(
        postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_url = postgres.url(postgres.new_database())
    env = {"BREAKGLASS_HOME": str(tmp_path / "home")}
    refused = bg("--store", db_url, "runs", env=env)
    assert refused.returncode == 6 and "store migrate" in refused.stderr and "Traceback" not in refused.stderr
    first = bg("--store", db_url, "store", "migrate", env=env)
    assert first.returncode == 0 and f"0 -> {pg.SCHEMA_VERSION}" in first.stdout, first.stderr
    again = bg("store", "migrate", env={**env, "BREAKGLASS_STORE": db_url})
    assert again.returncode == 0 and "up to date" in again.stdout
    assert bg("--store", db_url, "runs", env=env).returncode == 0

    # A breakglass that knows one more migration, against this database: it says exactly what to run.
    monkeypatch.setattr(pg, "MIGRATIONS", [*pg.MIGRATIONS, "ALTER TABLE breakglass.runs ADD COLUMN later text"])
    monkeypatch.setattr(pg, "SCHEMA_VERSION", pg.SCHEMA_VERSION + 1)
    with pytest.raises(pg.AuditError, match=rf"version {pg.SCHEMA_VERSION - 1}; .*needs {pg.SCHEMA_VERSION}: run "
                                            r"`breakglass store migrate --store postgresql://"):
        pg.PostgresStore(db_url)
    assert pg.PostgresStore(db_url, check_schema=False).migrate() == (pg.SCHEMA_VERSION - 1, pg.SCHEMA_VERSION)
    pg.PostgresStore(db_url)

    # The older breakglass, against the upgraded database: upgrade breakglass, not the database.
    monkeypatch.undo()
    newer = bg("--store", db_url, "runs", env=env)
    assert newer.returncode == 6 and "newer than this breakglass" in newer.stderr


def test_a_password_in_the_url_is_refused_and_never_shown(tmp_path: Path) -> None:
    result = bg("--store", "postgresql://alice:s3cr3t-pw@127.0.0.1:1/db", "runs",
                env={"BREAKGLASS_HOME": str(tmp_path)})
    assert result.returncode == 2 and ".pgpass" in result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    from tests.lab import free_port

    result = bg("--store", f"postgresql://nobody@127.0.0.1:{free_port()}/db", "runs",
                env={"BREAKGLASS_HOME": str(tmp_path)})
    assert result.returncode == 6 and "cannot reach the run store" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _commit_modes(url: str) -> None:
    """A trigger notes each record's transaction and the synchronous_commit its COMMIT obeys."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.commit_mode (seq int, type text, mode text, tx bigint)")
        conn.execute("""CREATE FUNCTION public.note_mode() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            INSERT INTO public.commit_mode VALUES (NEW.seq, NEW.line::json->>'type',
                                                   current_setting('synchronous_commit'), txid_current());
            RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER note_mode AFTER INSERT ON breakglass.records "
                     "FOR EACH ROW EXECUTE FUNCTION public.note_mode()")
        conn.execute("GRANT ALL ON public.commit_mode TO PUBLIC")


def _modes(url: str) -> list[tuple[int, str, str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT seq, type, mode, tx FROM public.commit_mode ORDER BY seq").fetchall()


def test_a_record_before_an_action_commits_synchronously_and_an_outcome_rides_with_the_next(url: str,
                                                                                           tmp_path: Path) -> None:
    _commit_modes(url)
    a_run(url, tmp_path)
    modes = _modes(url)
    assert [m for _, t, m, _ in modes if t == "step.started"] == ["on", "on"], modes
    assert modes[-1][1:3] == ("run.finished", "on"), modes
    # Each step's outcome is committed with the record after it, synchronously: one commit per step.
    for (_, type_, _, tx), (_, after, mode, next_tx) in zip(modes, modes[1:], strict=False):
        if type_ == "step.succeeded":
            assert tx == next_tx and mode == "on" and after in ("step.started", "run.finished"), modes
    assert len({tx for *_, tx in modes}) == len(modes) - 2, modes


def test_records_shown_as_written_are_never_held_back(url: str, tmp_path: Path) -> None:
    """--json shows each record's number and hash as it is written: no outcome waits for the next record,
    whose writer might come second to a note and renumber it."""
    from engine.console import JsonReporter

    _commit_modes(url)
    out = io.StringIO()
    loaded = load_text(NOTES, str(tmp_path / "notes.yaml"))
    outcome = session.start(loaded, {}, RunOptions(operator="alice"), JsonReporter(out), store=open_store(url))
    assert outcome.status == "succeeded"
    modes = _modes(url)
    assert [m for _, t, m, _ in modes if t == "step.succeeded"] == ["off", "off"], modes
    assert len({tx for *_, tx in modes}) == len(modes), modes
    shown = [json.loads(line) for line in out.getvalue().splitlines()]
    stored = [r.to_dict() for r in open_store(url).records(outcome.run_id)]
    assert [(r["seq"], r["hash"]) for r in shown] == [(r["seq"], r["hash"]) for r in stored]


# --- what the database refuses ------------------------------------------------------------------------------


def test_the_database_refuses_edits_deletes_forks_and_gaps(url: str, tmp_path: Path) -> None:
    run_id = a_run(url, tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        for text in ("UPDATE breakglass.records SET line = line WHERE run_id = %s",
                     "DELETE FROM breakglass.records WHERE run_id = %s",
                     "DELETE FROM breakglass.runs WHERE id = %s"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(text, (run_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE breakglass.records CASCADE")
        # A second record 2 (a forked chain) and a record after a gap are refused too.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO breakglass.records (run_id, seq, line) VALUES (%s, 2, '{}')", (run_id,))
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="has no record"):
            conn.execute("INSERT INTO breakglass.records (run_id, seq, line) VALUES (%s, 99, '{}')", (run_id,))
    assert open_store(url).verify(run_id).ok


def test_a_row_edited_or_deleted_in_sql_is_named_by_audit_verify(url: str, tmp_path: Path) -> None:
    env = {"BREAKGLASS_STORE": url, "BREAKGLASS_HOME": str(tmp_path / "home")}
    edited, deleted = a_run(url, tmp_path), a_run(url, tmp_path)
    assert bg("audit", "verify", edited, env=env).returncode == 0
    as_superuser(url, "UPDATE breakglass.records SET line = replace(line, '\"operator\":\"alice\"', "
                      "'\"operator\":\"mallory\"') WHERE run_id = %s AND seq = 1", edited)
    as_superuser(url, "DELETE FROM breakglass.records WHERE run_id = %s AND seq = 2", deleted)
    result = bg("audit", "verify", edited, env=env)
    assert result.returncode == 6 and "record 1: content does not match its hash" in result.stderr, result.stderr
    result = bg("audit", "verify", deleted, env=env)
    assert result.returncode == 6 and "record 2: missing (deleted from the database)" in result.stderr
    assert "record 3: does not follow the previous" in result.stderr


# --- a database that dies mid-run ---------------------------------------------------------------------------


def test_the_database_stopped_mid_run_stops_it_before_acting_and_another_machine_resumes(tmp_path: Path) -> None:
    server = start_server()
    try:
        db_url = server.url(server.new_database())
        open_store(db_url, check_schema=False).migrate()  # type: ignore[attr-defined]
        marker = tmp_path / "acted"
        stop = [*server.run_as, str(server.bindir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"]
        rb = tmp_path / "dies.yaml"
        rb.write_text(f"""
id: dies
title: the database goes away during a step
steps:
  - id: pull_the_plug
    title: stop the database
    action: shell.run
    with: {{argv: {json.dumps(stop)}}}
  - id: act
    title: change the world
    action: shell.run
    with: {{argv: [sh, -c, 'echo acted >> "$0"', "{marker}"]}}
""")
        first = bg("--store", db_url, "run", str(rb), "--operator", "alice", "--approve", "pull_the_plug",
                   "--approve", "act",
                   env={"BREAKGLASS_HOME": str(tmp_path / "alice")})
        assert first.returncode == 6, first.stdout + first.stderr
        assert "the run stops here, before anything else acts" in first.stderr and "Traceback" not in first.stderr
        assert not marker.exists()  # nothing acted after the last record that could be written

        server.start()
        bob = {"BREAKGLASS_HOME": str(tmp_path / "bob"), "BREAKGLASS_STORE": db_url}
        resumed = bg("resume", "last", "--operator", "bob", "--in-doubt", "done", "--approve", "act", env=bob)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert marker.read_text() == "acted\n"
        store = open_store(db_url)
        run_id = store.resolve("last")
        assert store.verify(run_id).ok
        kinds = [(r.type, r.get("step"), r.get("operator")) for r in store.records(run_id)]
        assert ("run.resumed", None, "bob") in kinds
        assert [k for k in kinds if k[0] == "step.succeeded"] == [("step.succeeded", "pull_the_plug", None),
                                                                  ("step.succeeded", "act", None)]
    finally:
        remove(server)


# --- watch, on both stores ------------------------------------------------------------------------------------


def _line(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "watch printed nothing"
    return proc.stdout.readline()


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_watch_shows_each_record_as_it_lands_and_ends_with_the_run(kind: str, request: pytest.FixtureRequest,
                                                                   tmp_path: Path) -> None:
    home = tmp_path / "home"
    if kind == "file":
        store: Any = FileStore(home)
        env = {"BREAKGLASS_HOME": str(home), "BREAKGLASS_STORE": ""}
    else:
        db_url = request.getfixturevalue("url")
        store, env = open_store(db_url), {"BREAKGLASS_HOME": str(home), "BREAKGLASS_STORE": db_url}
    run_id = store.create("watched")
    with store.lock(run_id):
        log = store.writer(run_id, {"run": run_id, "mode": "live"})
        log.append("run.started", {"runbook": {"id": "watched"}, "operator": "alice"})
        watcher = subprocess.Popen([BREAKGLASS, "watch", "last", "--json"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        try:
            assert json.loads(_line(watcher, 30))["type"] == "run.started"
            for i in range(3):
                # Each record shows before the next one is written: live, not at the end.
                rec = log.append("step.started", {"step": f"s{i}", "title": f"step \x1b[31m{i}"})
                assert json.loads(_line(watcher))["hash"] == rec["hash"]
            log.append("run.finished", {"status": "succeeded"})
            assert json.loads(_line(watcher))["type"] == "run.finished"
            assert watcher.wait(10) == 0
        finally:
            watcher.kill()
            log.close()
    # The terminal form: one line per record, control characters shown, not sent.
    text = bg("watch", run_id, env=env)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 5
    assert "\x1b" not in text.stdout and "step.started" in text.stdout


# --- store copy ---------------------------------------------------------------------------------------------


def test_store_copy_brings_file_runs_in_verified_and_refuses_a_broken_one(url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = FileStore(home)
    loaded = load_text(NOTES, str(tmp_path / "notes.yaml"))
    ids = [session.start(loaded, {}, RunOptions(operator="alice"), NullReporter(), store=files).run_id
           for _ in range(3)]
    log = files.log_path(ids[1])
    rows = log.read_text().splitlines(keepends=True)
    rows[2] = rows[2].replace('"one"', '"uno"')
    log.write_text("".join(rows))
    env = {"BREAKGLASS_HOME": str(home), "BREAKGLASS_STORE": url}
    result = bg("store", "copy", env=env)
    assert result.returncode == 6 and ids[1] in result.stderr and "2 of 3 runs" in result.stderr, result.stderr
    store = open_store(url)
    assert sorted(r.id for r in store.list_runs()) == sorted([ids[0], ids[2]])
    for run_id in (ids[0], ids[2]):
        assert store.verify(run_id).ok
        assert [r.to_dict() for r in store.records(run_id)] == [r.to_dict() for r in files.records(run_id)]
    again = bg("store", "copy", env=env)
    assert again.returncode == 6 and again.stdout.count("present") == 2


def test_psycopg_is_imported_only_when_a_database_store_is_used(tmp_path: Path) -> None:
    code = ("import sys; from engine.cli import app; from engine.store import default_store; "
            "default_store(); print('psycopg' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "BREAKGLASS_HOME": str(tmp_path), "BREAKGLASS_STORE": ""})
    assert result.stdout.strip() == "False", result.stderr


# --- hand-over ------------------------------------------------------------------------------------------------


HANDOVER = """
id: handover
title: a driver whose laptop lid closes during a step
steps:
  - id: slow
    title: take a while
    action: shell.run
    with: {{argv: [sleep, "1"]}}
  - id: act
    title: change the world
    action: shell.run
    with: {{argv: [sh, -c, 'echo acted >> "$0"', "{marker}"]}}
"""


def _lid_closed(url: str, tmp_path: Path, **popen: Any) -> tuple[subprocess.Popen[str], Any, Path]:
    """alice drives the hand-over runbook until its slow step applies, then her laptop lid closes (SIGSTOP):
    her database session stays open and nobody drives. The driver, the store and the file `act` appends to."""
    marker = tmp_path / "acted"
    rb = tmp_path / "handover.yaml"
    rb.write_text(HANDOVER.format(marker=marker))
    alice = {**os.environ, "BREAKGLASS_HOME": str(tmp_path / "alice"), "BREAKGLASS_STORE": url}
    driver = subprocess.Popen([BREAKGLASS, "run", str(rb), "--operator", "alice", "--approve", "slow", "--approve",
                               "act"], env=alice, text=True, **popen)
    store = open_store(url)
    deadline = time.monotonic() + 30
    while not any(r.type == "step.applying" for r in _records_of_last(store)):
        assert time.monotonic() < deadline, "the run never reached its slow step"
        time.sleep(0.02)
    driver.send_signal(signal.SIGSTOP)
    return driver, store, marker


def test_a_stuck_driver_is_refused_then_taken_over_on_purpose_recorded_and_reported(url: str, tmp_path: Path
                                                                                     ) -> None:
    bob = {"BREAKGLASS_HOME": str(tmp_path / "bob"), "BREAKGLASS_STORE": url}
    driver, store, marker = _lid_closed(url, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_id = store.resolve("last")
        refused = bg("resume", run_id, "--operator", "bob", "--approve", "act", "--in-doubt", "done", env=bob)
        assert refused.returncode == 5 and "--take-over" in refused.stderr, refused.stderr
        taken = bg("resume", run_id, "--operator", "bob", "--approve", "act", "--in-doubt", "done", "--take-over",
                   env=bob)
        assert taken.returncode == 0, taken.stdout + taken.stderr
        assert marker.read_text() == "acted\n"
    finally:
        driver.send_signal(signal.SIGCONT)
    _, err = driver.communicate(timeout=60)
    # The lid opens: alice's session is gone, so its next record is refused and it stops before acting.
    assert driver.returncode == 6 and "cannot write the audit record" in err, err
    assert marker.read_text() == "acted\n"
    assert store.verify(run_id).ok
    resumed = [r for r in store.records(run_id) if r.type == "run.resumed"]
    assert len(resumed) == 1
    assert resumed[0].get("handed_over_from", {}).get("operator") == "alice"
    took = resumed[0].get("took_over")
    assert took["by"] == "bob" and took["how"] == "flag" and f"pid {driver.pid}" in took["from"]
    report = bg("report", run_id, env=bob)
    assert "## Hand-overs" in report.stdout and "took over a stuck lease" in report.stdout
    html = bg("report", run_id, "--format", "html", env=bob).stdout
    assert '<table id="handovers">' in html and "alice on " in html


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_take_over_at_a_terminal_asks_on_the_screen_and_only_yes_breaks_the_lease(
        url: str, tmp_path: Path, answer: str) -> None:
    """The gate of --take-over as the engineer on the second machine sees it: who holds the run, what taking
    over does, and a question that stays on the screen until answered."""
    driver, store, marker = _lid_closed(url, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    screen = None
    try:
        run_id = store.resolve("last")
        screen = Screen(["resume", run_id, "--operator", "bob", "--approve", "act", "--in-doubt", "done",
                         "--take-over"], env={"BREAKGLASS_HOME": str(tmp_path / "bob"), "BREAKGLASS_STORE": url})
        screen.wait_for(r"driven by alice on ")
        screen.wait_for(r"Take over this run\? \[yes/no\]:")
        screen.stays(r"Take over this run\? \[yes/no\]:", seconds=1.0)
        assert f"pid {driver.pid}" in screen.text()
        screen.send(answer)
        code = screen.finish()
    finally:
        if screen is not None:
            screen.close()
        driver.send_signal(signal.SIGCONT)
        if answer == "no":
            driver.kill()
        driver.wait(timeout=60)
    resumed = [r for r in store.records(run_id) if r.type == "run.resumed"]
    if answer == "yes":
        assert code == 0, screen.text()
        assert marker.read_text() == "acted\n"
        took = resumed[0].get("took_over")
        assert took["how"] == "tty" and took["by"] == "bob" and "alice" in took["from"]
    else:
        assert code == 5 and "nothing was taken over" in screen.text(), screen.text()
        assert not marker.exists() and resumed == []
    assert store.verify(run_id).ok


def _records_of_last(store: Any) -> list[Any]:
    try:
        return list(store.records(store.resolve("last")))
    except pg.RunNotFound:
        return []


def test_runs_shows_who_drives_an_open_run(url: str, tmp_path: Path) -> None:
    store = open_store(url)
    run_id = store.create("open")
    with store.lock(run_id):
        log = store.writer(run_id, {"run": run_id, "mode": "live"})
        log.append("run.started", {"runbook": {"id": "open"}, "operator": "alice"})
        log.close()
        text = bg("runs", env={"BREAKGLASS_STORE": url}).stdout
        assert "driven by " in text and f"pid {os.getpid()}" in text
        rows = json.loads(bg("runs", "--json", env={"BREAKGLASS_STORE": url}).stdout)
        assert [(r["id"], r["status"]) for r in rows] == [(run_id, "running")]
        assert f"pid {os.getpid()}" in rows[0]["driver"]
    rows = json.loads(bg("runs", "--json", env={"BREAKGLASS_STORE": url}).stdout)
    assert [(r["status"], r["driver"]) for r in rows] == [("interrupted", "")]


# --- the network to the database cut ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_network_cut_for_30_s_stops_the_run_before_acting_and_it_resumes_after(
        postgres: PostgresServer, tmp_path: Path) -> None:
    from tests.lab.tcpproxy import proxy

    db = postgres.new_database()
    open_store(postgres.url(db), check_schema=False).migrate()  # type: ignore[attr-defined]
    ready, marker = tmp_path / "ready", tmp_path / "acted"
    rb = tmp_path / "cut.yaml"
    rb.write_text(f"""
id: cut
title: the network goes during a step
steps:
  - id: slow
    title: take a while
    action: shell.run
    with: {{argv: [sh, -c, 'touch "$0"; sleep 1', "{ready}"]}}
  - id: act
    title: change the world
    action: shell.run
    with: {{argv: [sh, -c, 'echo acted >> "$0"', "{marker}"]}}
""")
    with proxy(postgres.port) as wire:
        postgres.also_on(wire.port)
        through = f"postgresql://bgadmin@127.0.0.1:{wire.port}/{db}"
        alice = {**os.environ, "BREAKGLASS_HOME": str(tmp_path / "alice"), "BREAKGLASS_STORE": through,
                 "BREAKGLASS_STORE_TIMEOUT": "5"}
        driver = subprocess.Popen([BREAKGLASS, "run", str(rb), "--operator", "alice", "--approve", "slow",
                                   "--approve", "act"], env=alice, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline and driver.poll() is None, driver.communicate()
            time.sleep(0.01)
        wire.cut()
        cut_at = time.monotonic()
        _, err = driver.communicate(timeout=30)
        stopped_after = time.monotonic() - cut_at
        assert driver.returncode == 6, err
        assert "no answer from the database in 5 s" in err and "before anything else acts" in err, err
        assert 4 < stopped_after < 15 and not marker.exists()
        time.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
        wire.restore()

        bob = {"BREAKGLASS_HOME": str(tmp_path / "bob"), "BREAKGLASS_STORE": postgres.url(db)}
        deadline = time.monotonic() + 30
        while True:  # alice's session ends once what the wire held back has gone through
            resumed = bg("resume", "last", "--operator", "bob", "--approve", "act", "--in-doubt", "done", env=bob)
            if resumed.returncode != 5 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert marker.read_text() == "acted\n"
    store = open_store(postgres.url(db))
    assert store.verify(store.resolve("last")).ok


# --- many runs at once ------------------------------------------------------------------------------------------


def _drive_one(db_url: str, runbook_path: str, results: Any) -> None:
    try:
        loaded = load_text(Path(runbook_path).read_text(), runbook_path)
        outcome = session.start(loaded, {}, RunOptions(operator=f"op{os.getpid()}"), NullReporter(),
                                store=open_store(db_url))
        results.put((outcome.run_id, outcome.status))
    except BaseException as exc:  # reported to the test, never a hang
        results.put(("", f"error {type(exc).__name__}: {exc}"))


@pytest.mark.slow
def test_fifty_runs_of_twenty_steps_driven_at_once(url: str, tmp_path: Path) -> None:
    import multiprocessing

    steps = "\n".join(f"  - id: s{i}\n    title: note {i}\n    action: log.note\n    with: {{text: n{i}}}"
                      for i in range(20))
    rb = tmp_path / "many.yaml"
    rb.write_text(f"id: many\ntitle: one of fifty\nsteps:\n{steps}\n")
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    procs = [fork.Process(target=_drive_one, args=(url, str(rb), results)) for _ in range(50)]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=300) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
    assert [status for _, status in outcomes] == ["succeeded"] * 50, outcomes
    store = open_store(url)
    ids = sorted(run_id for run_id, _ in outcomes)
    assert sorted(r.id for r in store.list_runs()) == ids
    for run_id in ids:
        assert store.verify(run_id).ok
        assert [r.type for r in store.records(run_id)].count("step.succeeded") == 20


def _a_step_with_its_outcome_held(store: Any, run_id: str) -> tuple[Any, dict[str, Any]]:
    """The run's start and a step's start written, and the step's outcome held: (the log, that outcome)."""
    log = store.writer(run_id, {"run": run_id, "mode": "live"})
    log.append("run.started", {"runbook": {"id": "held"}, "operator": "alice"})
    log.append("step.started", {"step": "s1"})
    return log, log.append("step.succeeded", {"step": "s1", "output": {}}, sync=False, hold=True)


def test_a_note_that_comes_before_a_held_outcome_is_chained_first_and_the_outcome_after_it(url: str) -> None:
    """The outcome held back for the next record is not in the database yet: a teammate's note takes its
    number meanwhile. The next append finds the number taken and writes the outcome after the note, in the
    same commit as itself; the dict its appender holds says where it went."""
    from engine.notes import append_note

    store = open_store(url)
    run_id = store.create("held")
    with store.lock(run_id):
        log, held = _a_step_with_its_outcome_held(store, run_id)
        assert held["seq"] == 3 and [r.seq for r in store.records(run_id)] == [1, 2]  # not written yet
        note = append_note(open_store(url), run_id, "registrar called back", "bob")
        assert note["seq"] == 3
        after = log.append("step.started", {"step": "s2"})
        log.close()
    records = [r.to_dict() for r in store.records(run_id)]
    assert [(r["seq"], r["type"]) for r in records] == [
        (1, "run.started"), (2, "step.started"), (3, "note"), (4, "step.succeeded"), (5, "step.started")]
    assert records[3] == held and records[4] == after  # the held dict was updated to what was written
    assert store.verify(run_id).ok


def test_an_outcome_held_when_the_run_stops_is_written_as_the_log_closes(url: str) -> None:
    store = open_store(url)
    run_id = store.create("closing")
    with store.lock(run_id):
        log, _ = _a_step_with_its_outcome_held(store, run_id)
        log.close()
    assert [r.type for r in store.records(run_id)] == ["run.started", "step.started", "step.succeeded"]
    assert store.verify(run_id).ok
