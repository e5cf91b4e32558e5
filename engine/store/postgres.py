"""The shared run store: runs in a PostgreSQL database, for a team (``BREAKGLASS_STORE=postgresql://...``).

Each record is one row holding the record's canonical JSON exactly as hashed (``engine.audit``), so
``audit verify`` checks the same bytes on both stores. What the file store gets from ``flock`` and ``fsync``
the database gives here:

- durable before anything acts: every append is its own transaction; a synced one is committed with
  ``synchronous_commit`` on, so ``append`` returns only once it, and every record before it, is on the
  server's disk (an append without sync is made durable by the next synced one). An outcome the engine
  lets this store hold goes in the next append's transaction: one round trip and one flush per step;
- one chain: appenders queue on the run's row, ``(run_id, seq)`` is the primary key and a trigger refuses
  a record whose predecessor is missing, so two writers can never both write record N: the second is
  refused whole, and chains again after the first (a note), or stops before acting;
- append-only: triggers refuse ``UPDATE``, ``DELETE`` and ``TRUNCATE`` of records (someone who switches them
  off is still caught by the hash chain, by ``audit verify``);
- one driver: a session-level advisory lock is the lease. It lives exactly as long as the driver's database
  session, so a driver killed (kill -9, a closed laptop lid, a cut network) loses it when the server notices,
  and the driver's appends go over that same session: a driver that lost its lease cannot append.

psycopg (the ``postgres`` extra) is imported only here, and this module only when a PostgreSQL store is used.
Connections follow libpq: the URL, ``PG*`` variables, and the password from ``PGPASSFILE``/``~/.pgpass`` (or
``PGPASSWORD``); a password written in the URL is refused, since the URL sits in argv or the environment.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from engine import audit
from engine.errors import AuditError, InputError, RunLocked, RunNotFound
from engine.store.base import RunSummary, choose, latest, summarise

SCHEMA = "breakglass"
APPEND_TIMEOUT = 15.0  # seconds; see append_timeout
CHANNEL = "breakglass_records"  # NOTIFY payload: "<run id> <seq>" for each record committed
# Seconds: how soon a vanished peer is noticed. The server side releases a dead driver's lease after about
# idle + interval * count; the client side gives up on a silent server after tcp_user_timeout.
KEEPALIVE = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3",
             "tcp_user_timeout": "10000", "connect_timeout": "5"}

# MIGRATIONS[i] takes the schema from version i to version i + 1; SCHEMA_VERSION is what this code needs.
MIGRATIONS: list[str] = [
    """
    CREATE SCHEMA IF NOT EXISTS breakglass;
    CREATE TABLE breakglass.meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE breakglass.runs (
        id text PRIMARY KEY,
        runbook text NOT NULL,
        created timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE breakglass.records (
        run_id text NOT NULL REFERENCES breakglass.runs (id),
        seq integer NOT NULL CHECK (seq > 0),
        line text NOT NULL,
        committed timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (run_id, seq)
    );
    -- Who drives each run: written by the lease holder, read by `breakglass runs`. The lease itself is the
    -- advisory lock; a row here whose lock nobody holds is a driver that went away.
    CREATE TABLE breakglass.leases (
        run_id text PRIMARY KEY REFERENCES breakglass.runs (id),
        operator text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        backend integer NOT NULL,
        since timestamptz NOT NULL DEFAULT now()
    );
    CREATE FUNCTION breakglass.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'breakglass audit records are append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA,
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON breakglass.records
        FOR EACH ROW EXECUTE FUNCTION breakglass.refuse_change();
    CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON breakglass.records
        FOR EACH STATEMENT EXECUTE FUNCTION breakglass.refuse_change();
    CREATE TRIGGER runs_append_only BEFORE UPDATE OR DELETE ON breakglass.runs
        FOR EACH ROW EXECUTE FUNCTION breakglass.refuse_change();
    CREATE FUNCTION breakglass.chain_record() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Record N goes after record N - 1 or not at all: no gap, and with the primary key no fork.
        IF NEW.seq > 1 AND NOT EXISTS (SELECT 1 FROM breakglass.records WHERE run_id = NEW.run_id
                                       AND seq = NEW.seq - 1) THEN
            RAISE EXCEPTION 'record % of run % has no record % before it', NEW.seq, NEW.run_id, NEW.seq - 1
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        PERFORM pg_notify('breakglass_records', NEW.run_id || ' ' || NEW.seq);
        RETURN NEW;
    END $$;
    CREATE TRIGGER records_chain BEFORE INSERT ON breakglass.records
        FOR EACH ROW EXECUTE FUNCTION breakglass.chain_record();
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# An append when the driver knows the head: one statement in autocommit, so one round trip and its own
# transaction. The insert locks the run's row (appenders queue on it). ``set_config(..., true)`` is SET LOCAL
# for that transaction: with 'off' the commit does not wait for the WAL flush (the record is in order and
# atomic, and the next synced append, the record before an action, makes it durable with its own flush).
# Records held back (``append(hold=True)``) go in the same statement as the next one, in order: one commit.
@functools.cache
def append_statement(rows: int) -> str:
    values = ", ".join(["(%s::integer, %s::text)"] * rows)  # placeholders only: the values are parameters
    return ("WITH durability AS (SELECT set_config('synchronous_commit', %s, true))\n"  # noqa: S608
            "    INSERT INTO breakglass.records (run_id, seq, line)\n"
            f"    SELECT id, v.seq, v.line FROM breakglass.runs, durability, (VALUES {values}) AS v(seq, line)\n"
            "    WHERE id = %s ORDER BY v.seq FOR NO KEY UPDATE OF runs")


APPEND = append_statement(1)


def shown(url: str) -> str:
    """The URL as messages show it: never a password, whatever was given."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(an unreadable URL)"
    host, port, user, db = (str(params.get(key) or os.environ.get(env, ""))
                            for key, env in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                                             ("dbname", "PGDATABASE")))
    return f"postgresql://{user + '@' if user else ''}{host}{':' + port if port else ''}/{db}"


def _params(url: str) -> dict[str, Any]:
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise InputError(f"the store URL is not a PostgreSQL URL libpq can read ({exc}); write it as "
                         "postgresql://user@host:port/database") from None
    if "password" in params:
        raise InputError("the store URL holds a password, and a URL ends up in shell history, `ps` and logs: "
                         "remove it and put the password in ~/.pgpass (or the file PGPASSFILE names)")
    return {**KEEPALIVE, **params, "application_name": "breakglass"}


def _lock_key(run_id: str) -> int:
    """The run's advisory lock key: 64 bits of a hash, so two runs share a key only by astronomic chance."""
    return int.from_bytes(hashlib.sha256(f"breakglass run {run_id}".encode()).digest()[:8], "big", signed=True)


def _key_parts(key: int) -> tuple[int, int]:
    """A bigint advisory key as pg_locks shows it: (classid, objid), the high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def _valid_ref(ref: str) -> None:
    if not ref or "/" in ref or "\0" in ref or ref.startswith("."):
        raise RunNotFound(f"'{ref}' is not a run id")


def _like_prefix(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text) + "%"


class PostgresLog:
    """A run's log, open for appending over one database session (``RunLog``)."""

    def __init__(self, store: PostgresStore, conn: psycopg.Connection[Any], run_id: str, stamp: Mapping[str, Any],
                 owned: bool) -> None:
        self.store, self.conn, self.run_id, self.stamp, self.owned = store, conn, run_id, dict(stamp), owned
        self._head: tuple[int, str] | None = None  # (seq, hash) of the last record this log knows of
        self._held: list[dict[str, Any]] = []  # appended with hold, written with the next append
        self._watchdog = _Watchdog(conn)

    def append(self, type_: str, data: Mapping[str, Any], sync: bool = True, hold: bool = False) -> dict[str, Any]:
        """Chain one record after the head, in one transaction; with ``sync`` committed to disk on return.

        Every appender locks the run's row first, so appends to a run are one queue. The driver remembers
        the head from its last append and sends lock, insert and commit in one round trip; when another
        writer (a note from another machine) took that record number meanwhile, the primary key refuses ours
        whole, and the append goes again reading the head under the lock, where nobody can overtake it.

        With ``hold`` and the head known, the record is kept here and goes with the next append, in its
        statement and its commit (a step's outcome with the next step's start: one round trip and one flush
        per step). Overtaken meanwhile, the held records are chained again after the other writer's.
        """
        if hold and self._head is not None:
            try:
                record = self._record(type_, data, self._head)
            except UnicodeEncodeError:
                raise self._not_utf8(type_) from None
            self._held.append(record)
            self._head = (int(record["seq"]), str(record["hash"]))
            return record
        written = self._written(type_, data, sync)
        assert written is not None  # a record was given, so one was written
        return written

    def _written(self, type_: str | None, data: Mapping[str, Any], sync: bool) -> dict[str, Any] | None:
        for _ in range(3):
            try:
                self._watchdog.arm(append_timeout())
                try:
                    return self._append(type_, data, sync)
                finally:
                    self._watchdog.disarm()
            except UnicodeEncodeError:  # the new record's (a held one was encoded when it was held)
                raise self._not_utf8(type_ or "") from None
            except psycopg.errors.IntegrityError:
                self._head = None  # that record number is someone else's: nothing of ours was written; catch up
            except psycopg.Error as exc:
                silent = f"no answer from the database in {append_timeout():g} s; " if self._watchdog.fired else ""
                raise self.store.unreachable(exc, f"{silent}cannot write the audit record; the run stops here, "
                                                  "before anything else acts; when the database is back, "
                                                  f"`breakglass resume {self.run_id}` goes on") from None
        raise AuditError(f"{self.store.where(self.run_id)}: another writer kept taking the next record although "
                         "the run's row was locked (one not going through breakglass?); nothing was written and "
                         "the run stops here, before acting")

    def _append(self, type_: str | None, data: Mapping[str, Any], sync: bool) -> dict[str, Any] | None:
        """Write the held records and then this one (none when ``type_`` is None) in one transaction."""
        durability = "on" if sync else "off"
        if self._head is not None:
            batch = self._with_held(type_, data, self._head)
            cur = self.conn.execute(append_statement(len(batch)),
                                    (durability, *[x for r in batch for x in (r["seq"], audit.canonical(r).decode())],
                                     self.run_id))
            if cur.rowcount != len(batch):
                raise AuditError(f"{self.store.where(self.run_id)}: the run is not in the database (anymore?); "
                                 "nothing was written and the run stops here")
        else:
            insert = "INSERT INTO breakglass.records (run_id, seq, line) VALUES (%s, %s, %s)"
            with self.conn.transaction():
                if not sync:
                    self.conn.execute("SET LOCAL synchronous_commit TO off")
                self.conn.execute("SELECT 1 FROM breakglass.runs WHERE id = %s FOR NO KEY UPDATE", (self.run_id,))
                head = self._read_head()
                for held in self._held:  # chained again after whatever came first: same content, new place
                    head = self._chain(held, head)
                batch = self._with_held(type_, data, head)
                for r in batch:
                    self.conn.execute(insert, (self.run_id, r["seq"], audit.canonical(r).decode()))
        self._held.clear()
        if not batch:
            return None
        self._head = (int(batch[-1]["seq"]), str(batch[-1]["hash"]))
        return batch[-1]

    def _with_held(self, type_: str | None, data: Mapping[str, Any], head: tuple[int, str]) -> list[dict[str, Any]]:
        """The held records, then the new one (if any) chained after ``head``, the last of them."""
        return [*self._held, *([self._record(type_, data, head)] if type_ is not None else [])]

    def _record(self, type_: str, data: Mapping[str, Any], head: tuple[int, str]) -> dict[str, Any]:
        record: dict[str, Any] = {"ts": audit.utc_now(), "type": type_, **self.stamp, **data}
        self._chain(record, head)
        return record

    @staticmethod
    def _chain(record: dict[str, Any], head: tuple[int, str]) -> tuple[int, str]:
        """Put ``record`` after ``head`` (its number, predecessor and hash, updated in the dict its appender
        holds); the new head."""
        record.pop("hash", None)
        record["seq"], record["prev"] = head[0] + 1, head[1]
        record["hash"] = audit.digest(record)
        return int(record["seq"]), str(record["hash"])

    def _not_utf8(self, type_: str) -> AuditError:
        return AuditError(f"{self.store.where(self.run_id)}: a '{type_}' record holds text that is not valid "
                          "UTF-8; nothing was written and the run stops here")

    def _read_head(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, line FROM breakglass.records WHERE run_id = %s ORDER BY seq DESC "
                                "LIMIT 1", (self.run_id,)).fetchone()
        if row is None:
            return 0, audit.GENESIS
        last = _parse(row[1])
        if last is None or not isinstance(last.get("hash"), str):
            raise AuditError(f"{self.store.where(self.run_id)}: record {row[0]} is not a valid audit record; "
                             "nothing chains onto it: `breakglass audit verify` names what is wrong")
        return int(row[0]), str(last["hash"])

    def records(self) -> list[audit.AuditRecord]:
        return self.store.records(self.run_id)

    def close(self) -> None:
        # Held records left (an error on the engine's way out) are written now. When the database is what
        # stopped the run, its error is the one the operator reads: the held outcome is then lost as in a
        # crash, and resume asks about its step.
        try:
            if self._held:
                with suppress(AuditError):
                    self._written(None, {}, sync=True)
        finally:
            self._watchdog.close()
        if self.owned:
            self.conn.close()


class PostgresStore:
    """Runs in one PostgreSQL database, shared by every machine that points at it."""

    def __init__(self, url: str, check_schema: bool = True) -> None:
        self.url = url
        self.shown = shown(url)
        self._params = _params(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._held: dict[str, psycopg.Connection[Any]] = {}  # run id -> the session holding its lease
        if check_schema:
            self.require_schema()

    # --- connections and schema ---------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """A new session, autocommit (each append opens its own transaction), synchronous commit forced on."""
        try:
            # No server-side prepared statements: psycopg prepares a statement on its 5th use, and one prepared
            # in a pipeline that then fails (another writer took the record number) is gone on the server while
            # the client counts on it: "prepared statement _pg3_5 does not exist" at the next append.
            conn = psycopg.connect(**self._params, autocommit=True, prepare_threshold=None)
            # A server configured with synchronous_commit off would otherwise acknowledge records not yet on disk.
            conn.execute("SET synchronous_commit TO on")
            # The server notices a vanished client (laptop lid, cut network) and frees its lease in seconds.
            conn.execute("SET tcp_keepalives_idle TO 5; SET tcp_keepalives_interval TO 2; "
                         "SET tcp_keepalives_count TO 3")
        except psycopg.Error as exc:
            raise self.unreachable(exc, "cannot reach the run store") from None
        return conn

    def unreachable(self, exc: psycopg.Error, what: str) -> AuditError:
        return AuditError(f"{self.shown}: {what} ({_first_line(exc)})")

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    def query(self, text: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(text, args).fetchall()
        except psycopg.errors.UndefinedTable:
            raise self.missing_schema() from None
        except psycopg.Error as exc:
            if self._conn is not None and self._conn.closed:
                self._conn = None  # the next call reconnects: reads are safe to retry, appends are not
            raise self.unreachable(exc, "cannot read the run store") from None

    def schema_version(self) -> int:
        """The schema the database holds: 0 when it has none."""
        rows = self.conn.execute("SELECT to_regclass('breakglass.meta') IS NOT NULL").fetchall()
        if not rows[0][0]:
            return 0
        found = self.conn.execute("SELECT value FROM breakglass.meta WHERE key = 'schema_version'").fetchall()
        return int(found[0][0]) if found else 0

    def missing_schema(self) -> AuditError:
        return AuditError(f"{self.shown} holds no breakglass schema; create it with "
                          f"`breakglass store migrate --store {self.shown}`")

    def require_schema(self) -> None:
        """Refuse to work on a schema this breakglass does not know, saying what to run."""
        try:
            found = self.schema_version()
        except psycopg.Error as exc:
            raise self.unreachable(exc, "cannot read the schema version") from None
        if found == 0:
            raise self.missing_schema()
        if found < SCHEMA_VERSION:
            raise AuditError(f"{self.shown} holds breakglass schema version {found}; this breakglass needs "
                             f"{SCHEMA_VERSION}: run `breakglass store migrate --store {self.shown}` (it keeps every "
                             "run), then try again")
        if found > SCHEMA_VERSION:
            raise AuditError(f"{self.shown} holds breakglass schema version {found}, newer than this breakglass "
                             f"knows ({SCHEMA_VERSION}): upgrade breakglass on this machine")

    def migrate(self) -> tuple[int, int]:
        """Create or upgrade the schema; (version before, version after). Safe to run again, and concurrently."""
        try:
            with self.conn.transaction():
                # Two `store migrate` at once: the second waits, then finds nothing left to do.
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("schema migration"),))
                before = self.schema_version()
                if before > SCHEMA_VERSION:
                    raise AuditError(f"{self.shown} holds breakglass schema version {before}, newer than this "
                                     f"breakglass knows ({SCHEMA_VERSION}): upgrade breakglass; nothing was changed")
                for step in MIGRATIONS[before:]:
                    self.conn.execute(step)
                self.conn.execute("INSERT INTO breakglass.meta (key, value) VALUES ('schema_version', %s) "
                                  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))
        except psycopg.Error as exc:
            raise self.unreachable(exc, "cannot migrate the schema; nothing was changed") from None
        return before, SCHEMA_VERSION

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- RunStore ---------------------------------------------------------------------------------------------

    def where(self, run_id: str) -> str:
        return f"{self.shown} run {run_id}"

    def create(self, runbook_id: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for _ in range(8):
            run_id = f"{stamp}-{runbook_id[:40]}-{secrets.token_hex(3)}"
            if self.query("INSERT INTO breakglass.runs (id, runbook) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                          "RETURNING id", (run_id, runbook_id)):
                return run_id
        raise AuditError(f"{self.shown}: could not find a free run id; is something creating runs in a loop?")

    def resolve(self, ref: str) -> str:
        if ref == "last":
            started = []
            for run_id, line in self.query("SELECT run_id, line FROM breakglass.records WHERE seq = 1"):
                first = _parse(line)
                if first and first.get("type") == "run.started" and isinstance(first.get("ts"), str):
                    started.append((str(first["ts"]), str(run_id)))
            return latest(started)
        _valid_ref(ref)
        matches = [str(r[0]) for r in self.query("SELECT run_id FROM breakglass.records WHERE seq = 1 AND "
                                                 "run_id LIKE %s ESCAPE '\\'", (_like_prefix(ref),))]
        return choose(ref, matches, self.shown)

    def _existing(self, run_id: str) -> None:
        if not self.query("SELECT 1 FROM breakglass.runs WHERE id = %s", (run_id,)):
            raise RunNotFound(f"no run '{run_id}' in {self.shown}; `breakglass runs` lists them")

    def _rows(self, run_id: str) -> list[tuple[int, str]]:
        rows = [(int(r[0]), str(r[1])) for r in self.query(
            "SELECT seq, line FROM breakglass.records WHERE run_id = %s ORDER BY seq", (run_id,))]
        if not rows:
            self._existing(run_id)
        return rows

    def records(self, run_id: str) -> list[audit.AuditRecord]:
        out = []
        for seq, line in self._rows(run_id):
            rec = _parse(line)
            try:
                out.append(audit.AuditRecord.from_dict(rec or {}))
            except (KeyError, TypeError, ValueError):
                raise AuditError(f"{self.where(run_id)}: record {seq} is not a valid audit record (edited in the "
                                 "database?); `breakglass audit verify` names what is wrong") from None
        return out

    def read_lenient(self, run_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        records: list[dict[str, Any]] = []
        problems: list[str] = []
        for seq, line in self._rows(run_id):
            rec = _parse(line)
            if rec is None or "type" not in rec:
                problems.append(f"record {seq}: unreadable, left out of this report")
                continue
            rec.setdefault("seq", seq)
            rec.setdefault("ts", "")
            records.append(rec)
        return records, problems

    def verify(self, run_id: str, head: str | None = None) -> audit.Verdict:
        rows = self._rows(run_id)
        verdict = audit.verify_lines(((seq, (line + "\n").encode()) for seq, line in rows), head)
        # Rows are numbered by the database too: a gap is a row deleted behind the triggers' back.
        missing = [f"record {n}: missing (deleted from the database)" for n in _gaps([seq for seq, _ in rows])]
        problems = missing + [re.sub(r"^line (\d+)", r"record \1", p).replace("(the line was edited)",
                                                                              "(the row was edited)")
                              for p in verdict.problems]
        return audit.Verdict(not problems, verdict.records, verdict.head, problems, None, verdict.after_head)

    def set_aside_torn_tail(self, run_id: str) -> dict[str, Any] | None:
        return None  # a record is one transaction: it is in the database whole, or not at all

    @contextmanager
    def lock(self, run_id: str, holder: str = "") -> Iterator[None]:
        """The lease: a session-level advisory lock, held by a session that also carries the run's appends."""
        self._existing(run_id)
        conn = self.connect()
        try:
            try:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(run_id),)).fetchall()[0][0]
            except psycopg.Error as exc:
                raise self.unreachable(exc, f"cannot take the lease on run {run_id}") from None
            if not got:
                raise RunLocked(f"run {run_id} is being driven by another process ({self.driver(run_id)}); "
                                f"`breakglass watch {run_id}` follows it; if that driver is gone for good (a dead "
                                f"laptop), `breakglass resume {run_id} --take-over` breaks its lease")
            try:
                conn.execute("INSERT INTO breakglass.leases (run_id, operator, host, pid, backend) "
                             "VALUES (%s, %s, %s, %s, pg_backend_pid()) ON CONFLICT (run_id) DO UPDATE SET "
                             "operator = EXCLUDED.operator, host = EXCLUDED.host, pid = EXCLUDED.pid, "
                             "backend = EXCLUDED.backend, since = now()",
                             (run_id, holder or _who(), socket.gethostname(), os.getpid()))
            except psycopg.Error as exc:
                raise self.unreachable(exc, f"cannot record the lease on run {run_id}") from None
            self._held[run_id] = conn
            yield
        finally:
            self._held.pop(run_id, None)
            # Released before returning: closing alone lets the server drop the lock a moment later, and a
            # `runs` or resume right after would still see the run driven.
            with suppress(psycopg.Error):
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("SELECT pg_advisory_unlock_all()")
            conn.close()  # ends the session, and with it the lease whatever happened

    def driver(self, run_id: str) -> str:
        """Who holds the run's lease, as the holder wrote it ("someone" when the row is gone)."""
        rows = self.query("SELECT operator, host, pid, since FROM breakglass.leases WHERE run_id = %s", (run_id,))
        if not rows:
            return "someone"
        operator, host, pid, since = rows[0]
        return f"{operator} on {host}, pid {pid}, since {since:%Y-%m-%d %H:%M:%S %Z}"

    def take_over(self, run_id: str, confirm: Callable[[str], bool]) -> str | None:
        """Break a stuck lease: end the database session holding it, once ``confirm(holder)`` says yes.

        Who held it, or None when nobody did. Its process, if it still lives, finds its session gone at its
        next record and stops there, before acting.
        """
        self._existing(run_id)
        pids = [int(r[0]) for r in self.query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid::bigint = "
            "%s AND objid::bigint = %s AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            _key_parts(_lock_key(run_id)))]
        if not pids:
            return None
        holder = self.driver(run_id)
        if not confirm(holder):
            raise RunLocked(f"run {run_id} is still driven by {holder}; nothing was taken over")
        for pid in pids:
            try:
                ended = self.conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchall()[0][0]
            except psycopg.Error as exc:
                raise RunLocked(f"run {run_id}: cannot end the session holding its lease ({_first_line(exc)}); "
                                f"ask a database administrator to run SELECT pg_terminate_backend({pid})") from None
            if not ended:
                raise RunLocked(f"run {run_id}: the session holding its lease (backend {pid}) did not end in 5 s")
        return holder

    def is_driven(self, run_id: str) -> bool:
        return run_id in self._driven([run_id])

    def _driven(self, run_ids: list[str]) -> set[str]:
        keys = {_key_parts(_lock_key(r)): r for r in run_ids}
        held = self.query("SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
                          "AND granted AND objsubid = 1 AND database = "
                          "(SELECT oid FROM pg_database WHERE datname = current_database())")
        return {keys[(int(c), int(o))] for c, o in held if (int(c), int(o)) in keys}

    def writer(self, run_id: str, stamp: Mapping[str, Any]) -> PostgresLog:
        self._existing(run_id)
        held = self._held.get(run_id)
        # The driver appends over its lease's session: if that session is gone, so is the right to append.
        return PostgresLog(self, held or self.connect(), run_id, stamp, owned=held is None)

    def list_runs(self) -> list[RunSummary]:
        # Only what summarise looks at: the first record, and those that say how the run ended or went on.
        rows = self.query("SELECT run_id, line FROM breakglass.records WHERE seq = 1 OR line LIKE %s "
                          "OR line LIKE %s ORDER BY run_id, seq",
                          ('%"type":"run.finished"%', '%"type":"run.resumed"%'))
        by_run: dict[str, list[audit.AuditRecord]] = {}
        for run_id, line in rows:
            rec = _parse(line)
            try:
                by_run.setdefault(str(run_id), []).append(audit.AuditRecord.from_dict(rec or {}))
            except (KeyError, TypeError, ValueError):
                continue  # an edited row: `audit verify` names it; the list shows what it can
        driven = self._driven(list(by_run))
        drivers = {str(r[0]): f"{r[1]} on {r[2]}, pid {r[3]}" for r in self.query(
            "SELECT run_id, operator, host, pid FROM breakglass.leases WHERE run_id = ANY(%s)", (list(driven),))}
        out = [replace(s, driver=drivers.get(run_id, "someone") if run_id in driven else "")
               for run_id, recs in by_run.items() if (s := summarise(run_id, recs, run_id in driven))]
        return sorted(out, key=lambda r: (r.started, r.id))

    def adopt(self, run_id: str, runbook: str, records: list[audit.AuditRecord], verdict: audit.Verdict) -> str:
        """Bring a run from another store in, byte for byte, if its chain verifies; say what was done.

        Copying again is harmless: a run already here whole is left alone, one here in part gets the rest.
        """
        lines = [audit.canonical(r.to_dict()).decode() for r in records]
        if not verdict.ok or not records or verdict.head != records[-1].hash:
            raise AuditError(f"{run_id}: its chain does not verify ({'; '.join(verdict.problems) or 'no records'});"
                             " run `breakglass audit verify` on it (and resume a run torn by a crash) first")
        have = [str(r[0]) for r in self.query("SELECT line FROM breakglass.records WHERE run_id = %s ORDER BY seq",
                                              (run_id,))]
        if have != lines[:len(have)]:
            raise AuditError(f"{self.where(run_id)} exists and differs from the run being copied; nothing copied")
        if len(have) == len(lines):
            return "present"
        try:
            with self.conn.transaction():
                self.conn.execute("INSERT INTO breakglass.runs (id, runbook) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                  (run_id, runbook))
                with self.conn.cursor() as cur:
                    cur.executemany("INSERT INTO breakglass.records (run_id, seq, line) VALUES (%s, %s, %s)",
                                    [(run_id, i, line) for i, line in enumerate(lines, 1) if i > len(have)])
        except psycopg.Error as exc:
            raise self.unreachable(exc, f"cannot copy run {run_id}; nothing of it was copied") from None
        after = self.verify(run_id)
        if not after.ok or after.head != verdict.head:
            raise AuditError(f"{self.where(run_id)}: copied, but does not verify there: {'; '.join(after.problems)}")
        return "copied"

    # --- watching ---------------------------------------------------------------------------------------------

    def follow(self, run_id: str, after: int = 0, poll: float = 1.0) -> Iterator[list[audit.AuditRecord]]:
        """Batches of the run's records with seq > ``after``, each as soon as it is committed (LISTEN/NOTIFY).

        Yields an empty batch at least every ``poll`` seconds, so the caller can stop.
        """
        self._existing(run_id)
        conn = self.connect()
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            while True:
                # Listening before reading: a record committed in between is read now or announced next.
                rows = self.query("SELECT seq, line FROM breakglass.records WHERE run_id = %s AND seq > %s "
                                  "ORDER BY seq", (run_id, after))
                batch = [audit.AuditRecord.from_dict(_parse(line) or {}) for _, line in rows]
                if rows:
                    after = int(rows[-1][0])
                yield batch
                _wait_notify(conn, run_id, poll)
        finally:
            conn.close()


def _wait_notify(conn: psycopg.Connection[Any], run_id: str, timeout: float) -> bool:
    """Wait up to ``timeout`` for a NOTIFY about ``run_id``; drain every notification that came."""
    deadline = time.monotonic() + timeout
    prefix = f"{run_id} "
    hit = False
    while not hit:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            ready, _, _ = select.select([conn.fileno()], [], [], left)
            if not ready:
                return False
            for note in conn.notifies(timeout=0, stop_after=None):
                hit = hit or note.payload.startswith(prefix)
        except psycopg.Error as exc:
            raise AuditError(f"lost the connection to the run store while watching ({_first_line(exc)})") from None
    return True


def append_timeout() -> float:
    """Seconds an append may take before the driver gives up on the database and stops (BREAKGLASS_STORE_TIMEOUT)."""
    try:
        return max(0.1, float(os.environ.get("BREAKGLASS_STORE_TIMEOUT", "") or APPEND_TIMEOUT))
    except ValueError:
        raise InputError("BREAKGLASS_STORE_TIMEOUT takes a number of seconds") from None


class _Watchdog:
    """Cuts the log's session when an append has not finished by its deadline.

    A network that silently drops everything (a cut cable, a captive Wi-Fi, a hung proxy) would otherwise
    leave the driver waiting forever on a record; cut, the append fails, and the run stops before acting.
    The record may still have reached the server: it is then in the chain, and resume reads it from there.
    One thread per log that looks at the deadline a few times per timeout: arming wakes nobody (a timer
    thread per append cost ~0.4 ms, a wake-up per append was still most of an append's cost on a busy
    machine), and the cut comes at most a quarter of the timeout late.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn, self.fired = conn, False
        self._cond = threading.Condition()
        self._armed = threading.Lock()
        self._deadline: float | None = None
        self._tick = 1.0
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        with self._armed:  # never contended for long: it guards the deadline, nobody waits on it
            self.fired, self._deadline, self._tick = False, time.monotonic() + seconds, seconds / 4
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="breakglass-store-watchdog", daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        with self._armed:
            self._deadline = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                self._cond.wait(self._tick)
                with self._armed:  # an append that ends now is not cut after it ended
                    if self._deadline is None or time.monotonic() < self._deadline:
                        continue
                    self.fired, self._deadline = True, None
                    with suppress(OSError), socket.socket(fileno=os.dup(self.conn.fileno())) as sock:
                        sock.shutdown(socket.SHUT_RDWR)


def _gaps(seqs: list[int]) -> list[int]:
    present = set(seqs)
    return [n for n in range(1, max(seqs, default=0)) if n not in present]


def _parse(line: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _who() -> str:
    from engine.gates import default_operator

    return default_operator()
