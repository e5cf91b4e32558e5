"""What decides a step's effect, and what the operator is told about it (issue 14, items 2 and 12).

One function, ``Action.effect_of``, reads the arguments as the runbook wrote them; the runner (live and
dry-run) and ``show`` ask it, so nothing a step prints can lift a later step's gate. A gate that one approval
may pass to several applications (retries, until) says how many.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from actions.shell import ShellRunParams
from engine import audit
from engine.catalog import describe
from engine.console import NullReporter
from engine.errors import RunbookError
from engine.gates import Terminal
from engine.loader import LoadedRunbook, check_text, load_text
from engine.model import Runbook
from engine.session import RunOptions, start
from engine.store import FileStore


class Quiet(NullReporter):
    def event(self, rec: dict[str, Any]) -> None:
        return None



class _Typed(io.StringIO):
    """An operator at a terminal who types the given lines."""

    def isatty(self) -> bool:
        return True


def _book(steps: str) -> str:
    return f"id: rb\ntitle: effect test\nsteps:\n{steps}"


def _run(tmp_path: Path, loaded: LoadedRunbook, **opts: Any) -> list[dict[str, Any]]:
    store = FileStore(tmp_path / "home")
    opts.setdefault("terminal", Terminal(stdin=_Typed(""), stderr=io.StringIO()))
    outcome = start(loaded, {}, RunOptions(operator="tester", **opts), Quiet(), store=store)
    log = store.log_path(outcome.run_id)
    assert audit.verify(log).ok
    return [r.to_dict() for r in audit.read(log)[0]]


def _of(records: list[dict[str, Any]], kind: str, step: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind and r.get("step") == step]


# --- item 2: read_only is a literal boolean, decided before rendering -----------------------------------

_ARGS = {"shell.run": "argv: [touch, /nonexistent]", "ssh.run": "host: 127.0.0.1\n      user: u\n      command: x"}


def _read_only_step(value: str, action: str = "shell.run") -> str:
    return f"""
  - id: change
    title: change
    action: {action}
    with:
      {_ARGS[action]}
      read_only: {value}
"""


@pytest.mark.parametrize("action", ["shell.run", "ssh.run"])
@pytest.mark.parametrize("value", ['"yes"', "1", '"on"', '"true"', "null", '"{{ inputs.flag }}"'])
def test_read_only_other_than_a_yaml_boolean_is_refused_where_written(action: str, value: str) -> None:
    text = _book(_read_only_step(value, action)).replace("steps:\n", "inputs:\n  flag: {default: x}\nsteps:\n")
    with pytest.raises(RunbookError) as caught:
        check_text(text, "rb.yaml")
    line, written = next((n, t) for n, t in enumerate(text.splitlines(), 1) if "read_only:" in t)
    [problem] = [p for p in caught.value.problems if "read_only" in p.message]
    assert str(problem).startswith(f"rb.yaml:{line}:")
    assert problem.column > written.index("read_only")  # on that line, not at the step
    assert "literal true or false" in problem.message and "gated" in problem.message


def test_read_only_in_a_rollback_is_checked_too() -> None:
    text = _book("""
  - id: change
    title: change
    action: shell.run
    with: {argv: [touch, /nonexistent]}
    rollback:
      action: shell.run
      with:
        argv: [rm, /nonexistent]
        read_only: "on"
""")
    with pytest.raises(RunbookError) as caught:
        check_text(text, "rb.yaml")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "read_only:" in t)
    assert [p.line for p in caught.value.problems if "read_only" in p.message] == [line]


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_yaml_boolean_is_accepted(value: str) -> None:
    check_text(_book(_read_only_step(value)), "rb.yaml")


def test_the_argument_model_takes_no_lax_booleans_either() -> None:
    for lax in ("yes", 1, "on", "true"):
        with pytest.raises(ValidationError):
            ShellRunParams.model_validate({"argv": ["x"], "read_only": lax})


def _unvalidated(text: str, path: Path) -> LoadedRunbook:
    """A runbook built without the loader's checks: the runner must stay safe on its own."""
    data = yaml.safe_load(text)
    return LoadedRunbook(Runbook.model_validate(data), str(path), text, hashlib.sha256(text.encode()).hexdigest())


def _output_decides(marker: Path) -> str:
    # The probe prints "true"; the change says read_only is whatever the probe printed.
    return _book(f"""
  - id: probe
    title: probe
    action: shell.run
    with: {{argv: [echo, "true"], read_only: true}}
  - id: change
    title: change the world
    action: shell.run
    with:
      argv: [touch, "{marker}"]
      read_only: "{{{{ steps.probe.output.stdout | trim == 'true' }}}}"
""")


