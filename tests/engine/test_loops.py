"""``for_each`` steps (issue 16, item 3): each item a step of its own in live runs, dry-runs, drills and
resumes, on real commands (shell.run) and a real file store."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.console import NullReporter
from engine.drill import load_scenario, run_drill
from engine.errors import RunbookError
from engine.gates import Terminal
from engine.loader import check_text, load_file, load_text
from engine.machine import replay
from engine.session import RunOptions, resume, start
from engine.store import FileStore


class _Typed(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(typed: str = "") -> Terminal:
    return Terminal(stdin=_Typed(typed), stderr=io.StringIO())


def _records(store: FileStore, run_id: str) -> list[dict[str, Any]]:
    log = store.log_path(run_id)
    assert audit.verify(log).ok
    return [r.to_dict() for r in audit.read(log)[0]]


def _of(records: list[dict[str, Any]], kind: str, step: str | None = None) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind and (step is None or r.get("step") == step)]


def _run(tmp_path: Path, text: str, typed: str = "", **opts: Any) -> tuple[Any, list[dict[str, Any]], FileStore]:
    store = FileStore(tmp_path / "home")
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    outcome = start(load_file(path), {}, RunOptions(operator="t", terminal=_terminal(typed), **opts),
                    NullReporter(), store=store)
    return outcome, _records(store, outcome.run_id), store


def _book(steps: str, inputs: str = "") -> str:
    return f"id: rb\ntitle: loops\n{inputs}steps:\n{steps}"


def _touch_loop(tmp_path: Path, extra: str = "", names: str = "[a, b, c]") -> str:
    return _book(f"""  - id: touch
    title: touch each file
    for_each: {names}
    action: shell.run
    with:
      argv: [touch, "{tmp_path}/{{{{ item }}}}"]
{extra}  - id: after
    title: what the loop made
    action: log.note
    with:
      text: "{{{{ steps.touch.items | map(attribute='status') | join(',') }}}}"
""")


def test_a_read_loop_records_each_item_and_later_steps_read_them(tmp_path: Path) -> None:
    text = _book("""  - id: hosts
    title: each host
    for_each: "{{ inputs.hosts.split(',') }}"
    action: log.note
    with:
      text: "{{ item_key }}={{ item }}"
  - id: owners
    title: each owner
    for_each: {mx1: alice, mx2: bob}
    action: log.note
    with:
      text: "{{ item_key }} is {{ item }}'s"
  - id: after
    title: read both
    action: log.note
    with:
      text: "{{ steps.hosts.items | map(attribute='output.note') | join(' ') }} / {{ steps.owners.items.mx2.output.note }}"
