"""Hand-over after a crash, on the PostgreSQL store: the driver is SIGKILLed at many points (after an append
returned: a record committed, or an outcome held back to go with the next record and so lost; or with a
record's INSERT sent but not committed), then another "machine" (another BREAKGLASS_HOME, another operator)
resumes the run from the database alone. Every mutating step's effect
happens exactly once, the chain verifies, and the hand-over is in the log.

The runbook, its expected records and the in-doubt reasoning are the file store's crash test's
(tests/engine/test_crash_resume.py); the CLI runs in forked children of one pre-imported process, as there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")

from engine.errors import RunNotFound  # noqa: E402
from engine.machine import replay  # noqa: E402
from engine.store import open_store  # noqa: E402
from tests.engine.test_crash_resume import (  # noqa: E402
    FULL_RUN_RECORDS,
    LINES,
    MUTATING,
    RUNBOOK,
    STEP_IDS,
    approvals,
    wait_for_orphans,
)
from tests.lab.postgres import PostgresServer  # noqa: E402

HARNESS = r'''
import json, os, signal, sys
import engine.cli as cli
from engine import audit, loader, session  # noqa: F401  (warm imports before forking)
from engine.store import postgres as pg
from actions import core, shell  # noqa: F401

def child(cmd):
    os.environ.update(cmd.get("env", {}))
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    out = os.open(cmd["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(cmd["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    kill_after, uncommitted = cmd.get("kill_after"), cmd.get("uncommitted")
    original = pg.PostgresLog.append
    APPENDS = {pg.append_statement(n) for n in range(1, 8)}  # a record, with the outcomes held before it
    count = [0]

    class KillAfterInsert:
        """The session, except that the record never commits: the driver dies just before the append that
        is one statement (its own transaction), or, on the path that reads the head first, after the INSERT
        was sent but before COMMIT."""
        def __init__(self, conn):
            self._conn = conn
        def __getattr__(self, name):
            return getattr(self._conn, name)
        def execute(self, query, *args, **kwargs):
            if query in APPENDS:
                os.kill(os.getpid(), signal.SIGKILL)
            result = self._conn.execute(query, *args, **kwargs)
            if str(query).startswith("INSERT INTO breakglass.records"):
                os.kill(os.getpid(), signal.SIGKILL)
            return result

    def append(self, type_, data, sync=True, hold=False):
        count[0] += 1
        if count[0] == uncommitted:
            self.conn = KillAfterInsert(self.conn)
        rec = original(self, type_, data, sync, hold)
        if count[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return rec

    pg.PostgresLog.append = append
    sys.argv = ["breakglass", *cmd["argv"]]
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

for line in sys.stdin:
    cmd = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(cmd)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
'''


class ForkServer:
    def __init__(self, tmp: Path) -> None:
        script = tmp / "harness.py"
        script.write_text(HARNESS)
        self.tmp, self.n = tmp, 0
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def run(self, argv: list[str], env: dict[str, str], **kill: int) -> tuple[int, str, str]:
        self.n += 1
        out, err = self.tmp / f"out-{self.n}.txt", self.tmp / f"err-{self.n}.txt"
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "stdout": str(out), "stderr": str(err),
                                          **kill}) + "\n")
        code = int(json.loads(self.proc.stdout.readline())["code"])
        return code, out.read_text(), err.read_text()

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    srv = ForkServer(tmp_path_factory.mktemp("pg-forkserver"))
    yield srv
    srv.close()


def kill_points() -> list[dict[str, int]]:
    committed = [{"kill_after": n} for n in (1, 2, 3, 5, 8, 9, 12, 13, 14, 17, 20, 22, 26, 29, 33, 36, 38, 40,
                                             FULL_RUN_RECORDS)]
    uncommitted = [{"uncommitted": n} for n in (1, 2, 9, 13, 14, 22, 38, FULL_RUN_RECORDS)]
    return committed + uncommitted


@pytest.mark.parametrize("point", kill_points(), ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
def test_kill_minus_nine_then_another_machine_takes_over(server: ForkServer, postgres: PostgresServer,
                                                         tmp_path: Path, point: dict[str, int]) -> None:
    url = postgres.url(postgres.new_database())
    open_store(url, check_schema=False).migrate()  # type: ignore[attr-defined]
    runbook, out = tmp_path / "crash.yaml", tmp_path / "out.txt"
    runbook.write_text(RUNBOOK)
    alice = {"BREAKGLASS_HOME": str(tmp_path / "alice"), "BREAKGLASS_STORE": url}
    bob = {"BREAKGLASS_HOME": str(tmp_path / "bob"), "BREAKGLASS_STORE": url}
    code, _, err = server.run(["run", str(runbook), "-i", f"out={out}", "--operator", "alice", *approvals()],
                              alice, **point)
    assert code == -signal.SIGKILL, (code, err)
    store = open_store(url)
    if point.get("uncommitted") == 1:  # killed before run.started was committed: the run never began
        with pytest.raises(RunNotFound):
            store.resolve("last")
        assert not out.exists()
        return
    run_id = store.resolve("last")
    assert store.verify(run_id).ok  # a record is committed whole or not at all
    if "uncommitted" in point:  # the killed INSERT never landed, nor the outcome held to go with it, if any
        assert point["uncommitted"] - 2 <= len(store.records(run_id)) <= point["uncommitted"] - 1

    wait_for_orphans(out)
    doubtful = replay(STEP_IDS, [r.to_dict() for r in store.records(run_id)]).in_doubt()
    extra: list[str] = []
    if doubtful:  # bob looks at the world, as an operator would, and says what happened
        line = LINES[MUTATING.index(doubtful[0])]
        extra = ["--in-doubt", "done" if out.exists() and line in out.read_text().split() else "rerun"]
    deadline = time.monotonic() + 30
    while True:  # the server frees the dead driver's lease once it sees the connection closed
        code, stdout, err = server.run(["resume", run_id, "--operator", "bob", *approvals(), *extra], bob)
        if code != 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert code == 0, (point, stdout, err)

    assert store.verify(run_id).ok
    records = [r.to_dict() for r in store.records(run_id)]
    assert records[-1]["type"] == "run.finished" and records[-1]["status"] == "succeeded"
    assert out.read_text().split() == LINES, f"each mutating step exactly once: {out.read_text()!r}"
    resumed = [r for r in records if r["type"] == "run.resumed"]
    if point.get("kill_after") == FULL_RUN_RECORDS:
        assert resumed == [] and "already finished" in err  # killed after the end: nothing to hand over
    else:
        assert len(resumed) == 1 and resumed[0]["operator"] == "bob"
