"""Four-eyes gates end to end: real keys made by ssh-keygen here, real processes (one driving operator, other
people approving from their own shells), the file store they share.

Each person has their own HOME (their own ~/.ssh) and the same BREAKGLASS_HOME: two engineers on one bastion.
On the PostgreSQL store each has their own BREAKGLASS_HOME too: different machines sharing only the database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import approvals, signers
from engine.store import open_store
from tests.lab.bind import BindServer, zone_text
from tests.lab.https import WebLab
from tests.lab.postgres import postgres  # noqa: F401 (the session's server, for ON_POSTGRES)
from tests.lab.team import BG, Team, make_team

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")

ON_POSTGRES = pytest.mark.parametrize("team", ["postgres"], indirect=True)


@pytest.fixture
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Team:
    """The file store on one bastion; ``ON_POSTGRES`` gives a test a fresh PostgreSQL database instead."""
    if getattr(request, "param", "file") == "file":
        return make_team(tmp_path)
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    server = request.getfixturevalue("postgres")
    url = server.url(server.new_database())
    open_store(url, check_schema=False).migrate()  # type: ignore[attr-defined]
    return make_team(tmp_path, url)


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

    def start(*extra: str) -> Drive:
        proc = subprocess.Popen([BG, "run", str(team.runbook), "--approve", "change", "--operator", "oscar@bastion",
                                 *extra],
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
    return [r.to_dict() for r in team.store().records(run)]


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
    team.write_runbook(timeout=10)  # room for `approve` to start on a loaded machine before the gate closes
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    code, err = d.finish()
    assert code == 3, err
    assert "timeout ran out with 1 approval(s) missing" in err
    assert not any(r["type"] == "step.applying" for r in _records(team, d.run))


def test_an_approval_after_the_timeout_is_refused(team: Team, drive: Any) -> None:
    team.write_runbook(timeout=5)
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
    team.write_runbook(needed=1, timeout=10)  # room on a loaded machine: the gate must still be open
    d = drive()
    gate = approvals.open_gates(_records(team, d.run))[0]
    facts = {"run": d.run, "gate": "change", "digest": d.digest, "head": gate.head, field: value}
    body = approvals.payload(facts["run"], facts["gate"], facts["digest"], facts["head"], approvals.APPROVE,
                             "alice")
    signature = signers.sign(body, team.key("alice"))
    writer = team.store().writer(d.run, {"run": d.run, "mode": "live"})
    writer.append("approval.signed", {"step": "change", "gate": "change", "by": "alice", "decision": "approve",
                                      "payload": body.decode(), "signature": signature})
    writer.close()
    code, err = d.finish()
    assert code == 3, err
    rejected = [r for r in _records(team, d.run) if r["type"] == "approval.rejected"]
    assert len(rejected) == 1 and reason in rejected[0]["reason"]
    assert not any(r["type"] == "step.applying" for r in _records(team, d.run))


def test_a_signature_by_an_unknown_key_does_not_count_at_the_driver(team: Team, drive: Any) -> None:
    """Past the CLI's own check: a record claiming to be alice's, signed by mallory's key, written straight
    into the store. The driving process checks the signature itself and refuses it."""
    team.write_runbook(needed=1, timeout=10)
    d = drive()
    gate = approvals.open_gates(_records(team, d.run))[0]
    body = approvals.payload(d.run, "change", d.digest, gate.head, approvals.APPROVE, "alice")
    writer = team.store().writer(d.run, {"run": d.run, "mode": "live"})
    writer.append("approval.signed", {"step": "change", "gate": "change", "by": "alice", "decision": "approve",
                                      "payload": body.decode(), "signature": signers.sign(body, team.key("mallory"))})
    writer.close()
    code, err = d.finish()
    assert code == 3, err
    rejected = [r for r in _records(team, d.run) if r["type"] == "approval.rejected"]
    assert len(rejected) == 1 and "not by a key" in rejected[0]["reason"] and "unknown key" in rejected[0]["reason"]
    assert "not counted, from alice" in err


def test_an_approval_after_the_gate_closed_is_refused(team: Team, drive: Any) -> None:
    team.write_runbook(needed=1, timeout=30)
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    assert d.finish()[0] == 0
    late = _approve(team, "bob", d)
    assert late.returncode == 3 and "not waiting for approvals" in late.stderr
    assert [r["by"] for r in _records(team, d.run) if r["type"] == "approval.signed"] == ["alice"]


def test_a_genuine_approval_replayed_into_a_later_opening_does_not_count(team: Team, drive: Any) -> None:
    """Alice approved the first opening, which timed out one approval short. Resumed, the gate opens again;
    her old record, copied in whole (genuine signature), signs the old chain head and is refused as stale."""
    team.write_runbook(needed=2, timeout=6)
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    assert d.finish()[0] == 3
    old = next(r for r in _records(team, d.run) if r["type"] == "approval.signed")
    team.write_runbook(needed=2, timeout=30)
    resumed = subprocess.Popen([BG, "resume", d.run, "--approve", "change", "--operator", "oscar@bastion",
                                "--accept-changed"], env=team.env("oscar"), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not approvals.open_gates(_records(team, d.run)) and time.monotonic() < deadline:
            time.sleep(0.1)
        reopened = approvals.open_gates(_records(team, d.run))[0]
        assert json.loads(old["payload"])["head"] != reopened.head
        writer = team.store().writer(d.run, {"run": d.run, "mode": "live"})
        writer.append("approval.signed", {k: old[k] for k in ("step", "gate", "by", "decision", "payload",
                                                              "signature")})
        writer.close()
        fresh = Drive(resumed, d.run, reopened.digest)
        assert _approve(team, "bob", fresh).returncode == 0
        assert _approve(team, "alice", fresh).returncode == 0  # her own, fresh signature still counts once
        code, err = fresh.finish()
    finally:
        if resumed.poll() is None:
            resumed.kill()
    assert code == 0, err
    recs = _records(team, d.run)
    rejected = [r for r in recs if r["type"] == "approval.rejected"]
    assert len(rejected) == 1 and "stale chain head" in rejected[0]["reason"]
    assert next(r for r in reversed(recs) if r["type"] == "gate.approved")["approvers"] == ["bob", "alice"]


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


@ON_POSTGRES
def test_across_machines_on_postgresql_two_people_approve_and_the_step_runs(team: Team, drive: Any) -> None:
    """Three machines (own HOME, own BREAKGLASS_HOME, own key) that share only the database."""
    d = drive()
    assert _approve(team, "alice", d).returncode == 0
    assert _approve(team, "bob", d).returncode == 0
    code, err = d.finish()
    assert code == 0, err
    assert "approved by bob (signature verified): 2 of 2, 0 still needed" in err
    recs = _records(team, d.run)
    counted = [r["by"] for r in recs if r["type"] == "approval.counted"]
    assert counted == ["alice", "bob"]
    assert next(r for r in recs if r["type"] == "gate.approved")["approvers"] == ["alice", "bob"]
    assert not any(list((team.root / who / "breakglass").glob("**/*.jsonl")) for who in ("oscar", "alice", "bob"))


@ON_POSTGRES
def test_on_postgresql_a_refusal_reaches_the_driver(team: Team, drive: Any) -> None:
    d = drive()
    denied = team.bg("bob", "deny", d.run, "change", "--key", str(team.key("bob")), "--reason", "not now")
    assert denied.returncode == 0, denied.stderr
    code, err = d.finish()
    assert code == 3 and "refused by bob: not now" in err


@pytest.mark.parametrize("team", ["file", "postgres"], indirect=True)
def test_the_driver_hears_an_approval_as_the_store_announces_it_not_on_a_timer(
        team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the gate's tick at a minute, a driver that re-read the log on a timer would sit out the test; one
    that listens (LISTEN/NOTIFY on PostgreSQL, following the file on the file store) goes on at once."""
    from engine import runner, session
    from engine.console import NullReporter
    from engine.loader import load_file

    monkeypatch.setattr(runner, "APPROVAL_TICK_S", 60.0)
    for name, value in team.env("oscar").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    team.write_runbook(needed=2, timeout=120)
    approved_at: list[float] = []

    def approvers() -> None:
        store = team.store()
        deadline = time.monotonic() + 60
        while not approvals.pending(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        row = approvals.pending(store)[0]
        for who in ("alice", "bob"):
            approvals.answer(store, row["run"], "change", approvals.APPROVE, team.key(who), digest=row["digest"])
        approved_at.append(time.monotonic())

    helper = threading.Thread(target=approvers, daemon=True)
    helper.start()
    outcome = session.start(load_file(team.runbook), {}, session.RunOptions(
        operator="oscar@bastion", approvals=frozenset({"change"})), NullReporter(), store=team.store())
    done_at = time.monotonic()
    helper.join(10)
    assert str(outcome.status) == "succeeded"
    assert approved_at and done_at - approved_at[0] < 20, f"took {done_at - approved_at[0]:.1f} s after approval"


DNS_RUNBOOK = """\
id: four-eyes
title: Move www with another person's approval
steps:
  - id: change
    title: Point www at the standby
    action: dns.update
    with: {{server: "{server}", zone: example.test, name: www.example.test, records: ["192.0.2.20"]}}
    confirm: {{message: "switch www?", approvals: 1, approvers: ["@oncall"], timeout: 60}}
"""


def _move_www(server: BindServer, address: str, name: str = "www") -> None:
    import dns.query
    import dns.update

    update = dns.update.UpdateMessage("example.test.")
    update.replace(name, 300, "A", address)
    dns.query.tcp(update, server.host, port=server.port, timeout=5)


def test_a_plan_that_changed_before_approval_voids_the_approvals_and_asks_again(
        team: Team, drive: Any, bind_factory: Any) -> None:
    """Alice approves "192.0.2.10 → .20"; meanwhile someone moved www to .99. Re-planned before applying, the
    plan is not the one she signed: her approval is void, the gate opens again with the new plan, and only
    an approval of that plan lets the step run."""
    server = bind_factory({"example.test.": zone_text("example.test.", "www IN A 192.0.2.10\n")},
                          update_zones=["example.test."])
    team.runbook.write_text(DNS_RUNBOOK.format(server=server.address), encoding="utf-8")
    d = drive()
    _move_www(server, "192.0.2.99")
    assert _approve(team, "alice", d).returncode == 0
    deadline = time.monotonic() + 30
    again: list[dict[str, Any]] = []
    while not again and time.monotonic() < deadline:
        again = [r for r in json.loads(team.bg("alice", "pending", "--json").stdout or "[]") if r["digest"] != d.digest]
        time.sleep(0.1)
    assert again, "the gate did not open again with the new plan"
    assert "192.0.2.99" in again[0]["plan"] and again[0]["missing"] == 1
    stale = _approve(team, "alice", d)  # the digest she saw first
    assert stale.returncode == 3 and "not the one you saw" in stale.stderr
    fresh = team.bg("alice", "approve", d.run, "change", "--key", str(team.key("alice")), "--digest",
                    again[0]["digest"])
    assert fresh.returncode == 0, fresh.stderr
    code, err = d.finish()
    assert code == 0, err
    assert "approvals given are void" in err
    recs = _records(team, d.run)
    kinds = [r["type"] for r in recs]
    voided = next(r for r in recs if r["type"] == "gate.voided")
    assert voided["digest"] == d.digest and voided["now"] == again[0]["digest"] and "192.0.2.99" in voided["plan"]
    assert kinds.count("gate.asked") == 2 and kinds.count("approval.counted") == 2
    assert kinds.index("gate.voided") < kinds.index("gate.approved") < kinds.index("step.applying")
    assert next(r for r in recs if r["type"] == "gate.approved")["digest"] == again[0]["digest"]


LOOP_RUNBOOK = """\
id: four-eyes
title: Move two names with another person's approval
steps:
  - id: change
    title: Point each name at the standby
    for_each: [www, api]
    action: dns.update
    with: {{server: "{server}", zone: example.test, name: "{{{{ item }}}}.example.test", records: ["192.0.2.20"]}}
    confirm: {{message: "switch them?", approvals: 1, approvers: ["@oncall"], timeout: 60}}
"""


def test_a_write_loop_whose_plan_changed_before_approval_voids_the_approvals_and_asks_again(
        team: Team, drive: Any, bind_factory: Any) -> None:
    """A loop's one gate shows every item's plan; Alice approves it while someone moves the second name.
    Every item is planned again before the first applies: the plan is not the one she signed, so her
    approval is void, the gate asks again with the new plans, and no item applies before that is approved."""
    zone = zone_text("example.test.", "www IN A 192.0.2.10\napi IN A 192.0.2.10\n")
    server = bind_factory({"example.test.": zone}, update_zones=["example.test."])
    team.runbook.write_text(LOOP_RUNBOOK.format(server=server.address), encoding="utf-8")
    d = drive()
    _move_www(server, "192.0.2.99", name="api")
    assert _approve(team, "alice", d).returncode == 0
    deadline = time.monotonic() + 30
    again: list[dict[str, Any]] = []
    while not again and time.monotonic() < deadline:
        again = [r for r in json.loads(team.bg("alice", "pending", "--json").stdout or "[]") if r["digest"] != d.digest]
        time.sleep(0.1)
    assert again, "the loop's gate did not open again with the new plans"
    assert again[0]["missing"] == 1
    stale = _approve(team, "alice", d)
    assert stale.returncode == 3 and "not the one you saw" in stale.stderr
    fresh = team.bg("alice", "approve", d.run, "change", "--key", str(team.key("alice")), "--digest",
                    again[0]["digest"])
    assert fresh.returncode == 0, fresh.stderr
    code, err = d.finish()
    assert code == 0, err
    assert "approvals given are void" in err
    recs = _records(team, d.run)
    kinds = [r["type"] for r in recs]
    voided = next(r for r in recs if r["type"] == "gate.voided")
    assert voided["gate"] == "change" and voided["digest"] == d.digest and voided["now"] == again[0]["digest"]
    planned = [r["step"] for r in recs if r["type"] == "step.planned"]
    assert planned == ["change[0]", "change[1]", "change[0]", "change[1]"], "each item planned again"
    asked = [r for r in recs if r["type"] == "gate.asked"]
    assert "192.0.2.99" not in json.dumps(asked[0]["shown"]) and "192.0.2.99" in json.dumps(asked[1]["shown"])
    first_apply = kinds.index("step.applying")
    assert kinds.index("gate.voided") < kinds.index("gate.approved") < first_apply
    assert next(r for r in recs if r["type"] == "gate.approved")["digest"] == again[0]["digest"]
    assert [r["step"] for r in recs if r["type"] == "step.succeeded"] == ["change[0]", "change[1]", "change"]


def _forged_signers(team: Team, who: str) -> Path:
    """The team's file with ``who``'s line carrying mallory's key: what an auditor holds if the log lies."""
    mallory = " ".join(team.key("mallory").with_name("id_ed25519.pub").read_text().split()[:2])
    lines = team.signers_file.read_text().splitlines()
    forged = [f"{line.split()[0]} {mallory}" if line.split()[0].split(",")[0] == who else line for line in lines]
    path = team.root / f"allowed_signers-without-{who}"
    path.write_text("\n".join(forged) + "\n")
    return path


def test_evidence_audit_verify_signers_rechecks_each_approval_and_the_signed_head(team: Team, drive: Any) -> None:
    d = drive("--sign", "--key", str(team.key("oscar")))
    assert _approve(team, "alice", d).returncode == 0
    assert _approve(team, "bob", d).returncode == 0
    code, err = d.finish()
    assert code == 0, err
    recs = _records(team, d.run)
    signed = recs[-1]
    assert signed["type"] == "head.signed" and signed["by"] == "oscar" and signed["head"] == recs[-2]["hash"]
    assert recs[-2]["type"] == "run.finished"

    good = team.bg("carol", "audit", "verify", d.run, "--signers", str(team.signers_file))
    assert good.returncode == 0, good.stdout + good.stderr
    seqs = {r["by"]: r["seq"] for r in recs if r["type"] == "approval.signed"}
    assert f"record {seqs['alice']}: alice approve at gate change: signature verified (SHA256:" in good.stdout
    assert f"record {seqs['bob']}: bob approve at gate change: signature verified (SHA256:" in good.stdout
    assert f"record {signed['seq']}: audit head signed by oscar: signature verified" in good.stdout

    not_alice = team.bg("carol", "audit", "verify", d.run, "--signers", str(_forged_signers(team, "alice")))
    assert not_alice.returncode == 6
    assert f"record {seqs['alice']}: alice approve at gate change: NOT verified" in not_alice.stderr
    assert f"record {seqs['bob']}: bob approve at gate change: signature verified" in not_alice.stdout
    assert "1 signature(s) the run relied on do not verify" in not_alice.stderr

    not_oscar = team.bg("carol", "audit", "verify", d.run, "--signers", str(_forged_signers(team, "oscar")))
    assert not_oscar.returncode == 6
    assert f"record {signed['seq']}: audit head signed by oscar: NOT verified" in not_oscar.stderr

    report = team.bg("carol", "report", d.run, "--format", "markdown")
    assert report.returncode == 0, report.stderr
    assert "- alice: signature verified \\(SHA256:" in report.stdout
    assert "- bob: signature verified \\(SHA256:" in report.stdout


def test_evidence_a_moved_head_signature_does_not_verify(team: Team, drive: Any) -> None:
    """A genuine head.signed copied to the end of a longer log (appended after more records) signs another head."""
    d = drive("--sign", "--key", str(team.key("oscar")))
    assert _approve(team, "alice", d).returncode == 0
    assert _approve(team, "bob", d).returncode == 0
    assert d.finish()[0] == 0
    signed = _records(team, d.run)[-1]
    writer = team.store().writer(d.run, {"run": d.run, "mode": "live"})
    writer.append("note", {"text": "added later", "by": "mallory"})
    writer.append("head.signed", {k: signed[k] for k in ("head", "by", "fingerprint", "payload", "signature")})
    writer.close()
    done = team.bg("carol", "audit", "verify", d.run, "--signers", str(team.signers_file))
    assert done.returncode == 6
    assert "does not sign the chain head before it" in done.stderr


def test_report_says_why_an_approval_did_not_count(team: Team, drive: Any) -> None:
    team.write_runbook(needed=1, timeout=30)
    d = drive()
    gate = approvals.open_gates(_records(team, d.run))[0]
    body = approvals.payload(d.run, "change", "0" * 64, gate.head, approvals.APPROVE, "alice")
    writer = team.store().writer(d.run, {"run": d.run, "mode": "live"})
    writer.append("approval.signed", {"step": "change", "gate": "change", "by": "alice", "decision": "approve",
                                      "payload": body.decode(), "signature": signers.sign(body, team.key("alice"))})
    writer.close()
    assert _approve(team, "bob", d).returncode == 0
    assert d.finish()[0] == 0
    html = team.bg("carol", "report", d.run, "--format", "html")
    assert html.returncode == 0, html.stderr
    assert "alice: not counted: signed over another plan" in html.stdout
    assert "bob: signature verified (SHA256:" in html.stdout


ANNOUNCED = """\
id: four-eyes
title: Change something, announced to the approvers' channel
steps:
  - id: change
    title: Change something
    action: shell.run
    with: {{argv: ["true"]}}
    confirm:
      message: change it?
      approvals: 1
      approvers: ["@oncall"]
      timeout: 30
      announce:
        action: notify.webhook
        with:
          url: "{url}/hooks/T01/B02/{secret}"
          text: "{{{{ gate.needed }}}} approval(s) wanted from {{{{ gate.approvers | join(', ') }}}}: {{{{ gate.approve }}}}"
"""


def test_a_webhook_announces_the_open_gate_with_the_exact_approve_command(team: Team, drive: Any, web: WebLab) -> None:
    secret = "hookSecretToken123"
    team.runbook.write_text(ANNOUNCED.format(url=web.http_url, secret=secret), encoding="utf-8")
    before = len(web.received)
    d = drive()
    deadline = time.monotonic() + 20
    while len(web.received) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    posted = web.received[before:]
    assert len(posted) == 1 and posted[0].path == f"/hooks/T01/B02/{secret}"
    text = posted[0].json["text"]  # Slack's shape: one "text" field
    command = f"breakglass approve {d.run} change --digest {d.digest}"
    assert text.startswith(f"1 approval(s) wanted from @oncall: {command}"), text
    done = team.bg("alice", *command.split()[1:], "--key", str(team.key("alice")))  # the message's command, as is
    assert done.returncode == 0, done.stderr
    code, err = d.finish()
    assert code == 0, err
    recs = _records(team, d.run)
    announced = next(r for r in recs if r["type"] == "gate.announced")
    assert announced["ok"] is True and announced["action"] == "notify.webhook"
    assert secret not in json.dumps(recs) and secret not in err


def test_an_announcement_must_be_a_notify_action(team: Team) -> None:
    text = ANNOUNCED.format(url="http://127.0.0.1:9", secret="x").replace("action: notify.webhook",
                                                                         "action: shell.run")
    team.runbook.write_text(text, encoding="utf-8")
    done = team.bg("oscar", "validate", str(team.runbook))
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "four-eyes.yaml:14:17:" in said and "not a notify action" in said, said
