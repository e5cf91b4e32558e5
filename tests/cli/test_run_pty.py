"""`breakglass run` end to end: gates answered at a pseudo-terminal, and refused without one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pexpect
import pytest

from engine import audit

BG = shutil.which("breakglass") or "breakglass"

GATED = """
id: gated
title: a gated change
inputs:
  out: {type: string}
  domain: {type: domain, default: example.com}
steps:
  - id: probe
    title: read first
    action: shell.run
    with: {argv: [echo, hello], read_only: true}
  - id: change
    title: append to the file
    action: shell.run
    confirm: "append a line to {{ inputs.out }}?"
    with: {argv: [sh, -c, 'echo changed >> "$0"', "{{ inputs.out }}"]}
  - id: after
    title: a note after the change
    action: log.note
    with: {text: "after the change"}
"""

TYPED = GATED.replace(
    'confirm: "append a line to {{ inputs.out }}?"',
    'confirm: {message: "really change {{ inputs.domain }}?", type_to_confirm: "{{ inputs.domain }}"}',
).replace("id: gated", "id: typed")

MANUAL = """
id: handwork
title: a manual step
steps:
  - id: call
    title: call the registrar
    action: manual
    with:
      instructions: Call the registrar's abuse desk.
      checklist: [called the desk, got a ticket]
      ask: [Ticket number]
"""

DRY = """
id: branches
title: dry-run branches on real reads
inputs:
  state: {type: string}
  out: {type: string}
steps:
  - id: probe
    title: read the state file
    action: shell.run
    with: {argv: [cat, "{{ inputs.state }}"], read_only: true}
  - id: on_blue
    title: change for blue
    action: shell.run
    when: "{{ steps.probe.output.stdout.strip() == 'blue' }}"
    with: {argv: [sh, -c, 'echo blue >> "$0"', "{{ inputs.out }}"]}
  - id: on_green
    title: change for green
    action: shell.run
    when: "{{ steps.probe.output.stdout.strip() == 'green' }}"
    with: {argv: [sh, -c, 'echo green >> "$0"', "{{ inputs.out }}"]}
  - id: note
    title: a read after
    action: log.note
    with: {text: "saw {{ steps.probe.output.stdout.strip() }}"}
"""



def spawn(args: list[str], timeout: float = 60) -> pexpect.spawn:
    return pexpect.spawn(BG, args, env=dict(os.environ), encoding="utf-8", timeout=timeout,
                         dimensions=(50, 200))


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus if child.exitstatus is not None else -child.signalstatus, child.before or ""


def records(bg_home: Path) -> list[dict[str, Any]]:
    logs = sorted((bg_home / "runs").glob("*/audit.jsonl"))
    assert logs
    verdict = audit.verify(logs[-1])
    assert verdict.ok, verdict.problems
    return [r.to_dict() for r in audit.read(logs[-1])[0]]


def assert_gates_recorded_before_applying(recs: list[dict[str, Any]]) -> None:
    """Every decision carries who/how/digest, matches what was asked, and precedes its step's apply."""
    asked: dict[str, str] = {}
    approved: set[str] = set()
    for rec in recs:
        if rec["type"] == "gate.asked":
            asked[rec["gate"]] = rec["digest"]
        elif rec["type"] in ("gate.approved", "gate.denied"):
            assert rec["by"] and rec["how"] and len(rec["digest"]) == 64, rec
            assert rec["digest"] == asked[rec["gate"]], "the decision is about what was shown"
            if rec["type"] == "gate.approved":
                approved.add(rec["step"])
        elif rec["type"] == "step.applying":
            assert rec["step"] in approved, f"{rec['step']} applied before any approval"


def gate_decision(recs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in recs if r["type"] in ("gate.approved", "gate.denied"))


# --- at a terminal -------------------------------------------------------------------------------------


