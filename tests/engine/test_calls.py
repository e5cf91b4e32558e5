"""`action: runbook.run`: a called runbook's steps run inside the caller's run (one log, one chain head) under
`<call>.<step>` ids, with their own gates and rollbacks; its `outputs:` are the call's output. Live, dry-run,
drill, resume, `show`, and the effect that gates the call. Driven through the CLI, as an operator would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine import audit
from tests.runbooks.operator import BREAKGLASS, cli_env, run_json

CHILD = """
id: child-book
title: The called runbook
inputs:
  out: {type: string}
  word: {type: string, default: hello}
outputs:
  said: "{{ steps.say.output.stdout | trim }}"
  wrote: "{{ steps.write.status }}"
steps:
  - id: say
    title: Say the word
    action: shell.run
    with: {argv: [echo, "{{ inputs.word }}"], read_only: true}
  - id: write
    title: Write the word
    action: shell.run
    with: {argv: [sh, -c, 'echo "$1" >> "$0"', "{{ inputs.out }}", "{{ inputs.word }}"]}
    rollback:
      action: shell.run
      with: {argv: [rm, -f, "{{ inputs.out }}"]}
  - id: check
    title: Check the file
    when: "{{ run.mode != 'dry-run' }}"
    action: shell.run
    with: {argv: [grep, -qx, "{{ inputs.word }}", "{{ inputs.out }}"], read_only: true}
    on_failure: rollback
"""

PARENT = """
id: parent-book
title: The caller
inputs:
  out: {type: string}
  word: {type: string, default: bonjour}
steps:
  - id: first
    title: Read something first
    action: shell.run
    with: {argv: ["true"], read_only: true}
  - id: call
    title: Run the child
    action: runbook.run
    with: {runbook: child-book, inputs: {out: "{{ inputs.out }}", word: "{{ inputs.word }}"}}
  - id: after
    title: Use what the child said
    action: shell.run
    with: {argv: [sh, -c, 'echo "after $1" >> "$0"', "{{ inputs.out }}", "{{ steps.call.output.said }}"]}
"""

READ_CHILD = """
id: read-child
title: Only reads
steps:
  - id: look
    title: Look
    action: shell.run
    with: {argv: ["true"], read_only: true}
"""

READ_PARENT = """
id: read-parent
title: Calls a runbook that only reads
steps:
  - id: call
    title: Run it
    action: runbook.run
    with: {runbook: read-child}
