"""The crash test: kill -9 a run at many points; the log always verifies and resume finishes the run with
every mutating step's effect exactly once.

Each mutating step appends its own line to a file, so "executed twice" is visible as a doubled line. Kill
points come three ways:

- deterministic: the CLI process SIGKILLs itself right after its N-th audit append (N = 1 .. every record),
  or half-way through writing the N-th record (a torn line);
- external: this test sends SIGKILL while a slow step is running (before and after its effect);
- chained: the resume is itself killed, then resumed again.

A CLI process costs ~1 s of imports here, so the deterministic points run through a small fork server: a
Python process that imports breakglass once, then forks one child per command, and the child runs the real
CLI entry point (``engine.cli.main``). A few points also go through the installed ``breakglass``
script end to end.

What the engine does with a torn last line (decided here): ``audit verify`` fails (exit 6) and names the
line as incomplete; ``resume`` moves the torn bytes to a side file, records that in ``run.resumed`` and goes
on (nothing acts on the world before its record is complete, so a torn record announced nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.machine import replay

BG = shutil.which("breakglass") or "breakglass"
MUTATING = ["write_a", "write_b", "write_c", "write_d", "write_e"]
LINES = ["a", "b", "c", "d", "e"]
STEP_IDS = ["probe", "write_a", "count_a", "write_b", "settle", "write_c", "remark", "write_d", "check",
            "write_e"]

RUNBOOK = """
id: crash
title: a run to kill at every point
inputs:
  out: {type: string}
steps:
  - id: probe
    title: read something first
    action: shell.run
    with: {argv: [echo, ready], read_only: true}
  - id: write_a
    title: append a
    action: shell.run
    with: {argv: [sh, -c, 'echo a >> "$0"', "{{ inputs.out }}"]}
  - id: count_a
    title: read the file back
    action: shell.run
    with: {argv: [grep, -c, "^a$", "{{ inputs.out }}"], read_only: true}
    expect: "{{ result.stdout.strip() == '1' }}"
  - id: write_b
    title: append b
    action: shell.run
    with: {argv: [sh, -c, 'echo b >> "$0"', "{{ inputs.out }}"]}
  - id: settle
    title: wait a moment
    action: wait.sleep
    with: {seconds: 0.02}
  - id: write_c
    title: append c, then take a while
    action: shell.run
    with: {argv: [sh, -c, 'echo c >> "$0"; sleep 0.25', "{{ inputs.out }}"]}
  - id: remark
    title: a note
    action: log.note
    with: {text: "halfway: {{ steps.probe.output.stdout.strip() }}"}
  - id: write_d
    title: take a while, then append d
    action: shell.run
    with: {argv: [sh, -c, 'sleep 0.25; echo d >> "$0"', "{{ inputs.out }}"]}
  - id: check
    title: check the file
    action: assert
    with: {that: "{{ steps.count_a.ok }}"}
  - id: write_e
    title: append e
    action: shell.run
    with: {argv: [sh, -c, 'echo e >> "$0"', "{{ inputs.out }}"]}
