"""The run state machine: its transition table walked whole, and real logs replayed into the same state."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.console import NullReporter
from engine.errors import AuditError
from engine.events import RUN_RECORDS, RecordType, RunStatus, StepStatus
from engine.events import outcome as outcome_of
from engine.loader import load_text
from engine.machine import DONE, STEP_TRANSITIONS, RunState, Variant, replay
from engine.model import step_ids
from engine.runner import Runner
from engine.session import RunOptions, resume, start
from engine.store import FileStore

# The step lifecycle as the docs tell it, written out by hand and not read from the table: the table must say
# exactly this, no more. "step.planned final" is a dry-run's plan, after which the step is done.
LIFECYCLE = """
pending    step.started        running
pending    step.skipped        skipped
pending    step.failed         failed
running    step.started        running
running    step.retried        running
running    step.planned        running
running    step.planned final  planned
running    loop.expanded       running
running    step.applying       applying
running    step.succeeded      succeeded
running    step.failed         failed
running    step.skipped        skipped
running    step.interrupted    running
running    step.refused        refused
applying   step.retried        applying
applying   step.succeeded      succeeded
applying   step.failed         failed
applying   step.interrupted    applying
applying   step.in_doubt       applying
applying   step.started        running
failed     step.started        running
failed     step.failed         failed
refused    step.started        running
refused    step.failed         failed
succeeded  rollback.started    succeeded
succeeded  rollback.retried    succeeded
succeeded  rollback.skipped    succeeded
succeeded  rollback.succeeded  rolled_back
succeeded  rollback.failed     rollback_failed
"""
EXPECTED = {(now, event): nxt for now, *words, nxt in (line.split() for line in LIFECYCLE.strip().splitlines())
            for event in [" ".join(words)]}
STEP_RECORDS = sorted(str(t) for t in RecordType if t not in RUN_RECORDS)
PAIRS = list(itertools.product([str(s) for s in StepStatus], [*STEP_RECORDS, "step.planned final"]))


def _state_at(status: StepStatus) -> RunState:
    state = RunState(["a", "b"])
    state.steps["a"].status = status
    return state


def _record(event: str, seq: int = 7) -> dict[str, Any]:
    kind, _, final = event.partition(" ")
    return {"type": kind, "step": "a", "seq": seq, "final": final == "final", "summary": "run x"}


def test_the_table_is_the_lifecycle_and_nothing_else() -> None:
    assert {(str(s), str(e)): str(n) for (s, e), n in STEP_TRANSITIONS.items()} == EXPECTED
    assert Variant.DRY_RUN_PLAN == "step.planned final"
    assert len(PAIRS) == len(StepStatus) * (len(RecordType) - len(RUN_RECORDS) + 1)


@pytest.mark.parametrize(("status", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_status_and_record_pair(status: str, event: str) -> None:
    state = _state_at(StepStatus(status))
    expected = EXPECTED.get((status, event))
    if expected is None:
        with pytest.raises(AuditError, match=f"record 7: step 'a' cannot go from {status}"):
            state.apply(_record(event))
        assert state.steps["a"].status == status
        return
    state.apply(_record(event))
    assert state.steps["a"].status == expected
    assert state.steps["b"].status is StepStatus.PENDING, "a record moves only its own step"
    assert state.last_seq == 7
    assert state.context()["a"]["status"] == expected, "the template view follows the state"


def test_a_loop_s_items_are_steps_from_its_expansion_on() -> None:
    state = _state_at(StepStatus.RUNNING)
    with pytest.raises(AuditError, match="names unknown step 'a\\[0\\]'"):
        state.apply({"type": "step.started", "step": "a[0]", "seq": 2, "effect": "write"})
    state.apply({"type": "loop.expanded", "step": "a", "seq": 3, "keys": [0, 1], "items": ["x", "y"],
                 "mapping": False})
    assert state.steps["a[0]"].status is StepStatus.PENDING and state.steps["a[1]"].status is StepStatus.PENDING
    state.apply({"type": "step.started", "step": "a[1]", "seq": 4, "effect": "write"})
    state.apply({"type": "step.applying", "step": "a[1]", "seq": 5})
    assert state.steps["a[0]"].status is StepStatus.PENDING, "a record moves only its own item"
    assert state.in_doubt() == ["a[1]"]
    assert state.context()["a"]["items"][1] == {"key": 1, "item": "y", "output": {}, "ok": False,
                                                "status": "applying"}
    with pytest.raises(AuditError, match="the items of loop 'a' were already fixed"):
        state.apply({"type": "loop.expanded", "step": "a", "seq": 6, "keys": [0], "items": ["z"], "mapping": False})


@pytest.mark.parametrize("kind", ["step.exploded", "rollback.maybe", "gate.ajar"])
def test_a_record_type_that_does_not_exist_is_an_impossible_log(kind: str) -> None:
    state = _state_at(StepStatus.RUNNING)
    with pytest.raises(AuditError, match=f"record 7: unknown record type '{kind}'"):
        state.apply({"type": kind, "step": "a", "seq": 7})
    assert state.steps["a"].status is StepStatus.RUNNING


def test_dry_run_plan_is_final() -> None:
    state = _state_at(StepStatus.RUNNING)
    state.apply({"type": "step.planned", "step": "a", "seq": 3, "final": True, "summary": "run x"})
    assert state.steps["a"].status is StepStatus.PLANNED and state.steps["a"].ok
    assert state.steps["a"].done and state.next_index() == 1
    assert state.context()["a"]["output"]["plan"]["summary"] == "run x"


@pytest.mark.parametrize("status", list(StepStatus))
@pytest.mark.parametrize("event", sorted(RUN_RECORDS))
def test_run_records_never_move_a_step(status: StepStatus, event: str) -> None:
    state = _state_at(status)
    state.apply({"type": event, "seq": 2, "run": "r1", "status": "failed", "mode": "drill"})
    assert state.steps["a"].status is status


def test_run_records_set_the_run_status() -> None:
    state = RunState(["a"])
    assert state.status is RunStatus.CREATED
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
    # Undos with retries and expect, the second of which cannot be verified: a rollback left incomplete.
    "undo": """
