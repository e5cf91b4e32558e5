"""The run state machine: its transition table walked whole, and real logs replayed into the same state."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from breakglass.engine import audit
from breakglass.engine.console import NullReporter
from breakglass.engine.errors import AuditError
from breakglass.engine.loader import load_text
from breakglass.engine.machine import DONE, RUN_EVENTS, STEP_TRANSITIONS, RunState, StepStatus, replay
from breakglass.engine.runner import Runner
from breakglass.engine.session import RunOptions, start
from breakglass.engine.store import FileStore

# Every record type a step can see, from the table itself plus ones the table must reject everywhere.
STEP_EVENTS = sorted({event for _, event in STEP_TRANSITIONS} | {"step.exploded", "rollback.maybe"})
PAIRS = list(itertools.product(list(StepStatus), STEP_EVENTS))


def _state_at(status: StepStatus) -> RunState:
    state = RunState(["a", "b"])
    state.steps["a"].status = status
    return state


def test_the_table_covers_real_events_only() -> None:
    assert len(PAIRS) == len(StepStatus) * len(STEP_EVENTS)
    assert not RUN_EVENTS & set(STEP_EVENTS), "run events must never move a step"


@pytest.mark.parametrize(("status", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_status_event_pair(status: StepStatus, event: str) -> None:
    state = _state_at(status)
    rec = {"type": event, "step": "a", "seq": 7}
    expected = STEP_TRANSITIONS.get((status, event))
    if expected is None:
        with pytest.raises(AuditError, match=f"record 7: step 'a' cannot go from {status}"):
            state.apply(rec)
        assert state.steps["a"].status is status
        return
    state.apply(rec)
    assert state.steps["a"].status is expected
    assert state.steps["b"].status is StepStatus.PENDING, "an event moves only its own step"
    assert state.last_seq == 7
    assert state.context()["a"]["status"] == str(expected), "the template view follows the state"


def test_dry_run_plan_is_final() -> None:
    state = _state_at(StepStatus.RUNNING)
    state.apply({"type": "step.planned", "step": "a", "seq": 3, "final": True, "summary": "run x"})
    assert state.steps["a"].status is StepStatus.PLANNED and state.steps["a"].ok
    assert state.steps["a"].done and state.next_index() == 1
    assert state.context()["a"]["output"]["plan"]["summary"] == "run x"


@pytest.mark.parametrize("status", list(StepStatus))
@pytest.mark.parametrize("event", sorted(RUN_EVENTS))
def test_run_events_never_move_a_step(status: StepStatus, event: str) -> None:
    state = _state_at(status)
    state.apply({"type": event, "seq": 2, "run": "r1", "status": "failed", "mode": "drill"})
    assert state.steps["a"].status is status


def test_run_events_set_the_run_status() -> None:
    state = RunState(["a"])
    state.apply({"type": "run.started", "seq": 1, "run": "r1", "mode": "dry-run"})
    assert (state.status, state.mode, state.run_id) == ("running", "dry-run", "r1")
    state.apply({"type": "run.finished", "seq": 2, "status": "refused"})
    assert state.status == "refused"
    state.apply({"type": "run.resumed", "seq": 3})
    assert state.status == "running"


def test_unknown_step_is_an_impossible_log() -> None:
    with pytest.raises(AuditError, match="unknown step 'ghost'"):
        RunState(["a"]).apply({"type": "step.started", "step": "ghost", "seq": 4})


def test_done_and_in_doubt_questions() -> None:
    state = RunState(["a", "b", "c"])
    for status in StepStatus:
        state.steps["a"].status = status
        assert state.steps["a"].done is (status in DONE)
    state.steps["a"].status = StepStatus.SUCCEEDED
    state.steps["b"].status = StepStatus.APPLYING
    assert state.in_doubt() == ["b"] and state.next_index() == 1
    state.steps["b"].status = StepStatus.FAILED
    state.steps["b"].continued = True
    assert state.next_index() == 2, "a failed step that said continue is done"


# --- replaying real logs -----------------------------------------------------------------------------

RUNBOOKS = {
    "mixed": """
