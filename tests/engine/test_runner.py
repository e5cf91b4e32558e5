"""The runner: retries and backoff, until, timeout, expect, on_failure, Ctrl-C, notes, the run lock."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.console import NullReporter
from engine.loader import load_text
from engine.runner import RunOutcome
from engine.session import RunOptions, resume, start
from engine.store import FileStore

BG = shutil.which("breakglass") or "breakglass"


class Recorder(NullReporter):
    """A reporter that keeps every record; ``on`` may act on one (e.g. raise KeyboardInterrupt)."""

    def __init__(self, on: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.on = on

    def event(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)
        if self.on:
            self.on(rec)



def go(tmp_path: Path, text: str, reporter: Recorder | None = None, given: dict[str, Any] | None = None,
       **opts: Any) -> tuple[RunOutcome, list[dict[str, Any]]]:
    loaded = load_text(text, str(tmp_path / "rb.yaml"))
    store = FileStore(tmp_path / "home")
    outcome = start(loaded, given or {}, RunOptions(operator="tester", **opts), reporter or Recorder(), store=store)
    log = store.log_path(outcome.run_id)
    assert audit.verify(log).ok
    return outcome, [r.to_dict() for r in audit.read(log)[0]]


def of(records: list[dict[str, Any]], kind: str, step: str | None = None) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind and (step is None or r.get("step") == step)]


def gap(a: dict[str, Any], b: dict[str, Any]) -> float:
    return audit.elapsed(a["ts"], b["ts"])


def book(steps: str) -> str:
    return f"id: rb\ntitle: runner test\nsteps:\n{steps}"


# --- retries, until, timeout, expect -------------------------------------------------------------------


def test_retries_back_off(tmp_path: Path) -> None:
    outcome, recs = go(tmp_path, book("""
  - id: flaky
    title: always fails
    action: shell.run
    retries: {attempts: 4, delay: 0.1, backoff: 3, max_delay: 0.25}
    with: {argv: [/bin/false], read_only: true}
"""))
    assert outcome.status == "failed" and outcome.exit_code == 1
    retried = of(recs, "step.retried", "flaky")
    assert [r["attempt"] for r in retried] == [1, 2, 3]
    assert [r["delay"] for r in retried] == [0.1, 0.25, 0.25], "delay x backoff, capped at max_delay"
    failed = of(recs, "step.failed", "flaky")[0]
    assert failed["attempts"] == 4
    waits = [gap(a, b) for a, b in zip(retried, [*retried[1:], failed], strict=True)]
    for waited, delay in zip(waits, [0.1, 0.25, 0.25], strict=True):
        assert delay <= waited < delay + 1.0, waits


def test_until_eventually_true(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    outcome, recs = go(tmp_path, book(f"""
  - id: poll
    title: count up until three
    action: shell.run
    retries: {{attempts: 6, delay: 0.02}}
    until: "{{{{ result.stdout | int >= 3 }}}}"
    with: {{argv: [sh, -c, 'echo x >> "$0"; wc -l < "$0"', "{counter}"], read_only: true}}
  - id: after
    title: sees the last output
    action: assert
    with: {{that: "{{{{ steps.poll.output.stdout | int == 3 }}}}"}}
"""))
    assert outcome.status == "succeeded"
    reasons = [r["reason"] for r in of(recs, "step.retried")]
    assert reasons == ["`until` not yet true: {{ result.stdout | int >= 3 }}"] * 2
    assert of(recs, "step.succeeded", "poll")[0]["attempts"] == 3
    assert counter.read_text().count("x") == 3


def test_until_never_true_fails(tmp_path: Path) -> None:
    outcome, recs = go(tmp_path, book("""
  - id: poll
    title: never
    action: log.note
    retries: {attempts: 3, delay: 0}
    until: "{{ false }}"
    with: {text: waiting}
"""))
    assert outcome.status == "failed"
    assert "`until` not yet true" in of(recs, "step.failed", "poll")[0]["error"]


def test_timeout_kills_a_slow_command(tmp_path: Path) -> None:
    late = tmp_path / "late"
    began = time.monotonic()
    outcome, recs = go(tmp_path, book(f"""
  - id: slow
    title: too slow
    action: shell.run
    timeout: 0.3
    with: {{argv: [sh, -c, 'sleep 1.2; echo late > "$0"', "{late}"], read_only: true}}
