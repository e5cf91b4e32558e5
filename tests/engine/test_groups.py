"""``parallel`` groups (issue 16, item 4): read-only steps run at once, each recorded as it finishes and
readable afterwards as ``steps.<id>``; live, dry-run, drill and resume, on real commands."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from engine import audit
from engine.catalog import describe
from engine.console import NullReporter
from engine.drill import load_scenario, run_drill
from engine.gates import Terminal
from engine.loader import load_file
from engine.machine import replay
from engine.model import step_ids
from engine.session import RunOptions, resume, start
from engine.store import FileStore


def _terminal() -> Terminal:
    return Terminal(stdin=io.StringIO(""), stderr=io.StringIO())


def _records(store: FileStore, run_id: str) -> list[dict[str, Any]]:
    log = store.log_path(run_id)
    assert audit.verify(log).ok
    return [r.to_dict() for r in audit.read(log)[0]]


def _run(tmp_path: Path, text: str, **opts: Any) -> tuple[Any, list[dict[str, Any]], FileStore]:
    store = FileStore(tmp_path / "home")
    (tmp_path / "rb.yaml").write_text(text)
    outcome = start(load_file(tmp_path / "rb.yaml"), {}, RunOptions(operator="t", terminal=_terminal(), **opts),
                    NullReporter(), store=store)
    return outcome, _records(store, outcome.run_id), store


def _group(tmp_path: Path, fail: str = "true", on_failure: str = "abort") -> str:
    return f"""id: rb
title: groups
steps:
  - id: first_checks
    title: the first checks, at once
    parallel:
      - id: slow
        title: a slow check
        action: shell.run
        with: {{argv: [sh, -c, 'sleep 1.0; echo slow'], read_only: true}}
      - id: quick
        title: a quick check
        action: shell.run
        with: {{argv: [sh, -c, 'sleep 0.3; echo quick'], read_only: true}}
      - id: flaky
        title: a check that may fail
        action: shell.run
        on_failure: {on_failure}
        with: {{argv: [sh, -c, 'sleep 0.5; test -e "$0" || {fail}', "{tmp_path}/fixed"], read_only: true}}
  - id: after
    title: read what the group found
    action: log.note
    with:
      text: "{{{{ steps.slow.output.stdout.strip() }}}} {{{{ steps.quick.output.stdout.strip() }}}}"
"""


def test_a_group_runs_at_once_and_records_each_as_it_finishes(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _group(tmp_path))
    assert outcome.exit_code == 0
    first = next(r for r in records if r["type"] == "step.started")
    last = next(r for r in records if r["type"] == "step.succeeded" and r["step"] == "slow")
    took = audit.elapsed(first["ts"], last["ts"])
    assert took < 1.5, f"one after another takes 1.8 s, at once 1.0 s: took {took:.2f}"
    ended = [r["step"] for r in records if r["type"] == "step.succeeded"]
    assert ended == ["quick", "flaky", "slow", "after"], "each recorded when it finished, not in file order"
    [after] = [r for r in records if r["type"] == "step.succeeded" and r["step"] == "after"]
    assert after["output"]["note"] == "slow quick"


def test_a_failed_step_stops_the_run_after_the_others_end_and_resume_runs_only_it(tmp_path: Path) -> None:
    outcome, records, store = _run(tmp_path, _group(tmp_path, fail="false"))
    assert outcome.exit_code == 1
    assert {r["step"] for r in records if r["type"] == "step.succeeded"} == {"quick", "slow"}
    assert not [r for r in records if r.get("step") == "after"]
    (tmp_path / "fixed").touch()  # the world is fixed
    again = resume(store, outcome.run_id, {}, RunOptions(operator="t", terminal=_terminal()), NullReporter())
    assert again.exit_code == 0
    records = _records(store, outcome.run_id)
    started = [r["step"] for r in records if r["type"] == "step.started"]
    assert started.count("slow") == 1 and started.count("quick") == 1 and started.count("flaky") == 2
    assert replay(["slow", "quick", "flaky", "after"], records).steps["after"].status == "succeeded"


def test_on_failure_continue_inside_a_group(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _group(tmp_path, fail="false", on_failure="continue"))
    assert outcome.exit_code == 0
    [failed] = [r for r in records if r["type"] == "step.failed"]
    assert failed["step"] == "flaky" and failed["continued"] is True


def test_a_dry_run_runs_the_reads_of_a_group(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _group(tmp_path), mode="dry-run")
    assert outcome.exit_code == 0
    assert {r["step"] for r in records if r["type"] == "step.succeeded"} == {"slow", "quick", "flaky", "after"}


def test_a_drill_answers_the_steps_of_a_group(tmp_path: Path) -> None:
    (tmp_path / "rb.yaml").write_text(_group(tmp_path))
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""title: the flaky check fails
steps:
  slow: {output: {stdout: "s\\n"}}
  quick: {output: {stdout: "q\\n"}}
  flaky: {fail: "not there"}
expect:
  steps: {slow: succeeded, quick: succeeded, flaky: failed, after: pending}
  outcome: failed
""")
    store = FileStore(tmp_path / "home")
    outcome = run_drill(load_file(tmp_path / "rb.yaml"), load_scenario(scenario), {},
                        RunOptions(mode="drill", operator="t", terminal=_terminal()), NullReporter(), store)
    [graded] = [r for r in _records(store, outcome.run_id) if r["type"] == "drill.graded"]
    assert graded["score"] == graded["total"] == 5, graded["deviations"]


def test_the_state_and_show_know_a_group_as_its_steps(tmp_path: Path) -> None:
    (tmp_path / "rb.yaml").write_text(_group(tmp_path))
    loaded = load_file(tmp_path / "rb.yaml")
    assert step_ids(loaded.runbook) == ["slow", "quick", "flaky", "after"]
    shown = describe(loaded)["steps"]
    assert [s["parallel"]["id"] if s["parallel"] else None for s in shown] == ["first_checks"] * 3 + [None]