""", inputs="inputs:\n  hosts: {default: 'a,b'}\n")
    outcome, records, _ = _run(tmp_path, text)
    assert outcome.exit_code == 0
    assert [r["step"] for r in _of(records, "step.succeeded")] == ["hosts[0]", "hosts[1]", "hosts",
                                                                    "owners[mx1]", "owners[mx2]", "owners", "after"]
    [expanded] = _of(records, "loop.expanded", "hosts")
    assert expanded["keys"] == [0, 1] and expanded["items"] == ["a", "b"] and not expanded["mapping"]
    [after] = _of(records, "step.succeeded", "after")
    assert after["output"]["note"] == "0=a 1=b / mx2 is bob's"


def test_a_write_loop_asks_once_showing_every_items_plan(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _touch_loop(tmp_path), typed="yes\n")
    assert outcome.exit_code == 0
    assert all((tmp_path / n).exists() for n in "abc")
    [asked] = _of(records, "gate.asked")
    assert asked["gate"] == "touch"
    shown = "\n".join(asked["shown"]["changes"])
    for name in "abc":
        assert f"{tmp_path}/{name}" in shown
    assert [r["step"] for r in _of(records, "step.applying")] == ["touch[0]", "touch[1]", "touch[2]"]
    # Every plan is recorded before the one gate, every apply after it.
    seqs = [r["seq"] for r in records if r["type"] == "step.planned"]
    assert max(seqs) < asked["seq"] < min(r["seq"] for r in _of(records, "step.applying"))
    [after] = _of(records, "step.succeeded", "after")
    assert after["output"]["note"] == "succeeded,succeeded,succeeded"


def test_a_refused_loop_gate_applies_nothing_and_resume_asks_again(tmp_path: Path) -> None:
    outcome, records, store = _run(tmp_path, _touch_loop(tmp_path))  # end of input: no
    assert outcome.exit_code == 3 and not any((tmp_path / n).exists() for n in "abc")
    assert not _of(records, "step.applying")
    again = resume(store, outcome.run_id, {}, RunOptions(operator="t", terminal=_terminal("yes\n")), NullReporter())
    assert again.exit_code == 0 and all((tmp_path / n).exists() for n in "abc")
    records = _records(store, outcome.run_id)
    assert len(_of(records, "loop.expanded")) == 1  # the resume goes on over the items it fixed


def test_confirm_each_asks_per_item_and_skip_skips_one(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _touch_loop(tmp_path, "    confirm: {each: true}\n"),
                               typed="yes\nskip\nyes\n")
    assert outcome.exit_code == 0
    assert [r["gate"] for r in _of(records, "gate.asked")] == ["touch[0]", "touch[1]", "touch[2]"]
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists() and (tmp_path / "c").exists()
    [after] = _of(records, "step.succeeded", "after")
    assert after["output"]["note"] == "succeeded,skipped,succeeded"


def _failing_loop(tmp_path: Path, on_failure: str) -> str:
    return _book(f"""  - id: touch
    title: touch, or fail on 'bad'
    for_each: [a, bad, c]
    action: shell.run
    confirm: false
    on_failure: {on_failure}
    with:
      argv: [sh, -c, 'test "$0" != bad && touch "{tmp_path}/$0"', "{{{{ item }}}}"]
""")


def test_on_failure_continue_lets_the_other_items_run(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _failing_loop(tmp_path, "continue"))
    assert outcome.exit_code == 0
    assert (tmp_path / "a").exists() and (tmp_path / "c").exists()
    [item] = _of(records, "step.failed", "touch[1]")
    assert item["continued"] is True
    [loop] = _of(records, "step.failed", "touch")
    assert loop["continued"] is True and "touch[1]" in loop["error"]


def test_on_failure_abort_starts_no_further_item_and_resume_runs_the_rest(tmp_path: Path) -> None:
    text = _failing_loop(tmp_path, "abort")
    outcome, records, store = _run(tmp_path, text)
    assert outcome.exit_code == 1
    assert (tmp_path / "a").exists() and not (tmp_path / "c").exists()
    assert not _of(records, "step.applying", "touch[2]")  # planned before the loop's gate, never applied
    # The world is fixed (now 'bad' is allowed), and the resume runs only the items not done.
    (tmp_path / "rb.yaml").write_text(text.replace("!= bad", "!= worse"))
    again = resume(store, outcome.run_id, {}, RunOptions(operator="t", accept_changed=True,
                                                         terminal=_terminal()), NullReporter())
    assert again.exit_code == 0 and (tmp_path / "bad").exists() and (tmp_path / "c").exists()
    records = _records(store, outcome.run_id)
    assert len(_of(records, "step.started", "touch[0]")) == 1  # done before: not run again
    assert len(_of(records, "step.started", "touch[1]")) == 2


def test_a_dry_run_plans_every_item_and_changes_nothing(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _touch_loop(tmp_path), mode="dry-run")
    assert outcome.exit_code == 0 and not any((tmp_path / n).exists() for n in "abc")
    planned = [r["step"] for r in _of(records, "step.planned") if r["final"]]
    assert planned == ["touch[0]", "touch[1]", "touch[2]", "touch"]
    [after] = _of(records, "step.succeeded", "after")
    assert after["output"]["note"] == "planned,planned,planned"


def test_a_read_loop_runs_its_items_concurrently(tmp_path: Path) -> None:
    text = _book("""  - id: slow
    title: a slow read per item
    for_each: "{{ range(8) | list }}"
    concurrency: 8
    action: shell.run
    with:
      argv: [sleep, "0.4"]
      read_only: true