"""

# Records of one uninterrupted run: run.started, 5 reads x 2, 5 gated writes x 6, run.finished.
FULL_RUN_RECORDS = 1 + 5 * 2 + 5 * 6 + 1

HARNESS = r'''
import json, os, signal, sys
import engine.cli as cli
from engine import audit, loader, session  # noqa: F401  (warm imports before forking)
from actions import core, shell  # noqa: F401

def child(cmd):
    os.environ.update(cmd.get("env", {}))
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    out = os.open(cmd["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(cmd["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    kill_after, torn_at = cmd.get("kill_after"), cmd.get("torn_at")
    original = audit.AuditWriter.append
    count = [0]

    class TearingOs:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def write(fd, data):
            os.write(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

    def append(self, type_, data, sync=True, hold=False):
        count[0] += 1
        if count[0] == torn_at:
            audit.os = TearingOs()
        rec = original(self, type_, data, sync, hold)
        if count[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return rec

    audit.AuditWriter.append = append
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
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
'''


class ForkServer:
    """Runs CLI commands in forked children of one pre-imported Python process."""

    def __init__(self, tmp: Path) -> None:
        script = tmp / "harness.py"
        script.write_text(HARNESS)
        self.tmp = tmp
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.n = 0

    def start(self, argv: list[str], home: Path, **kill: int) -> int:
        self.n += 1
        self.out, self.err = self.tmp / f"out-{self.n}.txt", self.tmp / f"err-{self.n}.txt"
        cmd = {"argv": argv, "env": {"BREAKGLASS_HOME": str(home)}, "stdout": str(self.out),
               "stderr": str(self.err), **kill}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        return int(json.loads(self.proc.stdout.readline())["pid"])

    def wait(self) -> tuple[int, str, str]:
        assert self.proc.stdout
        code = int(json.loads(self.proc.stdout.readline())["code"])
        return code, self.out.read_text(), self.err.read_text()

    def run(self, argv: list[str], home: Path, **kill: int) -> tuple[int, str, str]:
        self.start(argv, home, **kill)
        return self.wait()

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    srv = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def runbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runbook") / "crash.yaml"
    path.write_text(RUNBOOK)
    return path


def approvals() -> list[str]:
    return [arg for sid in MUTATING for arg in ("--approve", sid)]


def run_argv(runbook: Path, out: Path) -> list[str]:
    return ["run", str(runbook), "-i", f"out={out}", "--operator", "crash-test", *approvals()]


def the_run(home: Path) -> tuple[str, Path]:
    logs = list((home / "runs").glob("*/audit.jsonl"))
    assert len(logs) == 1, logs
    return logs[0].parent.name, logs[0]


def wait_for_orphans(marker: Path, deadline: float = 5.0) -> None:
    """A SIGKILLed engine cannot stop its step's command (it runs in its own session): let it finish first,
    as an operator would before looking at the world."""
    needle = str(marker).encode()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        busy = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if needle in (proc / "cmdline").read_bytes():
                    busy = True
                    break
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.02)
    raise AssertionError(f"a command writing {marker} is still running")


def in_doubt_choice(log: Path, out: Path) -> list[str]:
    """What the operator answers about an in-doubt step: look at the world (the file) and say."""
    records = [r.to_dict() for r in audit.read(log)[0]]
    state = replay(STEP_IDS, records)
    doubtful = state.in_doubt()
    if not doubtful:
        return []
    assert len(doubtful) == 1
    line = LINES[MUTATING.index(doubtful[0])]
    present = out.exists() and line in out.read_text().split()
    return ["--in-doubt", "done" if present else "rerun"]


def assert_verifies_after_crash(server: ForkServer, home: Path, run_id: str, log: Path) -> bool:
    """`audit verify` on what the killed process wrote; True when the last line is torn."""
    code, out, err = server.run(["audit", "verify", run_id], home)
    torn = not log.read_bytes().endswith(b"\n")
    if torn:
        lineno = log.read_bytes().count(b"\n") + 1
        assert code == 6, out + err
        assert f"line {lineno}: incomplete" in err and err.count("line ") == 1, err
    else:
        assert code == 0, out + err
        assert out.startswith("ok:")
    return torn


def assert_finished_exactly_once(home: Path, run_id: str, log: Path, out: Path) -> None:
    verdict = audit.verify(log)
    assert verdict.ok, verdict.problems
    records = [r.to_dict() for r in audit.read(log)[0]]
    assert records[-1]["type"] == "run.finished" and records[-1]["status"] == "succeeded", records[-1]
    assert out.read_text().split() == LINES, f"each mutating step's line exactly once: {out.read_text()!r}"
    for sid in MUTATING:  # and the log agrees: nothing applied after it succeeded
        kinds = [r["type"] for r in records if r.get("step") == sid]
        first_done = kinds.index("step.succeeded")
        assert "step.applying" not in kinds[first_done:], (sid, kinds)


def recover(server: ForkServer, home: Path, out: Path, kill_resume: int | None = None) -> tuple[int, str]:
    """Verify, decide any in-doubt step by looking at the world, resume (optionally killed again)."""
    run_id, log = the_run(home)
    torn = assert_verifies_after_crash(server, home, run_id, log)
    wait_for_orphans(out)
    extra = in_doubt_choice(log, out)
    kill = {"kill_after": kill_resume} if kill_resume else {}
    code, stdout, err = server.run(["resume", run_id, *approvals(), "--operator", "crash-test", *extra], home,
                                   **kill)
    if torn:
        assert "cut short by a crash" in stdout, stdout
        assert list(log.parent.glob("audit.jsonl.torn-line-*")), "the torn bytes are kept as evidence"
    return code, err


def kill_points() -> list[dict[str, int]]:
    points = [{"kill_after": n} for n in range(1, FULL_RUN_RECORDS + 1)]
    # Torn writes: in a step.applying, a gate.approved, a step.succeeded of a write, run.finished.
    points += [{"torn_at": n} for n in (2, 9, 13, 14, 22, 38, FULL_RUN_RECORDS)]
    return points


def test_full_run_has_the_expected_records(server: ForkServer, runbook: Path, tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out.txt"
    code, stdout, err = server.run(run_argv(runbook, out), home)
    assert code == 0, stdout + err
    run_id, log = the_run(home)
    assert len(audit.read(log)[0]) == FULL_RUN_RECORDS
    assert out.read_text().split() == LINES


@pytest.mark.slow
def test_kill_minus_nine_at_every_record(server: ForkServer, runbook: Path, tmp_path: Path) -> None:
    tried: list[str] = []
    for i, point in enumerate(kill_points()):
        home, out = tmp_path / f"home-{i}", tmp_path / f"out-{i}.txt"
        code, _, err = server.run(run_argv(runbook, out), home, **point)
        assert code == -signal.SIGKILL, (point, code, err)
        code, err = recover(server, home, out)
        assert code == 0, (point, err)
        run_id, log = the_run(home)
        assert_finished_exactly_once(home, run_id, log, out)
        tried.append(json.dumps(point))
    assert len(set(tried)) >= 49


def _wait_until(predicate: Any, what: str, limit: float = 20.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.003)


def _applying(home: Path, step: str) -> bool:
    logs = list((home / "runs").glob("*/audit.jsonl"))
    if not logs:
        return False
    records, _ = audit.read(logs[0])
    return any(r.type == "step.applying" and r.get("step") == step for r in records)


@pytest.mark.parametrize(("step", "delay", "line"), [
    ("write_c", 0.0, "c"),     # its line is written, the command still running: in doubt, done
    ("write_c", 0.1, "c"),
    ("write_d", 0.02, None),   # the command is sleeping before its line: in doubt; the orphan finishes it
    ("write_d", 0.15, None),
])
def test_kill_inside_a_slow_step(server: ForkServer, runbook: Path, tmp_path: Path, step: str, delay: float,
                                 line: str | None) -> None:
    home, out = tmp_path / "home", tmp_path / "out.txt"
    pid = server.start(run_argv(runbook, out), home)
    if line:
        _wait_until(lambda: out.exists() and line in out.read_text().split(), f"line {line}")
    else:
        _wait_until(lambda: _applying(home, step), f"{step} applying")
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    code, _, _ = server.wait()
    assert code == -signal.SIGKILL
    run_id, log = the_run(home)
    assert replay(STEP_IDS, [r.to_dict() for r in audit.read(log)[0]]).in_doubt() == [step]
    code, err = recover(server, home, out)
    assert code == 0, err
    assert_finished_exactly_once(home, run_id, log, out)


@pytest.mark.parametrize(("first", "second"), [(9, 2), (14, 4), (20, 7), (27, 1), (33, 3)])
def test_the_resume_itself_killed(server: ForkServer, runbook: Path, tmp_path: Path, first: int,
                                  second: int) -> None:
    home, out = tmp_path / "home", tmp_path / "out.txt"
    code, _, _ = server.run(run_argv(runbook, out), home, kill_after=first)
    assert code == -signal.SIGKILL
    code, err = recover(server, home, out, kill_resume=second)
    assert code == -signal.SIGKILL, err
    code, err = recover(server, home, out)
    assert code == 0, err
    run_id, log = the_run(home)
    assert_finished_exactly_once(home, run_id, log, out)
    assert sum(1 for r in audit.read(log)[0] if r.type == "run.resumed") == 2


def _cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BG, *argv], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120, check=False)


@pytest.mark.parametrize("lines_before_kill", [6, 19, 31])
def test_end_to_end_with_the_installed_cli(runbook: Path, tmp_path: Path, lines_before_kill: int) -> None:
    """The real `breakglass` script, killed from outside when its log reaches N lines."""
    home, out = tmp_path / "home", tmp_path / "out.txt"
    env = {**os.environ, "BREAKGLASS_HOME": str(home)}
    proc = subprocess.Popen([BG, *run_argv(runbook, out)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def reached() -> bool:
            logs = list((home / "runs").glob("*/audit.jsonl"))
            return bool(logs) and logs[0].read_bytes().count(b"\n") >= lines_before_kill

        _wait_until(reached, f"{lines_before_kill} lines", limit=60)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    run_id, log = the_run(home)
    verdict = _cli(["audit", "verify", run_id], env)
    assert verdict.returncode == 0, verdict.stderr
    wait_for_orphans(out)
    doubt = in_doubt_choice(log, out)
    resumed = _cli(["resume", run_id, *approvals(), "--operator", "crash-test", *doubt], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming run" in resumed.stdout
    assert_finished_exactly_once(home, run_id, log, out)
    listed = json.loads(_cli(["runs", "--json"], env).stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(run_id, "succeeded")]


# --- the same sweep through a runbook that calls another (engine.calls) ----------------------------------

NEST_PARENT = """
id: crash-nest
title: a run to kill inside the runbook it calls
inputs:
  out: {type: string}