"""))
    assert time.monotonic() - began < 1.1, "the step did not wait for the command"
    assert outcome.status == "failed"
    failed = of(recs, "step.failed", "slow")[0]
    assert failed["output"]["timed_out"] is True
    time.sleep(1.4)
    assert not late.exists(), "the command was killed, not left running"


def test_timeout_of_an_uncooperative_action(tmp_path: Path) -> None:
    """wait.sleep ignores nothing but cancel: the runner's own timeout cuts it off."""
    began = time.monotonic()
    outcome, recs = go(tmp_path, book("""
  - id: nap
    title: a long wait
    action: wait.sleep
    timeout: 0.2
    with: {seconds: 5}
"""))
    assert time.monotonic() - began < 2
    failed = of(recs, "step.failed", "nap")[0]
    assert failed["output"]["timed_out"] is True and "timed out after 0.2s" in failed["error"]


def test_expect_failing_fails_the_step(tmp_path: Path) -> None:
    outcome, recs = go(tmp_path, book("""
  - id: greet
    title: says hello
    action: shell.run
    expect: "{{ result.stdout.strip() == 'bye' }}"
    with: {argv: [echo, hello], read_only: true}
  - id: never
    title: not reached
    action: log.note
    with: {text: no}
"""))
    assert outcome.status == "failed"
    failed = of(recs, "step.failed", "greet")[0]
    assert failed["error"].startswith("expect did not hold") and failed["output"]["stdout"] == "hello\n"
    assert not of(recs, "step.started", "never")


# --- on_failure ----------------------------------------------------------------------------------------


def test_on_failure_continue_and_abort(tmp_path: Path) -> None:
    outcome, recs = go(tmp_path, book("""
  - id: optional
    title: may fail
    action: shell.run
    on_failure: continue
    with: {argv: [/bin/false], read_only: true}
  - id: sees_it
    title: knows it failed
    action: assert
    with: {that: "{{ not steps.optional.ok and steps.optional.status == 'failed' }}"}
  - id: required
    title: must work
    action: shell.run
    with: {argv: [/bin/false], read_only: true}
  - id: never
    title: not reached
    action: log.note
    with: {text: no}
"""))
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert of(recs, "step.failed", "optional")[0]["continued"] is True
    assert of(recs, "step.succeeded", "sees_it")
    assert of(recs, "step.failed", "required")[0]["continued"] is False
    assert not of(recs, "step.started", "never")
    assert recs[-1]["counts"]["pending"] == 1


def test_rollback_runs_in_reverse_each_audited(tmp_path: Path) -> None:
    trail = tmp_path / "trail"

    def changing(sid: str, rollback: bool = True) -> str:
        undo = (f"    rollback: {{action: shell.run, confirm: false, with: {{argv: [sh, -c, "
                f"'echo undo-{sid} >> \"$0\"', \"{trail}\"]}}}}\n") if rollback else ""
        return (f"  - id: {sid}\n    title: change {sid}\n    action: shell.run\n    confirm: false\n"
                f"    with: {{argv: [sh, -c, 'echo {sid} >> \"$0\"', \"{trail}\"]}}\n{undo}")

    outcome, recs = go(tmp_path, book(
        changing("one") + changing("two", rollback=False) + changing("three") + """
  - id: skipped
    title: never ran
    action: shell.run
    when: false
    confirm: false
    with: {argv: [/bin/true]}
    rollback: {action: shell.run, confirm: false, with: {argv: [/bin/true]}}
  - id: boom
    title: fails
    action: shell.run
    on_failure: rollback
    with: {argv: [/bin/false], read_only: true}
"""))
    assert outcome.status == "rolled_back" and outcome.exit_code == 1
    assert trail.read_text().split() == ["one", "two", "three", "undo-three", "undo-one"]
    begun = of(recs, "rollback.begun")[0]
    assert begun["steps"] == ["three", "one"]
    kinds = [(r["type"], r.get("step")) for r in recs if r["type"].startswith("rollback.")]
    assert kinds == [("rollback.begun", None), ("rollback.started", "three"), ("rollback.succeeded", "three"),
                     ("rollback.started", "one"), ("rollback.succeeded", "one")]
    assert recs.index(of(recs, "step.failed", "boom")[0]) < recs.index(begun)


ONE_CHANGE_THEN_BOOM = """
  - id: one
    title: change
    action: shell.run
    confirm: false
    with: {argv: [/bin/true]}
    rollback: {action: shell.run, %s}
  - id: boom
    title: fails
    action: shell.run
    on_failure: rollback
    with: {argv: [/bin/false], read_only: true}
"""