""")
    began = time.monotonic()
    outcome, records, _ = _run(tmp_path, text)
    took = time.monotonic() - began
    assert outcome.exit_code == 0
    assert len(_of(records, "step.succeeded")) == 9
    assert took < 8 * 0.4 * 0.5, took  # one at a time would take 3.2 s


def test_replaying_the_log_gives_the_state_of_the_live_run(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _failing_loop(tmp_path, "continue"))
    state = replay(["touch"], records)
    assert {sid: str(st.status) for sid, st in state.steps.items()} == {
        "touch": "failed", "touch[0]": "succeeded", "touch[1]": "failed", "touch[2]": "succeeded"}
    assert [e["status"] for e in state.context()["touch"]["items"]] == ["succeeded", "failed", "succeeded"]


def test_a_drill_answers_items_from_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "rb.yaml").write_text(_book("""  - id: probe
    title: probe each host
    for_each: [mx1, mx2, mx3]
    action: http.probe
    on_failure: continue
    with:
      url: "https://{{ item }}.invalid/"
"""))
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""title: one host down
steps:
  probe:
    output: {status_code: 200}
  "probe[1]":
    fail: connection refused
expect:
  steps: {"probe[0]": succeeded, "probe[1]": failed, "probe[2]": succeeded}
  outcome: succeeded
""")
    store = FileStore(tmp_path / "home")
    outcome = run_drill(load_file(tmp_path / "rb.yaml"), load_scenario(scenario), {},
                        RunOptions(mode="drill", operator="t", terminal=_terminal()), NullReporter(), store)
    [graded] = _of(_records(store, outcome.run_id), "drill.graded")
    assert graded["score"] == graded["total"] == 4, graded["deviations"]


@pytest.mark.parametrize(("steps", "where", "message"), [
    ("""  - id: w
    title: w
    for_each: [a, b]
    concurrency: 4
    action: shell.run
    with: {argv: [touch, "{{ item }}"]}
""", "7:18", "`concurrency: 4` on a step that changes the world"),
    ("""  - id: w
    title: w
    concurrency: 2
    action: log.note
    with: {text: hi}
""", "6:18", "`concurrency` needs `for_each`"),
    ("""  - id: w
    title: w
    action: log.note
    with: {text: "{{ item }}"}
""", "7:18", "'item' is defined only in a step with `for_each`"),
    ("""  - id: w
    title: w
    for_each: [a]
    when: "{{ item == 'a' }}"
    action: log.note
    with: {text: "{{ item }}"}
""", "7:11", "'item' is defined only in a step with `for_each`"),
])
def test_validation_refuses_loops_that_cannot_run_safely(steps: str, where: str, message: str) -> None:
    with pytest.raises(RunbookError) as exc:
        check_text(_book(steps), "rb.yaml")
    assert any(str(p).startswith(f"rb.yaml:{where}: ") and message in str(p) for p in exc.value.problems), \
        [str(p) for p in exc.value.problems]


def test_a_for_each_that_is_no_list_fails_the_step_and_says_why(tmp_path: Path) -> None:
    outcome, records, _ = _run(tmp_path, _book("""  - id: w
    title: w
    for_each: "{{ 'text' }}"
    action: log.note
    with: {text: "{{ item }}"}
"""))
    assert outcome.exit_code == 1
    [failed] = _of(records, "step.failed", "w")
    assert "for_each must give a list or a mapping, not str" in failed["error"]


def test_load_text_keeps_the_loop_keys() -> None:
    step = load_text(_book("""  - id: w
    title: w
    for_each: [a]
    concurrency: 3
    action: log.note
    with: {text: "{{ item }}"}
"""), "rb.yaml").runbook.steps[0]
    assert step.for_each == ["a"] and step.concurrency == 3