"""

GATES = ["--approve", "call", "--approve", "call.write", "--approve", "after"]


@pytest.fixture
def books(tmp_path: Path) -> Path:
    folder = tmp_path / "books"
    folder.mkdir()
    for name, text in [("child-book", CHILD), ("parent-book", PARENT), ("read-child", READ_CHILD),
                       ("read-parent", READ_PARENT)]:
        (folder / f"{name}.yaml").write_text(text)
    return folder


def records(home: Path) -> list[dict]:
    [log] = list((home / "runs").glob("*/audit.jsonl"))
    return [r.to_dict() for r in audit.read(log)[0]]


def test_live_call_runs_the_child_inside_the_run(books: Path, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    result = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", *GATES], cli_env(bg_home))
    assert result.code == 0, result.stderr
    assert out.read_text().split("\n") == ["bonjour", "after bonjour", ""]
    steps = result.steps()
    assert steps == {"first": "succeeded", "call": "succeeded", "call.say": "succeeded",
                     "call.write": "succeeded", "call.check": "succeeded", "after": "succeeded"}
    assert result.outputs()["call"] == {"said": "bonjour", "wrote": "succeeded"}
    recs = records(bg_home)
    assert [r["type"] for r in recs].count("run.started") == 1, "one run, one log"
    assert audit.verify(next((bg_home / "runs").glob("*/audit.jsonl"))).ok
    started = next(r for r in recs if r["type"] == "step.started" and r["step"] == "call")
    assert started["effect"] == "write" and started["args"] == {"runbook": "child-book",
                                                                "inputs": {"out": str(out), "word": "bonjour"}}
    gates = [r["gate"] for r in recs if r["type"] == "gate.approved"]
    assert gates == ["call", "call.write", "after"], "the call is gated like a write; its child's write too"


def test_a_call_whose_runbook_only_reads_is_not_gated(books: Path, bg_home: Path) -> None:
    result = run_json(["run", str(books / "read-parent.yaml")], cli_env(bg_home))
    assert result.code == 0, result.stderr
    started = next(e for e in result.events if e["type"] == "step.started" and e["step"] == "call")
    assert started["effect"] == "read"
    assert not [e for e in result.events if e["type"] == "gate.asked"]


def test_without_approval_the_childs_gate_says_no(books: Path, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    result = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", "--approve", "call"],
                      cli_env(bg_home))
    assert result.code == 3, result.stderr  # refused: no terminal, no --approve call.write
    assert result.steps()["call.write"] == "refused" and not out.exists()
    assert result.finished["status"] == "refused"


def test_dry_run_plans_the_childs_changes(books: Path, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    result = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", "--dry-run", "--yes"],
                      cli_env(bg_home))
    assert not out.exists(), "a dry-run changes nothing, in a called runbook neither"
    steps = result.steps()
    assert steps["call.say"] == "succeeded" and steps["call.write"] == "planned"
    assert steps["call"] == "succeeded" and steps["after"] == "planned"
    assert result.outputs()["call"] == {"said": "bonjour", "wrote": "planned"}


def test_resume_inside_the_child_goes_on_where_it_stopped(books: Path, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    env = cli_env(bg_home)
    first = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", "--approve", "call"], env)
    assert first.code == 3
    run_id = first.events[0]["run"]
    resumed = run_json(["resume", run_id, *GATES], env)
    assert resumed.code == 0, resumed.stderr
    started = [e["step"] for e in resumed.events if e["type"] == "step.started"]
    assert started == ["call", "call.write", "call.check", "after"], "what was done is not done again"
    assert out.read_text().split("\n") == ["bonjour", "after bonjour", ""]
    assert resumed.outputs()["call"] == {"said": "bonjour", "wrote": "succeeded"}, "outputs read the first drive"


def test_a_failing_child_step_rolls_back_its_own_runbook(books: Path, tmp_path: Path, bg_home: Path) -> None:
    child = (books / "child-book.yaml").read_text().replace('[grep, -qx, "{{ inputs.word }}"', '[grep, -qx, "nope"')
    (books / "child-book.yaml").write_text(child)
    parent = (books / "parent-book.yaml").read_text().replace(
        '    with: {argv: ["true"], read_only: true}\n',
        '    with: {argv: [touch, "{{ inputs.out }}.marker"]}\n'
        '    rollback: {action: shell.run, with: {argv: [rm, "{{ inputs.out }}.marker"]}}\n', 1)
    (books / "parent-book.yaml").write_text(parent)
    out = tmp_path / "out.txt"
    result = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", *GATES, "--approve",
                       "call.write.rollback", "--approve", "first", "--approve", "first.rollback"],
                      cli_env(bg_home))
    assert result.code == 1, result.stderr
    steps = result.steps()
    assert steps["call.check"] == "failed" and steps["call.write"] == "rollback.succeeded"
    assert steps["call"] == "failed" and "after" not in steps
    assert not out.exists(), "the child's rollback ran with the child's inputs"
    assert steps["first"] == "succeeded" and Path(f"{out}.marker").exists(), "the caller's steps are its own"
    assert result.finished["status"] == "rolled_back"


def test_drill_scripts_the_childs_steps_by_their_ids(books: Path, tmp_path: Path, bg_home: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("""
title: the child's check fails
inputs: {out: /nonexistent/out.txt}
steps:
  first: {output: {exit_code: 0}}
  call.say: {output: {stdout: "salut\\n", exit_code: 0}}
  call.write: {output: {exit_code: 0}}
  call.check: {fail: "not there"}