steps:
  - id: write_a
    title: append a
    action: shell.run
    with: {argv: [sh, -c, 'echo a >> "$0"', "{{ inputs.out }}"]}
  - id: inner
    title: run crash-child
    action: runbook.run
    with: {runbook: crash-child, inputs: {out: "{{ inputs.out }}"}}
  - id: after
    title: read what the child said
    action: assert
    with: {that: "{{ steps.inner.output.count == '1' }}"}
  - id: write_e
    title: append e
    action: shell.run
    with: {argv: [sh, -c, 'echo e >> "$0"', "{{ inputs.out }}"]}
"""

NEST_CHILD = """
id: crash-child
title: the called runbook
inputs:
  out: {type: string}
outputs:
  count: "{{ steps.count_b.output.stdout.strip() }}"
steps:
  - id: write_b
    title: append b
    action: shell.run
    with: {argv: [sh, -c, 'echo b >> "$0"', "{{ inputs.out }}"]}
  - id: count_b
    title: read the file back
    action: shell.run
    with: {argv: [grep, -c, "^b$", "{{ inputs.out }}"], read_only: true}
  - id: write_c
    title: append c, then take a while
    action: shell.run
    with: {argv: [sh, -c, 'echo c >> "$0"; sleep 0.25', "{{ inputs.out }}"]}
  - id: write_d
    title: take a while, then append d
    action: shell.run
    with: {argv: [sh, -c, 'sleep 0.25; echo d >> "$0"', "{{ inputs.out }}"]}
