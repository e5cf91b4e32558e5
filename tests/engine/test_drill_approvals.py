"""A drill rehearses a four-eyes gate: the scenario's approvers answer as scripted (approve, deny, timeout),
recorded and shown as real approvals are, graded like any gate; nobody signs anything and nothing waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.store import FileStore

BG = str(Path(sys.executable).with_name("breakglass"))
RUNBOOK = """\
id: mass-mail
title: Mail every customer, with two other people's approval
steps:
  - id: send
    title: Send the notice
    action: http.request
    confirm: {message: "mail everyone?", approvals: 2, approvers: ["@dpo", "@leads"], timeout: 600}
    with: {url: "https://mail.example.invalid/send", method: POST}
"""
SENT = """
    plan: {summary: POST https://mail.example.invalid/send, changes: []}
    output: {url: https://mail.example.invalid/send, method: POST, status: 202}
"""


def drill(tmp_path: Path, approvals: str, expect: str) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    book = tmp_path / "mass-mail.yaml"
    book.write_text(RUNBOOK)
    folder = tmp_path / "scenarios" / "mass-mail"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "01-case.yaml").write_text(f"title: a case\nsteps:\n  send:\n    approvals: {approvals}\n{SENT}"
                                         f"expect:\n{expect}")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("BREAKGLASS_ALLOWED_SIGNERS", "BREAKGLASS_STORE")}
    done = subprocess.run([BG, "drill", str(book), "--yes", "--operator", "oscar@drill"], capture_output=True,
                          text=True, timeout=120, env={**env, "BREAKGLASS_HOME": str(home), "NO_COLOR": "1"},
                          check=False)
    store = FileStore(home)
    records = [r.to_dict() for r in store.records(store.resolve("last"))] if store.list_runs() else []
    return done, records


def test_two_scripted_approvals_open_the_gate(tmp_path: Path) -> None:
    done, recs = drill(tmp_path, "[{by: dana, answer: approve}, {by: lee, answer: approve}]",
                       "  gates: {send: approved}\n  steps: {send: succeeded}\n  outcome: succeeded\n")
    assert done.returncode == 0, done.stderr
    assert "approved by dana (scripted in the drill): 1 of 2, 1 still needed" in done.stderr
    assert "approved by lee (scripted in the drill): 2 of 2, 0 still needed" in done.stderr
    assert [r["by"] for r in recs if r["type"] == "approval.counted"] == ["dana", "lee"]
    assert next(r for r in recs if r["type"] == "drill.graded")["deviations"] == []


def test_a_scripted_refusal_refuses_the_gate(tmp_path: Path) -> None:
    done, recs = drill(tmp_path, "[{by: lee, answer: approve}, {by: dana, answer: deny, reason: wrong list}]",
                       "  gates: {send: denied}\n  steps: {send: refused}\n  outcome: refused\n")
    assert "refused by dana: wrong list" in done.stderr
    graded = next(r for r in recs if r["type"] == "drill.graded")
    assert graded["deviations"] == [] and graded["outcome"] == "refused", graded
    assert not any(r["type"] == "step.applying" for r in recs)


@pytest.mark.parametrize("approvals", ["[{by: dana, answer: approve}, {answer: timeout}]",
                                       "[{by: dana, answer: approve}]", "[]"])
def test_a_scripted_timeout_or_too_few_approvals_means_no(tmp_path: Path, approvals: str) -> None:
    done, recs = drill(tmp_path, approvals, "  gates: {send: denied}\n  outcome: refused\n")
    assert "timeout ran out" in done.stderr
    denied = next(r for r in recs if r["type"] == "gate.denied")
    assert denied["how"] == "timeout"
    assert next(r for r in recs if r["type"] == "drill.graded")["deviations"] == []


def test_the_same_scripted_person_twice_or_the_operator_does_not_count(tmp_path: Path) -> None:
    done, recs = drill(tmp_path, "[{by: dana, answer: approve}, {by: dana, answer: approve}, "
                                 "{by: oscar, answer: approve}]", "  gates: {send: denied}\n")
    rejected = [(r["by"], r["reason"]) for r in recs if r["type"] == "approval.rejected"]
    assert rejected == [("dana", "one person counts once"), ("oscar", "the operator cannot approve their own gate")]
    assert next(r for r in recs if r["type"] == "gate.denied")["how"] == "timeout"


def test_a_drill_gate_is_not_offered_to_real_approvers(tmp_path: Path) -> None:
    _, recs = drill(tmp_path, "[{by: dana, answer: approve}, {by: lee, answer: approve}]", "  outcome: succeeded\n")
    from engine.approvals import OpenGate

    asked = next(r for r in recs if r["type"] == "gate.asked")
    gate = OpenGate.of(asked)
    assert gate is not None and gate.scripted


def test_a_bad_script_is_a_located_error(tmp_path: Path) -> None:
    done, _ = drill(tmp_path, "[{by: dana, answer: maybe}]", "  outcome: succeeded\n")
    assert done.returncode == 2
    assert "01-case.yaml:4:" in done.stderr and "answer must be one of approve, deny, timeout" in done.stderr
    assert "Traceback" not in done.stderr