def test_a_gated_rollback_refused_is_rollback_incomplete(tmp_path: Path) -> None:
    outcome, recs = go(tmp_path, book(ONE_CHANGE_THEN_BOOM % "with: {argv: [/bin/true]}"))
    assert of(recs, "gate.denied")[0]["gate"] == "one.rollback"
    assert of(recs, "rollback.skipped", "one")[0]["reason"] == "rollback gate refused"
    assert outcome.status == "rollback_incomplete" and outcome.exit_code not in (0, 1)
    finished = recs[-1]
    assert finished["status"] == "rollback_incomplete"
    assert "rolled back" not in finished["reason"] and "one not undone" in finished["reason"]


def test_a_failed_rollback_is_rollback_incomplete(tmp_path: Path) -> None:
    outcome, recs = go(tmp_path, book(ONE_CHANGE_THEN_BOOM % "confirm: false, with: {argv: [/bin/false]}"))
    assert of(recs, "rollback.failed", "one")
    assert outcome.status == "rollback_incomplete" and outcome.exit_code not in (0, 1)
    assert "rolled back" not in recs[-1]["reason"]


def test_a_rollback_is_called_like_a_step_timeout_and_expect(tmp_path: Path) -> None:
    """An undo takes the step's keys: its own timeout stops a hung undo, its expect verifies it."""
    hung = "confirm: false, timeout: 0.5, with: {argv: [sleep, '30']}"
    begun = time.monotonic()
    outcome, recs = go(tmp_path, book(ONE_CHANGE_THEN_BOOM % hung))
    assert time.monotonic() - begun < 10
    failed = of(recs, "rollback.failed", "one")[0]
    assert failed["output"].get("timed_out") is True and outcome.status == "rollback_incomplete"
    unverified = "confirm: false, expect: \"'undone' in result.stdout\", with: {argv: [echo, kept]}"
    outcome, recs = go(tmp_path / "2", book(ONE_CHANGE_THEN_BOOM % unverified))
    assert "expect did not hold" in of(recs, "rollback.failed", "one")[0]["error"]
    assert outcome.status == "rollback_incomplete"


def test_a_step_that_cannot_render_its_arguments_never_started(tmp_path: Path) -> None:
    """No record says a step started, or what it would touch, when it never got that far."""
    outcome, recs = go(tmp_path, "id: rb\ntitle: t\ninputs:\n  delay: {default: soon}\nsteps:\n" + """
  - id: wait
    title: wait
    action: wait.sleep
    with: {seconds: "{{ inputs.delay }}"}
""")
    assert outcome.status == "failed"
    assert [r["type"] for r in recs if r.get("step") == "wait"] == ["step.failed"]
    assert of(recs, "step.failed", "wait")[0]["attempts"] == 0, "the action was never called"


def test_a_rendered_title_is_never_rendered_again(tmp_path: Path) -> None:
    """A value holding template text (here an input; as well an output) is shown as text at the rollback gate;
    rendering it again would put the secret in the log in a form the redactor does not know."""
    token = "s3cr3t-value"
    outcome, recs = go(tmp_path, book("""
  - id: one
    title: "change for {{ inputs.reason }}"
    action: shell.run
    with: {argv: [/bin/true]}
    rollback: {action: shell.run, with: {argv: [/bin/true]}}
  - id: boom
    title: fails
    action: shell.run
    on_failure: rollback
    with: {argv: [/bin/false], read_only: true}
""").replace("steps:", "inputs:\n  reason: {type: string}\n  token: {type: secret}\nsteps:"),
        given={"reason": "{{ inputs.token|upper }}", "token": token}, approvals=frozenset({"one", "one.rollback"}))
    assert outcome.status == "rolled_back"
    asked = of(recs, "gate.asked", "one")
    assert [a["gate"] for a in asked] == ["one", "one.rollback"]
    assert asked[1]["message"] == "run 'undo change for {{ inputs.token|upper }}'?"
    assert of(recs, "rollback.started", "one")[0]["title"] == "undo change for {{ inputs.token|upper }}"
    log = json.dumps(recs)
    assert token.upper() not in log and token not in log


# --- Ctrl-C ----------------------------------------------------------------------------------------------

THREE = book("""
  - id: first
    title: first
    action: log.note
    with: {text: one}
  - id: second
    title: second
    action: log.note
    with: {text: two}
  - id: third
    title: third
    action: log.note
    with: {text: three}
""")