"""

NEST_LINES = {"write_a": "a", "inner.write_b": "b", "inner.write_c": "c", "inner.write_d": "d", "write_e": "e"}
NEST_IDS = ["write_a", "inner", "inner.write_b", "inner.count_b", "inner.write_c", "inner.write_d", "after",
            "write_e"]
NEST_GATES = [*NEST_LINES, "inner"]


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nested")
    (folder / "crash-child.yaml").write_text(NEST_CHILD)
    path = folder / "crash-nest.yaml"
    path.write_text(NEST_PARENT)
    return path


def nest_approvals() -> list[str]:
    return [arg for sid in NEST_GATES for arg in ("--approve", sid)]


def nest_recover(server: ForkServer, home: Path, out: Path) -> tuple[int, str]:
    run_id, log = the_run(home)
    assert_verifies_after_crash(server, home, run_id, log)
    wait_for_orphans(out)
    state = replay(NEST_IDS, [r.to_dict() for r in audit.read(log)[0]])
    extra: list[str] = []
    for sid in state.in_doubt():  # look at the world (the file), then say
        assert sid in NEST_LINES, sid
        present = out.exists() and NEST_LINES[sid] in out.read_text().split()
        extra = ["--in-doubt", "done" if present else "rerun"]
    code, _, err = server.run(["resume", run_id, *nest_approvals(), "--operator", "crash-test", *extra], home)
    return code, err


def assert_nested_finished_exactly_once(log: Path, out: Path) -> None:
    verdict = audit.verify(log)
    assert verdict.ok, verdict.problems
    records = [r.to_dict() for r in audit.read(log)[0]]
    assert records[-1]["type"] == "run.finished" and records[-1]["status"] == "succeeded", records[-1]
    assert out.read_text().split() == LINES, f"each mutating step's line exactly once: {out.read_text()!r}"
    state = replay(NEST_IDS, records)
    assert state.steps["inner"].output == {"count": "1"}, "the child's outputs are the call's output"
    for sid in NEST_LINES:
        kinds = [r["type"] for r in records if r.get("step") == sid]
        assert "step.applying" not in kinds[kinds.index("step.succeeded"):], (sid, kinds)


def test_nested_full_run(server: ForkServer, nested: Path, tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out.txt"
    code, stdout, err = server.run(["run", str(nested), "-i", f"out={out}", *nest_approvals()], home)
    assert code == 0, stdout + err
    run_id, log = the_run(home)
    assert_nested_finished_exactly_once(log, out)
    heads = [r for r in audit.read(log)[0] if r.type == "run.started"]
    assert len(heads) == 1, "the child runs inside the caller's run: one log, one chain"


def _nested_points(server: ForkServer, nested: Path, tmp_path: Path) -> int:
    home, out = tmp_path / "count-home", tmp_path / "count-out.txt"
    code, _, err = server.run(["run", str(nested), "-i", f"out={out}", *nest_approvals()], home)
    assert code == 0, err
    return len(audit.read(the_run(home)[1])[0])


def _kill_nested_at(server: ForkServer, nested: Path, tmp_path: Path, n: int) -> None:
    home, out = tmp_path / f"home-{n}", tmp_path / f"out-{n}.txt"
    code, _, err = server.run(["run", str(nested), "-i", f"out={out}", "--operator", "crash-test",
                               *nest_approvals()], home, kill_after=n)
    assert code == -signal.SIGKILL, (n, code, err)
    code, err = nest_recover(server, home, out)
    assert code == 0, (n, err)
    assert_nested_finished_exactly_once(the_run(home)[1], out)


@pytest.mark.parametrize("n", [9, 15, 18, 23, 29])  # the call's gate; in the child: applying (in doubt), a read
def test_kill_inside_the_called_runbook(server: ForkServer, nested: Path, tmp_path: Path, n: int) -> None:
    _kill_nested_at(server, nested, tmp_path, n)


@pytest.mark.slow
def test_kill_minus_nine_at_every_record_of_a_nested_run(server: ForkServer, nested: Path,
                                                         tmp_path: Path) -> None:
    total = _nested_points(server, nested, tmp_path)
    for n in range(1, total + 1):
        _kill_nested_at(server, nested, tmp_path, n)


# --- through a loop: each item of a write loop is a step of its own for the crash, the resume and doubt --

LOOP_ITEMS = ["p", "q", "r", "s"]
LOOP_RUNBOOK = """
id: crash-loop
title: a loop to kill at every point
inputs:
  out: {type: string}
