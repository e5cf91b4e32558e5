"""Four-eyes gates end to end: real keys made by ssh-keygen here, real processes (one driving operator, other
people approving from their own shells), the file store they share.

Each person has their own HOME (their own ~/.ssh) and the same BREAKGLASS_HOME: two engineers on one bastion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import approvals, signers
from engine.store import FileStore

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")

BG = str(Path(sys.executable).with_name("breakglass"))
RUNBOOK = """\
id: four-eyes
title: Change something with two other people's approval
steps:
  - id: change
    title: Change something
    action: shell.run
    with: {{argv: ["true"]}}
    confirm: {{message: "change it?", approvals: {needed}, approvers: ["@oncall"], timeout: {timeout}}}
"""


@dataclass
class Team:
    root: Path
    store_home: Path
    signers_file: Path
    runbook: Path

    def key(self, who: str) -> Path:
        return self.root / who / ".ssh" / "id_ed25519"

    def env(self, who: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # no agent: each uses their key
        env.update(HOME=str(self.root / who), BREAKGLASS_HOME=str(self.store_home),
                   BREAKGLASS_ALLOWED_SIGNERS=str(self.signers_file), NO_COLOR="1")
        return env

    def bg(self, who: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BG, *args], env=self.env(who), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def write_runbook(self, needed: int = 2, timeout: float = 30) -> None:
        self.runbook.write_text(RUNBOOK.format(needed=needed, timeout=timeout), encoding="utf-8")


def _keygen(path: Path) -> str:
    path.parent.mkdir(parents=True, mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.parent.parent.name, "-f", str(path)],
                   check=True, timeout=30)
    return " ".join(path.with_name("id_ed25519.pub").read_text().split()[:2])


@pytest.fixture
def team(tmp_path: Path) -> Team:
    t = Team(tmp_path, tmp_path / "shared-home", tmp_path / "allowed_signers", tmp_path / "four-eyes.yaml")
    keys = {who: _keygen(t.key(who)) for who in ("oscar", "alice", "bob", "carol", "mallory")}
    # oscar drives; alice and bob are on call; carol is known but not on call; mallory is nobody.
    t.signers_file.write_text(f"oscar {keys['oscar']}\nalice,@oncall {keys['alice']}\n"
                              f"bob,@oncall {keys['bob']}\ncarol {keys['carol']}\n", encoding="utf-8")
    t.write_runbook()
    return t


@dataclass
class Drive:
    proc: subprocess.Popen[str]
    run: str
    digest: str

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


@pytest.fixture
def drive(team: Team) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start() -> Drive:
        proc = subprocess.Popen([BG, "run", str(team.runbook), "--approve", "change", "--operator", "oscar@bastion"],
                                env=team.env("oscar"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = team.bg("alice", "pending", "--json")
            rows = json.loads(done.stdout or "[]")
            if rows:
                return Drive(proc, rows[0]["run"], rows[0]["digest"])
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        raise AssertionError("the gate never showed in `breakglass pending`")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _records(team: Team, run: str) -> list[dict[str, Any]]:
    return [r.to_dict() for r in FileStore(team.store_home).records(run)]


def _approve(team: Team, who: str, d: Drive, *extra: str) -> subprocess.CompletedProcess[str]:
    return team.bg(who, "approve", d.run, "change", "--key", str(team.key(who)), "--digest", d.digest, *extra)


def test_two_other_people_approve_and_the_step_runs(team: Team, drive: Any) -> None:
    d = drive()
    pending = json.loads(team.bg("bob", "pending", "--json").stdout)
    assert pending[0]["missing"] == 2 and pending[0]["approvers"] == ["@oncall"]
    assert _approve(team, "alice", d).returncode == 0
    assert _approve(team, "bob", d).returncode == 0
    code, err = d.finish()
    assert code == 0, err
    assert "approved by alice (signature verified): 1 of 2, 1 still needed" in err
    assert "approved by bob (signature verified): 2 of 2, 0 still needed" in err
    recs = _records(team, d.run)
    approved = next(r for r in recs if r["type"] == "gate.approved")
    assert approved["approvers"] == ["alice", "bob"]
    assert [r["type"] for r in recs].index("step.applying") > recs.index(approved)


def test_one_approval_of_two_is_not_enough_and_the_timeout_means_no(team: Team, drive: Any) -> None:
    team.write_runbook(timeout=3)
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    code, err = d.finish()
    assert code == 3, err
    assert "timeout ran out with 1 approval(s) missing" in err
    assert not any(r["type"] == "step.applying" for r in _records(team, d.run))


def test_an_approval_after_the_timeout_is_refused(team: Team, drive: Any) -> None:
    team.write_runbook(timeout=2)
    d = drive()
    d.finish()
    late = _approve(team, "alice", d)
    assert late.returncode == 3 and "not waiting for approvals" in late.stderr
    assert not any(r["type"] == "approval.signed" for r in _records(team, d.run))


def test_a_refusal_by_any_approver_refuses_the_gate_and_later_answers_are_refused(team: Team, drive: Any) -> None:
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    denied = team.bg("bob", "deny", d.run, "change", "--key", str(team.key("bob")), "--reason", "standby cold")
    assert denied.returncode == 0, denied.stderr
    code, err = d.finish()
    assert code == 3 and "refused by bob: standby cold" in err
    closed = _approve(team, "carol", d)
    assert closed.returncode == 3 and "not waiting for approvals" in closed.stderr


def test_an_unknown_key_is_refused(team: Team, drive: Any) -> None:
    d = drive()
    done = _approve(team, "mallory", d)
    assert done.returncode != 0 and "not in" in done.stderr and "allowed_signers" in done.stderr


def test_a_signer_not_among_the_steps_approvers_is_refused(team: Team, drive: Any) -> None:
    d = drive()
    done = _approve(team, "carol", d)
    assert done.returncode == 3 and "carol is not among this step's approvers" in done.stderr


def test_the_operator_cannot_approve_their_own_gate(team: Team, drive: Any) -> None:
    # oscar is in the file but not on call; put him on call so only the own-gate rule can refuse him.
    text = team.signers_file.read_text().replace("oscar ", "oscar,@oncall ", 1)
    team.signers_file.write_text(text)
    d = drive()
    done = _approve(team, "oscar", d)
    assert done.returncode == 3 and "cannot approve their own gate" in done.stderr


def test_the_same_person_counts_once(team: Team, drive: Any) -> None:
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    again = _approve(team, "alice", d)
    assert again.returncode == 3 and "one person counts once" in again.stderr


def test_a_script_approves_only_the_plan_it_saw(team: Team, drive: Any) -> None:
    d = drive()
    blind = team.bg("alice", "approve", d.run, "change", "--key", str(team.key("alice")))
    assert blind.returncode == 2 and "--digest" in blind.stderr
    other = team.bg("alice", "approve", d.run, "change", "--key", str(team.key("alice")), "--digest", "0" * 64)
    assert other.returncode == 3 and "not the one you saw" in other.stderr


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("run", "20260101T000000Z-four-eyes-0000", "another run"),
    ("gate", "other", "another gate"),
    ("digest", "0" * 64, "another plan"),
    ("head", "0" * 64, "stale chain head"),
])
def test_a_replayed_or_altered_signature_does_not_count(team: Team, drive: Any, field: str, value: str,
                                                        reason: str) -> None:
    """Someone with write access to the store appends a genuine signature of alice's over other facts."""
    team.write_runbook(needed=1, timeout=4)
    d = drive()
    gate = approvals.open_gates(_records(team, d.run))[0]
    facts = {"run": d.run, "gate": "change", "digest": d.digest, "head": gate.head, field: value}
    body = approvals.payload(facts["run"], facts["gate"], facts["digest"], facts["head"], approvals.APPROVE,
                             "alice")
    signature = signers.sign(body, team.key("alice"))
    writer = FileStore(team.store_home).writer(d.run, {"run": d.run, "mode": "live"})
    writer.append("approval.signed", {"step": "change", "gate": "change", "by": "alice", "decision": "approve",
                                      "payload": body.decode(), "signature": signature})
    writer.close()
    code, err = d.finish()
    assert code == 3, err
    rejected = [r for r in _records(team, d.run) if r["type"] == "approval.rejected"]
    assert len(rejected) == 1 and reason in rejected[0]["reason"]
    assert not any(r["type"] == "step.applying" for r in _records(team, d.run))


def test_show_marks_a_gate_that_needs_other_people(team: Team) -> None:
    done = team.bg("oscar", "show", str(team.runbook))
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "change (shell.run)" in x)
    assert "[AW ]" in line
    assert "approvals: 2 of @oncall, besides the operator within 30 s" in done.stdout


@pytest.mark.parametrize(("confirm", "advice"), [("{approvals: 2}", "`approvals` needs `approvers`"),
                                                 ('{approvers: ["@oncall"]}', "`approvers` needs `approvals: N`")])
def test_approvals_and_approvers_come_together(team: Team, confirm: str, advice: str) -> None:
    """Either half alone reads as guarded by other people and is not: refused, saying what is missing."""
    text = team.runbook.read_text().splitlines()
    text[-1] = f"    confirm: {confirm}"
    team.runbook.write_text("\n".join(text) + "\n")
    done = team.bg("oscar", "validate", str(team.runbook))
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "four-eyes.yaml:8:" in said and advice in said
