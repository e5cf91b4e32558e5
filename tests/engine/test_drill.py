"""Drills: a simulated world answered by step id, no network at all, gates that still ask, a grade."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from actions.registry import Registry
from engine import drill
from engine.cli import app
from engine.console import JsonReporter
from engine.errors import ActionError, RunbookError
from engine.gates import Terminal
from engine.loader import load_file
from engine.session import RunOptions
from engine.store import FileStore

CASE = Path(__file__).parent / "drill_case"
RUNBOOK = CASE / "drill-demo.yaml"
SECRET = "c2VjcmV0LXRzaWctdmFsdWU="


class _NoTty(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def socket_guard(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every outbound connection or lookup in this process is recorded and refused."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network access attempted in a drill test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket.socket, "sendto", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def _drill(
    scenario: str | None = None,
    *,
    yes: bool = True,
    approvals: frozenset[str] = frozenset(),
    given: dict[str, Any] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    loaded = load_file(RUNBOOK)
    chosen = drill.load_scenario(drill.find_scenario(loaded.path, "drill-demo", scenario))
    out = io.StringIO()
    opts = RunOptions(operator="alice", yes=yes, approvals=approvals, terminal=Terminal(stdin=_NoTty()))
    outcome = drill.run_drill(loaded, chosen, given or {}, opts, JsonReporter(out), FileStore())
    records = [r.to_dict() for r in FileStore().records(outcome.run_id)]
    return outcome, records


def _graded(records: list[dict[str, Any]]) -> dict[str, Any]:
    return [r for r in records if r["type"] == "drill.graded"][-1]


def test_drill_follows_the_expected_path_with_no_network(
    bg_home: Path, socket_guard: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Take the drill's own fence down: the proof is that the simulated world never even tries.
    monkeypatch.setattr(drill, "no_network", contextlib.nullcontext)
    began = time.monotonic()
    outcome, records = _drill()
    assert socket_guard == []
    assert outcome.status == "succeeded", records[-1]
    assert time.monotonic() - began < 20  # wait.sleep of 300 s and the 60 s retry delay were not spent
    graded = _graded(records)
    assert (graded["score"], graded["total"], graded["deviations"]) == (7, 7, [])
    assert graded["decisions"] == [
        {"gate": "switch", "approved": True, "by": "alice", "how": "yes", "waited_s": 0.0}
    ]
    assert graded["simulated_durations"]["settle"] == 300.0
    assert graded["simulated_durations"]["probe"] == 3.0  # 1.5 s for each of two attempts
    # Every record says DRILL; graded comes right before the end.
    assert {r["mode"] for r in records} == {"drill"}
    assert [r["type"] for r in records[-2:]] == ["drill.graded", "run.finished"]
    started = records[0]
    assert started["drill"]["scenario"] == "dead-origin"
    assert len(started["drill"]["scenario_sha256"]) == 64
    by_step = {(r["type"], r.get("step")): r for r in records}
    # outputs: successive attempts; effects: verify sees the world after the switch.
    assert by_step[("step.succeeded", "probe")]["attempts"] == 2
    assert by_step[("step.succeeded", "verify")]["output"]["answers"] == ["198.51.100.7"]
    assert by_step[("step.planned", "switch")]["summary"].startswith("A www.example.com")
    # Local actions ran for real (log.note rendered over simulated output).
    assert by_step[("step.succeeded", "note_it")]["message"] == "site down: 503"
    assert SECRET not in (bg_home / "runs" / outcome.run_id / "audit.jsonl").read_text()


def test_the_drill_fence_refuses_network_and_is_lifted_after(bg_home: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        with drill.no_network(), pytest.raises(ActionError, match="network access is disabled"):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        with drill.no_network(), pytest.raises(ActionError):
            socket.getaddrinfo("localhost", 80)
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        listener.close()


def test_gates_still_ask_and_deviations_are_graded(bg_home: Path) -> None:
    outcome, records = _drill(yes=False)
    assert outcome.status == "refused" and outcome.exit_code == 3
    graded = _graded(records)
    assert graded["score"] == 2 and graded["total"] == 7
    assert "gate switch: expected approved, was denied" in graded["deviations"]
    assert "step verify: expected succeeded, was pending" in graded["deviations"]
    assert "outcome: expected succeeded, was refused" in graded["deviations"]
    assert graded["decisions"][0]["how"] == "no-tty"


def test_rollback_is_simulated_and_graded(bg_home: Path) -> None:
    outcome, records = _drill("switch-breaks", approvals=frozenset({"switch"}), yes=False)
    assert outcome.status == "rolled_back"
    graded = _graded(records)
    assert graded["deviations"] == [] and graded["score"] == graded["total"] == 4
    assert [r["output"] for r in records if r["type"] == "rollback.succeeded"] == [{"restored": True}]
    assert graded["decisions"][0]["how"] == "flag"


def test_a_failed_rollback_is_graded_rollback_incomplete(bg_home: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "undo-fails.yaml"
    source = (CASE / "scenarios" / "drill-demo" / "02-switch-breaks.yaml").read_text()
    scenario.write_text(
        source.replace("rollback: {output: {restored: true}}", "rollback: {fail: the old record is gone}")
        .replace("switch: rolled_back", "switch: rollback_failed")
        .replace("outcome: rolled_back", "outcome: rollback_incomplete")
    )
    outcome, records = _drill(str(scenario), approvals=frozenset({"switch"}), yes=False)
    assert outcome.status == "rollback_incomplete" and outcome.exit_code not in (0, 1)
    graded = _graded(records)
    assert graded["outcome"] == "rollback_incomplete" and graded["deviations"] == []


def test_an_undescribed_step_is_simulated_and_noted(bg_home: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "sparse.yaml"
    scenario.write_text(
        "title: sparse\ninputs: {domain: example.net, tsig: abcdefgh}\n"
        "steps: {probe: {output: {status: 503}}}\nexpect: {outcome: failed}\n"
    )
    outcome, records = _drill(str(scenario))
    graded = _graded(records)
    assert "scenario does not describe step check_dns" in graded["deviations"]
    assert "outcome: expected failed, was rolled_back" in graded["deviations"]
    assert graded["score"] == 0 and graded["total"] == 1
    assert records[2]["output"] == {"simulated": True}  # check_dns
    assert outcome.status == "rolled_back"  # verify's expect fails on {"simulated": true}


def test_a_scenario_can_expect_a_refused_step(bg_home: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "nobody-approves.yaml"
    source = (CASE / "scenarios" / "drill-demo" / "01-dead-origin.yaml").read_text()
    scenario.write_text(source.replace(
        "expect:\n  steps: {check_dns: succeeded, probe: succeeded, switch: succeeded, verify: succeeded, "
        "fallback: skipped}\n  gates: {switch: approved}\n  outcome: succeeded",
        "expect:\n  steps: {switch: refused, verify: pending}\n  gates: {switch: denied}\n  outcome: refused"))
    outcome, records = _drill(str(scenario), yes=False)
    graded = _graded(records)
    assert outcome.status == "refused"
    assert graded["deviations"] == [] and graded["score"] == graded["total"] == 4


def _drill_of(runbook_text: str, scenario_text: str, tmp_path: Path, **opts: Any) -> tuple[Any, list[dict[str, Any]]]:
    from engine.loader import load_text

    loaded = load_text(runbook_text, str(tmp_path / "drill-demo.yaml"))
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario_text)
    options = RunOptions(operator="alice", terminal=Terminal(stdin=_NoTty()), **opts)
    outcome = drill.run_drill(loaded, drill.load_scenario(path), {}, options, JsonReporter(io.StringIO()),
                              FileStore())
    return outcome, [r.to_dict() for r in FileStore().records(outcome.run_id)]


UNTIL_APPLIED = "    retries: {attempts: 3, delay: 0}\n    until: result.verified\n    rollback:\n"
APPLIED_ON_SECOND = "    outputs: [{verified: false}, {verified: true}]\n"


def test_a_change_applied_until_it_holds_is_not_an_undo(bg_home: Path, tmp_path: Path) -> None:
    """The simulated world is told which call undoes a step: a change applied again is still the change."""
    book = RUNBOOK.read_text().replace("    rollback:\n", UNTIL_APPLIED)
    scenario = (CASE / "scenarios" / "drill-demo" / "01-dead-origin.yaml").read_text().replace(
        "    output: {applied: true}\n", APPLIED_ON_SECOND)
    assert UNTIL_APPLIED in book and APPLIED_ON_SECOND in scenario
    outcome, records = _drill_of(book, scenario, tmp_path, approvals=frozenset({"switch"}))
    switch = [r for r in records if r.get("step") == "switch"]
    assert [r["output"] for r in switch if r["type"] == "step.succeeded"] == [{"verified": True}]
    assert [r["attempt"] for r in switch if r["type"] == "step.retried"] == [1]
    assert outcome.status == "succeeded" and _graded(records)["deviations"] == []


def test_an_undo_retries_with_its_own_answers(bg_home: Path, tmp_path: Path) -> None:
    undo = "    rollback:\n      retries: {attempts: 2, delay: 0}\n      until: result.verified\n"
    book = RUNBOOK.read_text().replace("    rollback:\n", UNDO_UNTIL := UNTIL_APPLIED.replace("    rollback:\n", undo))
    scenario = (CASE / "scenarios" / "drill-demo" / "02-switch-breaks.yaml").read_text().replace(
        "    output: {applied: true}\n    rollback: {output: {restored: true}}",
        APPLIED_ON_SECOND + "    rollback: {outputs: [{verified: false}, {verified: true}]}")
    assert UNDO_UNTIL in book and APPLIED_ON_SECOND in scenario
    outcome, records = _drill_of(book, scenario, tmp_path, approvals=frozenset({"switch"}))
    switch = [r for r in records if r.get("step") == "switch"]
    assert [r["attempt"] for r in switch if r["type"] == "rollback.retried"] == [1], "until held on the second"
    assert [r["output"] for r in switch if r["type"] == "rollback.succeeded"] == [{"verified": True}]
    assert outcome.status == "rolled_back" and _graded(records)["deviations"] == []


def test_scenario_errors_are_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nsteps:\n  probe:\n    outptu: {}\nexpect:\n  outcome: fine\n")
    with pytest.raises(RunbookError) as info:
        drill.load_scenario(bad)
    text = str(info.value)
    assert f"{bad}:4:5: unknown key 'outptu'" in text
    assert f"{bad}:6:12: unknown outcome 'fine'" in text


def test_world_replay_redoes_effects_for_a_resumed_drill() -> None:
    scenario = drill.load_scenario(CASE / "scenarios" / "drill-demo" / "01-dead-origin.yaml")
    world = drill.SimulatedWorld(scenario)
    world.replay(
        [
            {"type": "step.started", "step": "switch", "effect": "write", "action": "dns.update"},
            {"type": "step.succeeded", "step": "switch"},
        ]
    )
    action = Registry().get("dns.lookup")()
    params = action.Params.model_validate({"name": "www.example.com"})
    from actions.base import ActionContext

    assert world.run("verify", action, params, ActionContext()).output["answers"] == ["198.51.100.7"]


# --- the command line --------------------------------------------------------------------------------


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_cli_drill_yes_list_inputs_and_refusal(bg_home: Path) -> None:
    listed = _cli("drill", str(RUNBOOK), "--list-scenarios", "--json")
    assert [row["name"] for row in json.loads(listed.output)] == ["dead-origin", "switch-breaks"]
    ok = _cli("drill", str(RUNBOOK), "--yes", "--json", "-i", "domain=example.org", "--operator", "bob")
    assert ok.exit_code == 0, ok.output
    records = [json.loads(line) for line in ok.output.splitlines()]
    assert records[0]["inputs"]["domain"] == "example.org" and records[0]["inputs"]["tsig"] == "***"
    assert {r["mode"] for r in records} == {"drill"}
    refused = _cli("drill", str(RUNBOOK))  # CliRunner's stdin is no TTY: gates fail closed
    assert refused.exit_code == 3
    assert "gate switch: expected approved, was denied" in refused.output
    missing = CliRunner().invoke(app, ["drill", str(RUNBOOK), "--scenario", "nope"])
    assert missing.exit_code != 0 and "has no scenario 'nope'" in str(missing.exception)


def test_cli_resume_of_a_refused_drill_finishes_it(bg_home: Path) -> None:
    assert _cli("drill", str(RUNBOOK)).exit_code == 3
    # Secret inputs are never recorded, so a resumed drill is given its fake secret again.
    resumed = _cli("resume", "last", "--approve", "switch", "--json", "-i", f"tsig={SECRET}")
    assert resumed.exit_code == 0, resumed.output
    records = [r.to_dict() for r in FileStore().records(FileStore().resolve("last"))]
    graded = _graded(records)
    assert graded["outcome"] == "succeeded"
    assert [d["approved"] for d in graded["decisions"]] == [False, True]
    assert {r["mode"] for r in records} == {"drill"}


GUARD = """
import socket
def _refuse(*a, **k):
    raise SystemExit("network access attempted: %r" % (a[1:] if isinstance(a[0], socket.socket) else a,))
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.getaddrinfo = _refuse
"""


def test_readme_first_command_default_drill_with_no_network_and_no_tty(tmp_path: Path) -> None:
    """`breakglass drill --yes`: the shipped default, in a fresh process that may not touch the network."""
    from engine.locate import SHIPPED_DIR

    if not (SHIPPED_DIR / "scenarios" / drill.DEFAULT_RUNBOOK).is_dir():
        pytest.skip(f"runbook '{drill.DEFAULT_RUNBOOK}' ships no scenarios yet")
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(GUARD)
    exe = shutil.which("breakglass") or sys.executable
    env = {**os.environ, "BREAKGLASS_HOME": str(tmp_path / "home"), "PYTHONPATH": str(tmp_path / "guard")}
    proc = subprocess.run(
        [exe, "drill", "--yes"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "network access attempted" not in proc.stderr + proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[DRILL]" in proc.stdout and "drill grade:" in proc.stdout