def test_show_says_what_a_loop_runs_over_and_how_it_asks(tmp_path: Path) -> None:
    from engine.catalog import describe, render_description

    (tmp_path / "rb.yaml").write_text(_touch_loop(tmp_path, "    confirm: {each: true}\n"))
    info = describe(load_file(tmp_path / "rb.yaml"))
    [loop] = [s for s in info["steps"] if s["id"] == "touch"]
    assert loop["for_each"] == ["a", "b", "c"] and loop["confirm_each"] and loop["gated"]
    text = " ".join(render_description(info).split())
    assert 'for each item of: ["a", "b", "c"] (one at a time; asks per item)' in text, text


# --- loops with what main gained alongside: runbooks that call runbooks, four-eyes gates ------------------

CALLED = """id: looping-child
title: a called runbook with a group and a loop
inputs:
  dir: {type: string}
outputs:
  made: "{{ steps.touch.items | selectattr('ok') | map(attribute='item') | join(',') }}"
steps:
  - id: first_checks
    title: two reads at once
    parallel:
      - {id: look_a, title: look a, action: log.note, with: {text: a}}
      - {id: look_b, title: look b, action: log.note, with: {text: b}}
  - id: touch
    title: touch each file
    for_each: "{{ [steps.look_a.output.note, steps.look_b.output.note, 'c'] }}"
    action: shell.run
    with:
      argv: [touch, "{{ inputs.dir }}/{{ item }}"]
"""

CALLER = """id: caller
title: calls the looping runbook
inputs:
  dir: {type: string}
steps:
  - id: call
    title: run the child
    action: runbook.run
    with: {runbook: looping-child, inputs: {dir: "{{ inputs.dir }}"}}
  - id: after
    title: read what the child made
    action: log.note
    with: {text: "made {{ steps.call.output.made }}"}
"""


def test_a_loop_and_a_group_run_inside_a_called_runbook_and_resume_there(tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "looping-child.yaml").write_text(CALLED)
    (books / "caller.yaml").write_text(CALLER)
    store = FileStore(tmp_path / "home")
    opts = {"operator": "t"}
    # The call's gate opens, the loop's one gate inside the child is refused (end of input): nothing touched.
    first = start(load_file(books / "caller.yaml"), {"dir": str(tmp_path)},
                  RunOptions(terminal=_terminal("yes\n"), **opts), NullReporter(), store=store)
    assert first.exit_code == 3 and not any((tmp_path / n).exists() for n in "abc")
    records = _records(store, first.run_id)
    [asked] = [r for r in _of(records, "gate.asked") if r["gate"] == "call.touch"]
    assert all(f"{tmp_path}/{n}" in "\n".join(asked["shown"]["changes"]) for n in "abc")
    assert [r["step"] for r in _of(records, "step.succeeded")][:2] in (["call.look_a", "call.look_b"],
                                                                        ["call.look_b", "call.look_a"])
    # Resume goes on inside the child, over the items the loop fixed, and the caller reads its outputs.
    again = resume(store, first.run_id, {}, RunOptions(terminal=_terminal("yes\nyes\nyes\n"), **opts),
                   NullReporter())
    assert again.exit_code == 0 and all((tmp_path / n).exists() for n in "abc")
    records = _records(store, first.run_id)
    assert len(_of(records, "loop.expanded", "call.touch")) == 1
    assert [r["step"] for r in _of(records, "step.applying")] == ["call.touch[0]", "call.touch[1]",
                                                                  "call.touch[2]"]
    assert len(_of(records, "step.succeeded", "call.look_a")) == 1, "a group's done steps are not run again"
    [after] = _of(records, "step.succeeded", "after")
    assert after["output"]["note"] == "made a,b,c"
    state = replay(list(replay_ids(books / "caller.yaml")), records)
    assert state.steps["call.touch[2]"].status.value == "succeeded"