steps:
  - id: append
    title: append each line
    for_each: [p, q, r, s]
    action: shell.run
    with: {argv: [sh, -c, 'echo "$1" >> "$0"', "{{ inputs.out }}", "{{ item }}"]}
"""
# run.started; the loop's step.started and loop.expanded; per item step.started + step.planned; the one
# gate (asked, approved); per item step.applying + step.succeeded; the loop's step.succeeded; run.finished.
LOOP_RUN_RECORDS = 1 + 2 + 2 * 4 + 2 + 2 * 4 + 1 + 1


@pytest.fixture(scope="module")
def loop_runbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runbook") / "crash-loop.yaml"
    path.write_text(LOOP_RUNBOOK)
    return path


def loop_argv(runbook: Path, out: Path) -> list[str]:
    return ["run", str(runbook), "-i", f"out={out}", "--operator", "crash-test", "--approve", "append"]


def recover_loop(server: ForkServer, home: Path, out: Path) -> tuple[int, str, list[str]]:
    """Verify, answer for the item in doubt from the file (at most one: items apply one at a time), resume."""
    run_id, log = the_run(home)
    assert_verifies_after_crash(server, home, run_id, log)
    doubtful = replay(["append"], [r.to_dict() for r in audit.read(log)[0]]).in_doubt()
    assert len(doubtful) <= 1, doubtful
    extra: list[str] = []
    if doubtful:
        line = LOOP_ITEMS[int(doubtful[0].removeprefix("append[").rstrip("]"))]
        extra = ["--in-doubt", "done" if out.exists() and line in out.read_text().split() else "rerun"]
    code, _, err = server.run(["resume", run_id, "--approve", "append", "--operator", "crash-test", *extra], home)
    return code, err, doubtful


def assert_loop_finished_exactly_once(home: Path, out: Path) -> list[dict[str, Any]]:
    run_id, log = the_run(home)
    records = [r.to_dict() for r in audit.read(log)[0]]
    assert records[-1]["type"] == "run.finished" and records[-1]["status"] == "succeeded", records[-1]
    assert out.read_text().split() == LOOP_ITEMS, f"each item's line exactly once: {out.read_text()!r}"
    state = replay(["append"], records)
    assert all(str(state.steps[f"append[{i}]"].status) == "succeeded" for i in range(4))
    return records


def test_a_loop_run_has_the_expected_records(server: ForkServer, loop_runbook: Path, tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out.txt"
    code, stdout, err = server.run(loop_argv(loop_runbook, out), home)
    assert code == 0, stdout + err
    assert len(audit.read(the_run(home)[1])[0]) == LOOP_RUN_RECORDS


def test_kill_during_item_k_resumes_the_items_after_it_and_asks_about_k(server: ForkServer, loop_runbook: Path,
                                                                      tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out.txt"
    # Killed right after item 2's step.applying: items 0 and 1 are done, 2 is in doubt, 3 never applied.
    applying_2 = 1 + 2 + 2 * 4 + 2 + 2 * 2 + 1
    code, _, _ = server.run(loop_argv(loop_runbook, out), home, kill_after=applying_2)
    assert code == -signal.SIGKILL
    before = len(audit.read(the_run(home)[1])[0])
    code, err, doubtful = recover_loop(server, home, out)
    assert code == 0, err
    assert doubtful == ["append[2]"]
    records = assert_loop_finished_exactly_once(home, out)[before:]
    assert [r["step"] for r in records if r["type"] == "step.in_doubt"] == ["append[2]"]  # asked: rerun
    assert [r["step"] for r in records if r["type"] == "step.applying"] == ["append[2]", "append[3]"]


@pytest.mark.slow
def test_kill_minus_nine_at_every_record_of_a_loop(server: ForkServer, loop_runbook: Path, tmp_path: Path) -> None:
    for n in range(1, LOOP_RUN_RECORDS + 1):
        home, out = tmp_path / f"home-{n}", tmp_path / f"out-{n}.txt"
        code, _, err = server.run(loop_argv(loop_runbook, out), home, kill_after=n)
        assert code == -signal.SIGKILL, (n, code, err)
        code, err, _ = recover_loop(server, home, out)
        assert code == 0, (n, err)
        assert_loop_finished_exactly_once(home, out)