id: undo
title: undos that retry and verify
steps:
  - id: one
    title: first change
    action: shell.run
    confirm: false
    with: {argv: [/bin/true]}
    rollback:
      action: shell.run
      confirm: false
      retries: {attempts: 3, delay: 0}
      with: {argv: [sh, -c, 'n=$(cat "$0" 2>/dev/null || echo 0); echo $((n+1)) > "$0"; [ "$n" -ge 1 ]', COUNTER]}
  - id: two
    title: second change
    action: shell.run
    confirm: false
    with: {argv: [/bin/true]}
    rollback:
      {action: shell.run, with: {argv: [echo, partly]}, confirm: false, expect: "{{ 'fully' in result.stdout }}"}
  - id: boom
    title: fails
    action: shell.run
    on_failure: rollback
    with: {argv: [/bin/false], read_only: true}
""",
    # A step whose arguments do not render fails without ever starting; the run goes on.
    "unrenderable": """
id: unrenderable
title: arguments that do not render
inputs:
  delay: {default: soon}
steps:
  - id: wait
    title: wait a while
    action: wait.sleep
    on_failure: continue
    with: {seconds: "{{ inputs.delay }}"}
  - id: after
    title: goes on
    action: shell.run
    with: {argv: [echo, next], read_only: true}
""",
    # A parallel group, a read loop with a failing item that continues, a write loop behind one gate.
    "loops": """
id: loops
title: loops and a group
steps:
  - id: first
    title: at once
    parallel:
      - {id: one, title: one, action: shell.run, with: {argv: [echo, one], read_only: true}}
      - {id: two, title: two, action: shell.run, with: {argv: [echo, two], read_only: true}}
  - id: reads
    title: a read per item
    for_each: {a: 'true', b: 'false', c: 'true'}
    concurrency: 3
    on_failure: continue
    action: shell.run
    with: {argv: ["{{ item }}"], read_only: true}
  - id: marks
    title: a change per item
    for_each: "{{ steps.reads.items.values() | selectattr('ok') | map(attribute='key') | list }}"
    action: shell.run
    with: {argv: [echo, "{{ item }}"]}