def test_ctrl_c_between_steps_is_recorded_and_resumable(tmp_path: Path) -> None:
    def interrupt(rec: dict[str, Any]) -> None:
        if rec["type"] == "step.succeeded" and rec["step"] == "first":
            raise KeyboardInterrupt

    outcome, recs = go(tmp_path, THREE, Recorder(interrupt))
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert recs[-1]["type"] == "run.finished" and recs[-1]["status"] == "interrupted"
    assert not of(recs, "step.interrupted"), "no step was running"
    assert not of(recs, "step.started", "second")
    store = FileStore(tmp_path / "home")
    again = resume(store, outcome.run_id, {}, RunOptions(operator="tester"), Recorder())
    assert again.status == "succeeded"
    recs = [r.to_dict() for r in store.records(outcome.run_id)]
    assert [r["step"] for r in of(recs, "step.succeeded")] == ["first", "second", "third"]


def cli(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([BG, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def log_of(home: Path) -> Path | None:
    logs = list((home / "runs").glob("*/audit.jsonl"))
    return logs[0] if logs else None


def wait_for(home: Path, kind: str, step: str, limit: float = 60) -> Path:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        log = log_of(home)
        if log and any(r.type == kind and r.get("step") == step for r in audit.read(log)[0]):
            return log
        time.sleep(0.02)
    raise AssertionError(f"no {kind} for {step}")


@pytest.mark.parametrize("how", ["wait.sleep", "shell.run"])
def test_ctrl_c_inside_a_step(tmp_path: Path, bg_home: Path, how: str) -> None:
    marker = tmp_path / "late"
    action = ("action: wait.sleep\n    with: {seconds: 30}" if how == "wait.sleep" else
              f"action: shell.run\n    with: {{argv: [sh, -c, 'sleep 2; echo late > \"$0\"', \"{marker}\"], "
              "read_only: true}")
    path = tmp_path / "rb.yaml"
    path.write_text(book(f"  - id: long\n    title: a long step\n    {action}\n"
                         "  - id: next\n    title: next\n    action: log.note\n    with: {text: after}\n"))
    proc = cli("run", str(path))
    log = wait_for(bg_home, "step.started", "long")
    time.sleep(0.2)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - began < 1.5, "Ctrl-C stops the step promptly"
    recs = [r.to_dict() for r in audit.read(log)[0]]
    assert audit.verify(log).ok
    assert [r["step"] for r in of(recs, "step.interrupted")] == ["long"]
    assert recs[-1]["type"] == "run.finished" and recs[-1]["status"] == "interrupted"
    assert "run interrupted" in out
    if how == "shell.run":
        time.sleep(2.2)
        assert not marker.exists(), "the command was stopped with the run"


# --- notes and the lock -----------------------------------------------------------------------------------

SLOW = book("""
  - id: before
    title: before
    action: log.note
    with: {text: before}
  - id: nap
    title: a wait
    action: wait.sleep
    with: {seconds: 4}  # long enough for a second `breakglass` to start on a loaded machine
  - id: after
    title: after
    action: log.note
    with: {text: after}
""")


def test_note_from_another_process_keeps_the_chain(tmp_path: Path, bg_home: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(SLOW)
    proc = cli("run", str(path), "--json")
    log = wait_for(bg_home, "step.started", "nap")
    run_id = log.parent.name
    noted = subprocess.run([BG, "note", run_id[:20], "called the registrar, ticket 4411",
                            "--operator", "carol"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert noted.returncode == 0, noted.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    verdict = subprocess.run([BG, "audit", "verify", run_id], capture_output=True, text=True, timeout=60,
                             check=False)
    assert verdict.returncode == 0, verdict.stderr
    recs = [r.to_dict() for r in audit.read(log)[0]]
    kinds = [(r["type"], r.get("step")) for r in recs]
    note = of(recs, "note")[0]
    assert note["by"] == "carol" and note["text"] == "called the registrar, ticket 4411"
    assert kinds.index(("step.started", "nap")) < kinds.index(("note", None)) < kinds.index(("step.started",
                                                                                              "after"))
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert json.loads(out.splitlines()[-1])["seq"] == recs[-1]["seq"], "the runner went on after the note"


def test_two_processes_cannot_drive_one_run(tmp_path: Path, bg_home: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(SLOW)
    first = cli("run", str(path))
    log = wait_for(bg_home, "step.started", "nap")
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=30) == 130
    run_id = log.parent.name
    driver = cli("resume", run_id)
    end = time.monotonic() + 60
    while not any(r.type == "run.resumed" for r in audit.read(log)[0]):
        assert time.monotonic() < end
        time.sleep(0.02)
    second = subprocess.run([BG, "resume", run_id], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=60, check=False)
    assert second.returncode == 5, second.stdout + second.stderr
    assert "another process" in second.stderr
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, out + err
    assert audit.verify(log).ok
    assert sum(1 for r in audit.read(log)[0] if r.type == "run.resumed") == 1