expect:
  steps: {call.say: succeeded, call.write: rolled_back, call.check: failed, call: failed, after: pending}
  gates: {call: approved, call.write: approved, call.write.rollback: approved}
  outcome: rolled_back
""")
    result = run_json(["drill", str(books / "parent-book.yaml"), "--scenario", str(scenario), "--yes"],
                      cli_env(bg_home))
    graded = next(e for e in result.events if e["type"] == "drill.graded")
    assert graded["deviations"] == [] and graded["score"] == graded["total"], graded
    assert result.code == 0, result.stderr


def test_show_names_the_call_and_expands_it(books: Path, bg_home: Path) -> None:
    def show(*extra: str) -> str:
        proc = subprocess.run([*BREAKGLASS, "show", str(books / "parent-book.yaml"), *extra], capture_output=True,
                              text=True, env=cli_env(bg_home), timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    plain = show()
    assert "runs runbook child-book: 3 steps, recorded as call.<step>" in plain
    assert "call.write" not in plain
    expanded = show("--expand")
    assert "[GWR] call.write (shell.run)" in expanded and "[GW ] call (runbook.run)" in expanded
    info = json.loads(show("--json"))
    call = next(s for s in info["steps"] if s["id"] == "call")
    assert call["mutating"] and call["gated"] and [s["id"] for s in call["call"]["steps"]] == [
        "call.say", "call.write", "call.check"]


def test_report_reads_the_called_steps_under_their_call(books: Path, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    env = cli_env(bg_home)
    result = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", *GATES], env)
    assert result.code == 0, result.stderr
    proc = subprocess.run([*BREAKGLASS, "report", "last", "--format", "json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [s["id"] for s in report["steps"]] == ["first", "call", "call.say", "call.write", "call.check",
                                                  "after"]


def test_resume_refuses_a_called_runbook_that_changed(books: Path, tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    env = cli_env(bg_home)
    first = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", "--approve", "call"], env)
    assert first.code == 3
    child = books / "child-book.yaml"
    child.write_text(child.read_text().replace("title: Write the word", "title: Write another word"))
    run_id = first.events[0]["run"]
    refused = run_json(["resume", run_id, *GATES], env)
    assert refused.code == 2
    assert f"{child}:1:1: the runbook changed since this run started" in refused.stderr
    accepted = run_json(["resume", run_id, *GATES, "--accept-changed"], env)
    assert accepted.code == 0, accepted.stderr


def test_the_callers_rollback_undoes_called_steps_after_a_resume(books: Path, tmp_path: Path,
                                                                  bg_home: Path) -> None:
    """A caller's on_failure: rollback undoes every completed step of the run, the called ones too, each with
    its own runbook's inputs: here in a resumed process, which never ran the call itself."""
    parent = (books / "parent-book.yaml").read_text().replace(
        "    with: {argv: [sh, -c, 'echo \"after $1\" >> \"$0\"', \"{{ inputs.out }}\", \"{{ steps.call.output.said }}\"]}\n",
        "    with: {argv: [sh, -c, 'test -e \"$0.ok\"', \"{{ inputs.out }}\"]}\n    on_failure: rollback\n")
    assert "on_failure: rollback" in parent
    (books / "parent-book.yaml").write_text(parent)
    out = tmp_path / "out.txt"
    env = cli_env(bg_home)
    first = run_json(["run", str(books / "parent-book.yaml"), "-i", f"out={out}", "--approve", "call",
                      "--approve", "call.write"], env)
    assert first.code == 3 and out.read_text() == "bonjour\n"  # refused at the gate of `after`
    resumed = run_json(["resume", first.events[0]["run"], "--approve", "after", "--approve",
                        "call.write.rollback"], env)
    assert resumed.code == 1, resumed.stderr
    assert resumed.steps()["call.write"] == "rollback.succeeded" and not out.exists()
    assert resumed.finished["status"] == "rolled_back"