id: mixed
title: every kind of step outcome
steps:
  - id: probe
    title: read
    action: shell.run
    with: {argv: [echo, hi], read_only: true}
  - id: skipped
    title: never
    action: log.note
    when: "{{ steps.probe.output.stdout.strip() == 'nope' }}"
    with: {text: unreachable}
  - id: flaky
    title: fails, then goes on
    action: shell.run
    retries: {attempts: 2, delay: 0}
    on_failure: continue
    with: {argv: [/bin/false], read_only: true}
  - id: change
    title: a change
    action: shell.run
    with: {argv: [/bin/true]}
  - id: check
    title: check
    action: assert
    with: {that: "{{ steps.change.ok }}"}
""",
    "rollback": """
id: rollback
title: a failure that rolls back
steps:
  - id: one
    title: first change
    action: shell.run
    confirm: false
    with: {argv: [/bin/true]}
    rollback: {action: shell.run, with: {argv: [/bin/true]}, confirm: false}
  - id: two
    title: second change
    action: shell.run
    confirm: false
    with: {argv: [/bin/true]}
    rollback: {action: shell.run, with: {argv: [/bin/true]}, confirm: false}
  - id: boom
    title: fails
    action: shell.run
    on_failure: rollback
    with: {argv: [/bin/false], read_only: true}
""",
}


@pytest.mark.parametrize(("name", "mode", "status"), [
    ("mixed", "live", "succeeded"), ("mixed", "dry-run", "succeeded"), ("rollback", "live", "rolled_back"),
])
def test_replaying_the_log_rebuilds_the_runner_state(tmp_path: Path, name: str, mode: str,
                                                      status: str) -> None:
    loaded = load_text(RUNBOOKS[name], str(tmp_path / f"{name}.yaml"))
    seen: list[Runner] = []
    approvals = frozenset({"change"}) if name == "mixed" else frozenset()
    opts = RunOptions(mode=mode, operator="tester", approvals=approvals, before_finish=seen.append)
    store = FileStore(tmp_path / "home")
    outcome = start(loaded, {}, opts, NullReporter(), store=store)
    assert outcome.status == status
    live = seen[0].state
    records = [r.to_dict() for r in audit.read(store.log_path(outcome.run_id))[0]]
    rebuilt = replay([s.id for s in loaded.runbook.steps], records)
    assert rebuilt.steps == live.steps
    assert (rebuilt.status, rebuilt.mode, rebuilt.run_id, rebuilt.last_seq) == (
        live.status, live.mode, live.run_id, live.last_seq)
    assert rebuilt.context() == live.context()
    if name == "rollback":
        assert [rebuilt.steps[s].status for s in ("one", "two", "boom")] == [
            StepStatus.ROLLED_BACK, StepStatus.ROLLED_BACK, StepStatus.FAILED]
    if mode == "dry-run":
        assert rebuilt.steps["change"].status is StepStatus.PLANNED


def test_replay_rejects_a_reordered_real_log(tmp_path: Path) -> None:
    loaded = load_text(RUNBOOKS["mixed"], str(tmp_path / "mixed.yaml"))
    store = FileStore(tmp_path / "home")
    opts = RunOptions(operator="t", approvals=frozenset({"change"}))
    outcome = start(loaded, {}, opts, NullReporter(), store=store)
    records = [r.to_dict() for r in audit.read(store.log_path(outcome.run_id))[0]]
    started = next(i for i, r in enumerate(records) if r["type"] == "step.started" and r["step"] == "probe")
    records.insert(started, records.pop(started + 1))  # the outcome before the start
    with pytest.raises(AuditError, match="step 'probe' cannot go from pending on 'step.succeeded'"):
        replay([s.id for s in loaded.runbook.steps], records)