def test_yes_at_the_prompt_runs_the_step(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    child = spawn(["run", str(book(GATED)), "-i", f"out={out}", "--operator", "alice"])
    child.expect(r"GATE change: append a line to .*out\.txt\?")
    child.expect("plan: run sh -c")
    child.expect(r"Approve\? \[yes / no = abort / skip\]: ")
    assert not out.exists(), "nothing runs before the answer"
    child.sendline("yes")
    code, text = finish(child)
    assert code == 0, text
    assert "gate change approved by alice (tty)" in text
    assert out.read_text() == "changed\n"
    recs = records(bg_home)
    assert_gates_recorded_before_applying(recs)
    decision = gate_decision(recs)
    assert (decision["type"], decision["by"], decision["how"], decision["answer"]) == (
        "gate.approved", "alice", "tty", "yes")


def test_no_at_the_prompt_refuses(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    child = spawn(["run", str(book(GATED)), "-i", f"out={out}"])
    child.expect(r"Approve\? ")
    child.sendline("no")
    code, text = finish(child)
    assert code == 3, text
    assert not out.exists()
    recs = records(bg_home)
    assert gate_decision(recs)["type"] == "gate.denied"
    assert recs[-1]["type"] == "run.finished" and recs[-1]["status"] == "refused"
    assert not any(r["type"] == "step.applying" for r in recs)


def test_skip_at_the_prompt_goes_on(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    child = spawn(["run", str(book(GATED)), "-i", f"out={out}"])
    child.expect(r"Approve\? ")
    child.sendline("skip")
    code, text = finish(child)
    assert code == 0, text
    assert not out.exists()
    recs = records(bg_home)
    kinds = {(r["type"], r.get("step")) for r in recs}
    assert ("step.skipped", "change") in kinds and ("step.succeeded", "after") in kinds


def test_type_to_confirm_wrong_value_refuses(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    child = spawn(["run", str(book(TYPED)), "-i", f"out={out}", "-i", "domain=shop.example"])
    child.expect("really change shop.example")
    child.expect("Type 'shop.example' to approve")
    child.sendline("shop.exampel")
    child.expect(r"Skip this step and go on, or abort the run\? \[skip / abort\]: ")
    child.sendline("abort")
    code, text = finish(child)
    assert code == 3, text
    assert not out.exists()
    decision = gate_decision(records(bg_home))
    assert decision["type"] == "gate.denied" and decision["how"] == "tty"


def test_type_to_confirm_right_value_approves(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    child = spawn(["run", str(book(TYPED)), "-i", f"out={out}", "-i", "domain=shop.example"])
    child.expect("Type 'shop.example' to approve")
    child.sendline("shop.example")
    code, text = finish(child)
    assert code == 0, text
    assert out.read_text() == "changed\n"
    recs = records(bg_home)
    assert_gates_recorded_before_applying(recs)
    assert gate_decision(recs)["answer"] == "shop.example"


@pytest.mark.parametrize(("how", "extra"), [("interrupt", []), ("eof", []),
                                           ("timeout", ["--gate-timeout", "1"])])
def test_no_answer_means_no(book: Any, tmp_path: Path, bg_home: Path, how: str, extra: list[str]) -> None:
    out = tmp_path / "out.txt"
    child = spawn(["run", str(book(GATED)), "-i", f"out={out}", *extra])
    child.expect(r"Approve\? ")
    if how == "interrupt":
        child.sendintr()
    elif how == "eof":
        child.sendeof()
    code, text = finish(child)  # the timeout case simply waits
    assert code == 3, text
    assert not out.exists()
    decision = gate_decision(records(bg_home))
    assert (decision["type"], decision["how"]) == ("gate.denied", how)


def test_manual_checklist_at_the_terminal(book: Any, bg_home: Path) -> None:
    child = spawn(["run", str(book(MANUAL))])
    child.expect("Call the registrar's abuse desk.")
    child.expect(r"called the desk — done\? \[y/n\]: ")
    child.sendline("y")
    child.expect(r"got a ticket — done\? \[y/n\]: ")
    child.sendline("yes")
    child.expect("Ticket number: ")
    child.sendline("4411")
    child.expect("Note for the report")
    child.sendline("spoke to Dana")
    code, text = finish(child)
    assert code == 0, text
    done = next(r for r in records(bg_home) if r["type"] == "step.succeeded")
    assert done["output"] == {"completed": True, "checklist": {"called the desk": True, "got a ticket": True},
                              "answers": {"Ticket number": "4411"}, "note": "spoke to Dana"}


# --- without a terminal --------------------------------------------------------------------------------


def bg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BG, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)


def test_no_terminal_fails_closed(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    proc = bg("run", str(book(GATED)), "-i", f"out={out}")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no-tty" in proc.stdout and not out.exists()
    assert gate_decision(records(bg_home))["how"] == "no-tty"


def test_no_terminal_with_approve_passes(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    proc = bg("run", str(book(GATED)), "-i", f"out={out}", "--approve", "change", "--operator", "bob")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == "changed\n"
    recs = records(bg_home)
    assert_gates_recorded_before_applying(recs)
    decision = gate_decision(recs)
    assert (decision["by"], decision["how"], decision["answer"]) == ("bob", "flag", "--approve change")


def test_yes_is_refused_live_and_accepted_in_a_dry_run(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    path = book(GATED)
    live = bg("run", str(path), "-i", f"out={out}", "--yes")
    assert live.returncode == 2 and "--yes" in live.stderr, live.stderr
    assert not (bg_home / "runs").exists() or not list((bg_home / "runs").iterdir()), "nothing was started"
    dry = bg("run", str(path), "-i", f"out={out}", "--yes", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert not out.exists()


def test_manual_step_without_terminal_fails_closed(book: Any, bg_home: Path) -> None:
    proc = bg("run", str(book(MANUAL)))
    assert proc.returncode == 1 and "fail closed" in proc.stdout, proc.stdout


@pytest.mark.parametrize(("colour", "runs", "skipped"), [("blue", "on_blue", "on_green"),
                                                         ("green", "on_green", "on_blue")])
def test_dry_run_plans_writes_and_runs_reads(book: Any, tmp_path: Path, bg_home: Path, colour: str, runs: str,
                                             skipped: str) -> None:
    state, out = tmp_path / "state", tmp_path / "out.txt"
    state.write_text(colour + "\n")
    proc = bg("run", str(book(DRY)), "-i", f"state={state}", "-i", f"out={out}", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[DRY-RUN]" in proc.stdout and f"would: run sh -c 'echo {colour}" in proc.stdout
    assert not out.exists(), "a dry-run changes nothing"
    recs = records(bg_home)
    by = {(r["type"], r.get("step")): r for r in recs}
    assert by[("step.succeeded", "probe")]["output"]["stdout"] == colour + "\n", "reads run for real"
    assert by[("step.planned", runs)]["final"] is True
    assert ("step.applying", runs) not in by
    assert ("step.skipped", skipped) in by and ("step.planned", skipped) not in by
    assert by[("step.succeeded", "note")]["output"]["note"] == f"saw {colour}"
    assert recs[0]["mode"] == "dry-run"


def test_json_lines_carry_the_run_id(book: Any, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    proc = bg("run", str(book(GATED)), "-i", f"out={out}", "--approve", "change", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "run.started"
    run_id = events[0]["run"]
    assert all(e["run"] == run_id for e in events)
    assert events[-1]["type"] == "run.finished" and events[-1]["status"] == "succeeded"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    human = bg("run", str(book(GATED)), "-i", f"out={out}", "--approve", "change")
    assert human.stdout.splitlines()[0].startswith("run 20"), "the run id comes first"
    listed = json.loads(bg("runs", "--json").stdout)
    assert {r["id"] for r in listed} == {run_id, human.stdout.split()[1]}
    assert {r["status"] for r in listed} == {"succeeded"}