def replay_ids(path: Path) -> list[str]:
    from engine import calls

    return calls.step_ids(load_file(path))


def test_a_call_cannot_loop() -> None:
    text = _book("""  - id: call
    title: call once per item
    for_each: [a, b]
    action: runbook.run
    with: {runbook: no-such-book}
""")
    with pytest.raises(RunbookError) as caught:
        load_text(text, "rb.yaml")
    assert "a `runbook.run` call cannot loop" in str(caught.value)


FOUR_EYES_LOOP = """id: mail-each
title: mail each list, with two other people's approval
steps:
  - id: send
    title: send to each list
    for_each: [staff, customers]
    action: http.request
    confirm: {message: "mail every list?", approvals: 2, approvers: ["@dpo", "@leads"], timeout: 600}
    with: {url: "https://mail.example.invalid/{{ item }}", method: POST}
"""


@pytest.mark.parametrize(("approvals", "applied", "outcome"), [
    ("[{by: dana, answer: approve}, {by: lee, answer: approve}]", ["send[0]", "send[1]"], "succeeded"),
    ("[{by: dana, answer: approve}, {by: lee, answer: deny, reason: wrong lists}]", [], "refused"),
])
def test_a_four_eyes_gate_on_a_write_loop_is_asked_once_for_every_item(
        tmp_path: Path, approvals: str, applied: list[str], outcome: str) -> None:
    (tmp_path / "mail-each.yaml").write_text(FOUR_EYES_LOOP)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"""title: the approvers answer
steps:
  send:
    approvals: {approvals}
    plan: {{summary: POST the notice, changes: []}}
    output: {{status: 202}}
expect:
  outcome: {outcome}
""")
    store = FileStore(tmp_path / "home")
    run = run_drill(load_file(tmp_path / "mail-each.yaml"), load_scenario(scenario), {},
                    RunOptions(mode="drill", operator="oscar", terminal=_terminal(), yes=True),
                    NullReporter(), store)
    records = _records(store, run.run_id)
    [asked] = _of(records, "gate.asked")
    assert asked["gate"] == "send" and asked["others"]["needed"] == 2
    assert [line.split("]")[0] for line in asked["shown"]["changes"] if "POST" in line] == ["[0", "[1"]
    assert [r["by"] for r in _of(records, "approval.counted")] == ["dana", "lee"][:2 if applied else 1]
    assert [r["step"] for r in _of(records, "step.applying")] == applied
    if applied:  # every item planned before the one gate, applied after it
        assert max(r["seq"] for r in _of(records, "step.planned")) < asked["seq"]
    [graded] = _of(records, "drill.graded")
    assert graded["outcome"] == outcome and graded["deviations"] == [], graded


def test_a_four_eyes_gate_asked_per_item_takes_the_loops_scripted_approvers(tmp_path: Path) -> None:
    (tmp_path / "mail-each.yaml").write_text(FOUR_EYES_LOOP.replace("timeout: 600}", "timeout: 600, each: true}"))
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""title: the approvers answer for every list
steps:
  send:
    approvals: [{by: dana, answer: approve}, {by: lee, answer: approve}]
    plan: {summary: POST the notice, changes: []}
    output: {status: 202}
  "send[1]":
    approvals: [{by: dana, answer: deny, reason: not the customers}]
expect:
  outcome: refused
""")
    store = FileStore(tmp_path / "home")
    run = run_drill(load_file(tmp_path / "mail-each.yaml"), load_scenario(scenario), {},
                    RunOptions(mode="drill", operator="oscar", terminal=_terminal(), yes=True), NullReporter(), store)
    records = _records(store, run.run_id)
    assert [r["gate"] for r in _of(records, "gate.asked")] == ["send[0]", "send[1]"]
    assert [r["gate"] for r in _of(records, "gate.approved")] == ["send[0]"]
    assert [r["step"] for r in _of(records, "step.applying")] == ["send[0]"]
    assert [r["step"] for r in _of(records, "step.refused")] == ["send[1]"]