@pytest.mark.parametrize("mode", ["dry-run", "live"])
def test_an_earlier_steps_output_cannot_lift_a_gate(tmp_path: Path, mode: str) -> None:
    marker = tmp_path / "changed"
    text = _output_decides(marker)
    with pytest.raises(RunbookError):
        load_text(text, str(tmp_path / "rb.yaml"))  # validation refuses it first...
    records = _run(tmp_path, _unvalidated(text, tmp_path / "rb.yaml"), mode=mode)  # ...and the runner too
    assert not marker.exists(), "the change ran because an earlier step printed 'true'"
    assert _of(records, "step.started", "change")[0]["effect"] == "write"
    assert _of(records, "step.planned", "change")[0]["gated"] is True
    if mode == "live":  # no one approved at the terminal: refused
        assert _of(records, "gate.asked", "change") and _of(records, "step.refused", "change")


def test_show_asks_the_same_function_as_the_runner(tmp_path: Path) -> None:
    """mail.smtp_probe with send_to written as a template sends mail: show marks it gated and mutating."""
    text = _book("""
  - id: test_message
    title: send a test message
    action: mail.smtp_probe
    with: {host: "127.0.0.1:1", send_to: "{{ run.operator }}@example.test"}
  - id: probe_only
    title: probe only
    action: mail.smtp_probe
    with: {host: "127.0.0.1:1"}
""")
    loaded = load_text(text, str(tmp_path / "rb.yaml"))
    steps = {s["id"]: s for s in describe(loaded)["steps"]}
    assert (steps["test_message"]["mutating"], steps["test_message"]["gated"]) == (True, True)
    assert (steps["probe_only"]["mutating"], steps["probe_only"]["gated"]) == (False, False)
    records = _run(tmp_path, loaded, mode="dry-run")
    assert _of(records, "step.planned", "test_message")[0]["gated"] is True
    assert not _of(records, "step.planned", "probe_only")  # a read runs, even in a dry-run


# --- item 12: one approval, several applications ----------------------------------------------------------

def _repeating(counter: Path, policy: str, confirm: str = "") -> str:
    return _book(f"""
  - id: change
    title: append a line, and fail
    action: shell.run
    {policy}
    {confirm}
    with: {{argv: [sh, -c, 'echo x >> "$0"; exit 1', "{counter}"]}}
""")


@pytest.mark.parametrize(("policy", "times", "why"), [
    ("retries: {attempts: 4, delay: 0}", 4, "retries"),
    ("retries: {attempts: 3, delay: 0}\n    until: 'false'", 3, "retries"),
])
def test_the_gate_says_how_often_one_approval_applies(tmp_path: Path, policy: str, times: int, why: str) -> None:
    counter = tmp_path / "count"
    loaded = load_text(_repeating(counter, policy), str(tmp_path / "rb.yaml"))
    records = _run(tmp_path, loaded, approvals=frozenset({"change"}))
    [asked] = _of(records, "gate.asked", "change")
    assert f"up to {times} times" in asked["shown"]["repeats"] and why in asked["shown"]["repeats"]
    assert len(_of(records, "gate.approved", "change")) == 1
    assert counter.read_text().count("x") == times  # what the gate said is what happened
    [step] = describe(loaded)["steps"]
    assert step["repeats"] == asked["shown"]["repeats"]


def test_until_alone_repeats_by_its_default_policy(tmp_path: Path) -> None:
    loaded = load_text(_repeating(tmp_path / "count", "until: 'false'"), str(tmp_path / "rb.yaml"))
    [step] = describe(loaded)["steps"]
    assert "up to 10 times" in step["repeats"] and "until" in step["repeats"]


def test_the_operator_reads_the_repeat_count_at_the_gate(tmp_path: Path) -> None:
    screen = io.StringIO()
    loaded = load_text(_repeating(tmp_path / "count", "retries: {attempts: 4, delay: 0}"), str(tmp_path / "rb.yaml"))
    records = _run(tmp_path, loaded, terminal=Terminal(stdin=_Typed("no\n"), stderr=screen))
    assert _of(records, "step.refused", "change")
    before_question = screen.getvalue().split("Approve?")[0]
    assert "may apply up to 4 times (retries)" in before_question
    assert not (tmp_path / "count").exists()


@pytest.mark.parametrize("policy", ["", "retries: {attempts: 1}"])
def test_a_single_application_says_nothing_more(tmp_path: Path, policy: str) -> None:
    loaded = load_text(_repeating(tmp_path / "count", policy), str(tmp_path / "rb.yaml"))
    records = _run(tmp_path, loaded, approvals=frozenset({"change"}))
    assert "repeats" not in _of(records, "gate.asked", "change")[0]["shown"]
    assert describe(loaded)["steps"][0]["repeats"] is None


def test_a_repeated_read_is_not_flagged(tmp_path: Path) -> None:
    text = _book("""
  - id: look
    title: look
    action: shell.run
    confirm: true
    retries: {attempts: 3, delay: 0}
    with: {argv: ["true"], read_only: true}
""")
    loaded = load_text(text, str(tmp_path / "rb.yaml"))
    records = _run(tmp_path, loaded, approvals=frozenset({"look"}))
    assert "repeats" not in _of(records, "gate.asked", "look")[0]["shown"]
    assert describe(loaded)["steps"][0]["repeats"] is None