""",
}


@pytest.mark.parametrize(("name", "mode", "status"), [
    ("mixed", "live", "succeeded"), ("mixed", "dry-run", "succeeded"), ("rollback", "live", "rolled_back"),
    ("undo", "live", "rollback_incomplete"), ("unrenderable", "live", "succeeded"),
    ("loops", "live", "succeeded"), ("loops", "dry-run", "succeeded"),
])
def test_replaying_the_log_rebuilds_the_runner_state(tmp_path: Path, name: str, mode: str,
                                                      status: str) -> None:
    loaded = load_text(RUNBOOKS[name].replace("COUNTER", str(tmp_path / "count")), str(tmp_path / f"{name}.yaml"))
    seen: list[Runner] = []
    approvals = frozenset({"change"}) if name == "mixed" else frozenset({"marks"}) if name == "loops" else frozenset()
    opts = RunOptions(mode=mode, operator="tester", approvals=approvals, before_finish=seen.append)
    store = FileStore(tmp_path / "home")
    outcome = start(loaded, {}, opts, NullReporter(), store=store)
    assert outcome.status == status
    live = seen[0].state
    records = [r.to_dict() for r in audit.read(store.log_path(outcome.run_id))[0]]
    rebuilt = replay(step_ids(loaded.runbook), records)
    assert rebuilt.steps == live.steps
    assert (rebuilt.status, rebuilt.mode, rebuilt.run_id, rebuilt.last_seq) == (
        live.status, live.mode, live.run_id, live.last_seq)
    assert rebuilt.context() == live.context()
    assert outcome_of(records) == status == rebuilt.status, "the records alone say how the run ended"
    assert outcome_of(records[:-1]) == status, "the verdict before run.finished is what it then records"
    if name == "undo":
        assert [rebuilt.steps[s].status for s in ("one", "two", "boom")] == [
            StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED, StepStatus.FAILED]
        assert [r["attempt"] for r in records if r["type"] == "rollback.retried"] == [1]
        failed = next(r for r in records if r["type"] == "rollback.failed")
        assert "expect did not hold" in failed["error"] and failed["step"] == "two"
    if name == "unrenderable":
        assert [r["type"] for r in records if r.get("step") == "wait"] == ["step.failed"], "no start it never had"
        assert rebuilt.steps["wait"].status is StepStatus.FAILED and rebuilt.steps["wait"].continued
    if name == "rollback":
        assert [rebuilt.steps[s].status for s in ("one", "two", "boom")] == [
            StepStatus.ROLLED_BACK, StepStatus.ROLLED_BACK, StepStatus.FAILED]
    if name == "loops":
        assert [rebuilt.steps[f"reads[{k}]"].status for k in "abc"] == ["succeeded", "failed", "succeeded"]
        assert rebuilt.context()["marks"]["status"] == ("planned" if mode == "dry-run" else "succeeded")
        assert [e["item"] for e in rebuilt.context()["marks"]["items"]] == ["a", "c"]
    elif mode == "dry-run":
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


def test_replay_of_a_refused_then_resumed_run_is_each_drive_s_live_state(tmp_path: Path) -> None:
    """Two drives of one run: each drive's live state is what its log, replayed, says."""
    loaded = load_text(RUNBOOKS["mixed"], str(tmp_path / "mixed.yaml"))
    store = FileStore(tmp_path / "home")
    ids = [s.id for s in loaded.runbook.steps]
    seen: list[Runner] = []
    first = start(loaded, {}, RunOptions(operator="t", before_finish=seen.append), NullReporter(), store=store)
    assert first.status == "refused", "a mutating step with no approval and no terminal is refused"
    log = store.log_path(first.run_id)
    records = [r.to_dict() for r in audit.read(log)[0]]
    assert replay(ids, records).steps == seen[0].state.steps
    assert outcome_of(records) == "refused" and seen[0].state.steps["change"].status is StepStatus.REFUSED
    second = resume(store, first.run_id, {}, RunOptions(operator="t", approvals=frozenset({"change"}),
                                                         before_finish=seen.append), NullReporter())
    assert second.status == "succeeded"
    records = [r.to_dict() for r in audit.read(log)[0]]
    rebuilt = replay(ids, records)
    assert rebuilt.steps == seen[1].state.steps and rebuilt.status == seen[1].state.status == "succeeded"
    assert outcome_of(records) == "succeeded"
    assert outcome_of(records, alive=False) == "succeeded", "a finished run is as its run.finished says"
    assert outcome_of(records[:-1], alive=False) == "interrupted", "no run.finished, no driver: it died"
    assert outcome_of(records[:-1], alive=True) == "running"


def test_every_record_a_real_run_writes_has_its_declared_fields(tmp_path: Path) -> None:
    seen: set[str] = set()
    for name in ("mixed", "undo", "unrenderable"):
        loaded = load_text(RUNBOOKS[name].replace("COUNTER", str(tmp_path / "count")), str(tmp_path / "r.yaml"))
        store = FileStore(tmp_path / name)
        approvals = frozenset({"change"}) if name == "mixed" else frozenset()
        done = start(loaded, {}, RunOptions(operator="t", approvals=approvals), NullReporter(), store=store)
        for rec in audit.read(store.log_path(done.run_id))[0]:
            kind = RecordType(rec.type)
            assert not kind.missing(rec.data), rec.to_dict()
            seen.add(kind)
    assert {"step.started", "step.failed", "rollback.retried", "rollback.failed", "run.finished"} <= seen
