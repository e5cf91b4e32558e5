"""``rollback:`` on a ``for_each`` step: each item that succeeded is undone on its own (its own audited
sub-step, ``touch[1]``), newest first, in live runs, after a resume and in drills; a dry-run changed nothing,
so undoes nothing. Real commands (shell.run) against real files, a real file store."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.console import NullReporter
from engine.drill import load_scenario, run_drill
from engine.errors import RunbookError
from engine.gates import Terminal
from engine.loader import load_file, load_text
from engine.session import RunOptions, resume, start
from engine.store import FileStore

APPROVE = frozenset({"touch", "touch.rollback", "later"})


def _terminal() -> Terminal:
    return Terminal(stdin=io.StringIO(""), stderr=io.StringIO())


def _records(store: FileStore, run_id: str) -> list[dict[str, Any]]:
    log = store.log_path(run_id)
    assert audit.verify(log).ok
    return [r.to_dict() for r in audit.read(log)[0]]


def _of(records: list[dict[str, Any]], kind: str) -> list[str]:
    return [str(r["step"]) for r in records if r["type"] == kind]


def _book(tmp_path: Path, *, healthy: str = "false", expect: str = "", later_gate: str = "") -> Path:
    path = tmp_path / "rb.yaml"
    path.write_text(f"""id: rb
title: a write loop, then a check
steps:
  - id: touch
    title: make each file
    for_each: [a, b, c]
    action: shell.run
    with:
      argv: [touch, "{tmp_path}/{{{{ item }}}}"]
{expect}    on_failure: rollback
    rollback:
      title: "remove {{{{ item }}}}"
      action: shell.run
      with:
        argv: [rm, "{tmp_path}/{{{{ item }}}}"]
  - id: later
    title: a step that changes something
    action: shell.run
    with:
      argv: ["true"]
{later_gate}  - id: check
    title: the check after the change
    action: assert
    with: {{that: "{healthy}", message: not healthy}}
    on_failure: rollback
""")
    return path


def _start(path: Path, store: FileStore, **opts: Any) -> Any:
    options = {"operator": "t", "terminal": _terminal(), "approvals": APPROVE, **opts}
    return start(load_file(path), {}, RunOptions(**options), NullReporter(), store=store)


def _files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if len(p.name) == 1)


def test_a_later_failure_undoes_every_item_newest_first(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    outcome = _start(_book(tmp_path), store)
    records = _records(store, outcome.run_id)
    assert str(outcome.status) == "rolled_back"
    assert _files(tmp_path) == []
    assert _of(records, "rollback.succeeded") == ["touch[2]", "touch[1]", "touch[0]"]
    [begun] = [r for r in records if r["type"] == "rollback.begun"]
    assert begun["steps"] == ["touch[2]", "touch[1]", "touch[0]"]
    started = [r for r in records if r["type"] == "rollback.started"]
    assert started[0]["title"] == "remove c [2]" and started[0]["args"]["argv"][-1].endswith("/c")
    assert [r["gate"] for r in records if r["type"] == "gate.approved"][-3:] == [
        "touch[2].rollback", "touch[1].rollback", "touch[0].rollback"]


def test_a_failed_item_undoes_the_items_already_applied(tmp_path: Path) -> None:
    expect = "    expect: \"{{ item_key != 1 }}\"\n"
    store = FileStore(tmp_path / "home")
    outcome = _start(_book(tmp_path, healthy="true", expect=expect), store)
    records = _records(store, outcome.run_id)
    assert str(outcome.status) == "rolled_back"
    assert _of(records, "step.failed") == ["touch[1]", "touch"]
    assert _of(records, "rollback.succeeded") == ["touch[0]"]
    assert "touch[2]" not in _of(records, "step.applying"), "no item applies after one failed"
    # touch[1] applied and then failed its expect: like a failed step, it is not undone
    assert _files(tmp_path) == ["b"]


def test_a_resumed_run_undoes_the_items_of_its_first_drive(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    path = _book(tmp_path, later_gate="    confirm: true\n")
    first = _start(path, store, approvals=frozenset({"touch"}))  # nobody at the terminal: `later` refused
    assert str(first.status) == "refused" and _files(tmp_path) == ["a", "b", "c"]
    again = resume(store, first.run_id, {}, RunOptions(operator="t", terminal=_terminal(), approvals=APPROVE),
                   NullReporter())
    assert str(again.status) == "rolled_back"
    assert _files(tmp_path) == []
    assert _of(_records(store, first.run_id), "rollback.succeeded") == ["touch[2]", "touch[1]", "touch[0]"]


def test_a_dry_run_plans_the_items_and_undoes_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    outcome = _start(_book(tmp_path), store, mode="dry-run")
    records = _records(store, outcome.run_id)
    assert _files(tmp_path) == []
    assert _of(records, "step.planned")[:4] == ["touch[0]", "touch[1]", "touch[2]", "touch"]
    assert _of(records, "rollback.started") == []


def test_a_drill_rehearses_each_items_undo(tmp_path: Path) -> None:
    path = _book(tmp_path)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""title: the check fails; the second item's undo fails too
steps:
  touch: {output: {exit_code: 0}}
  "touch[1]": {output: {exit_code: 0}, rollback: {fail: rm refused}}
  later: {output: {exit_code: 0}}
  check: {fail: not healthy}
expect:
  steps: {"touch[0]": rolled_back, "touch[1]": rollback_failed, "touch[2]": rolled_back, check: failed}
  outcome: rollback_incomplete
""")
    store = FileStore(tmp_path / "home")
    outcome = run_drill(load_file(path), load_scenario(scenario), {},
                        RunOptions(mode="drill", operator="t", terminal=_terminal(), approvals=APPROVE),
                        NullReporter(), store)
    records = _records(store, outcome.run_id)
    [graded] = [r for r in records if r["type"] == "drill.graded"]
    assert graded["score"] == graded["total"], graded["deviations"]
    assert _files(tmp_path) == [], "a drill touches nothing"


def test_a_loop_rollback_reads_item_and_rejects_concurrency(tmp_path: Path) -> None:
    text = """id: rb
title: t
steps:
  - id: probe
    title: probe
    for_each: [a, b]
    concurrency: 2
    action: http.probe
    with: {url: "https://{{ item }}.example.test/"}
    rollback:
      action: log.note
      with: {text: "{{ item }}"}
"""
    with pytest.raises(RunbookError) as err:
        load_text(text, str(tmp_path / "rb.yaml"))
    assert "rb.yaml:7:18" in str(err.value) and "no order to undo them in reverse" in str(err.value)
    load_text(text.replace("    concurrency: 2\n", ""), str(tmp_path / "rb.yaml"))  # `item` in its rollback: fine
