"""``defaults:`` (issue 16, item 1): arguments per action, merged under every step's and rollback's ``with``.

The merge happens once, where the runbook model is built, so the runner, ``Action.effect_of``, the gate and
``show`` all read the same arguments; these tests run real commands (shell.run) to hold each of them to it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.catalog import describe, render_description
from engine.console import NullReporter
from engine.errors import RunbookError
from engine.gates import Terminal
from engine.loader import check_text, load_file, load_text
from engine.session import RunOptions, resume, start
from engine.store import FileStore


class Quiet(NullReporter):
    pass


class _Typed(io.StringIO):
    def isatty(self) -> bool:
        return True


def _book(defaults: str, steps: str) -> str:
    return f"id: rb\ntitle: defaults\ndefaults:\n{defaults}\nsteps:\n{steps}"


def _records(store: FileStore, run_id: str) -> list[dict[str, Any]]:
    log = store.log_path(run_id)
    assert audit.verify(log).ok
    return [r.to_dict() for r in audit.read(log)[0]]


def _of(records: list[dict[str, Any]], kind: str, step: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind and r.get("step") == step]


def _terminal(typed: str = "") -> Terminal:
    return Terminal(stdin=_Typed(typed), stderr=io.StringIO())


def _touching(tmp_path: Path) -> str:
    """Two steps that run `touch` in the directory their defaults name; the second names its own file."""
    return _book(f"""  shell.run:
    cwd: "{tmp_path}"
    argv: [touch, from-default]
""", """  - id: first
    title: touch the default file
    action: shell.run
  - id: second
    title: touch its own file
    action: shell.run
    with:
      argv: [touch, own]
""")


def test_defaults_are_merged_under_with_and_the_step_wins(tmp_path: Path) -> None:
    rb = load_text(_touching(tmp_path), "rb.yaml").runbook
    first, second = rb.steps
    assert first.with_ == {"cwd": str(tmp_path), "argv": ["touch", "from-default"]}
    assert second.with_ == {"cwd": str(tmp_path), "argv": ["touch", "own"]}


def test_a_live_run_uses_them_and_its_gate_shows_them(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    loaded = load_text(_touching(tmp_path), "rb.yaml")
    outcome = start(loaded, {}, RunOptions(operator="t", terminal=_terminal("y\ny\n")), Quiet(), store=store)
    assert outcome.exit_code == 0
    assert (tmp_path / "from-default").exists() and (tmp_path / "own").exists()
    records = _records(store, outcome.run_id)
    [asked] = _of(records, "gate.asked", "second")
    assert asked["shown"]["args"]["cwd"] == str(tmp_path)  # the operator approves what will run
    assert asked["shown"]["args"]["argv"] == ["touch", "own"]
    [began] = _of(records, "step.started", "first")
    assert began["args"]["cwd"] == str(tmp_path)


def test_a_dry_run_plans_with_them(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    loaded = load_text(_touching(tmp_path), "rb.yaml")
    outcome = start(loaded, {}, RunOptions(mode="dry-run", operator="t", terminal=_terminal()), Quiet(),
                    store=store)
    assert outcome.exit_code == 0 and not (tmp_path / "from-default").exists()
    records = _records(store, outcome.run_id)
    assert [r["args"]["argv"] for r in records if r["type"] == "step.started"] == [["touch", "from-default"],
                                                                                    ["touch", "own"]]
    assert len([r for r in records if r["type"] == "step.planned"]) == 2


def test_a_resume_runs_the_rest_with_them(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "home")
    path = tmp_path / "rb.yaml"  # a resume reads the runbook again from its file
    path.write_text(_touching(tmp_path))
    loaded = load_file(path)
    # The first gate is approved, the second refused (end of input): the run stops, refused, at `second`.
    stopped = start(loaded, {}, RunOptions(operator="t", terminal=_terminal("y\n")), Quiet(), store=store)
    assert stopped.exit_code == 3 and not (tmp_path / "own").exists()
    again = resume(store, stopped.run_id, {}, RunOptions(operator="t", terminal=_terminal("y\n")), Quiet())
    assert again.exit_code == 0 and (tmp_path / "own").exists()
    began = _of(_records(store, stopped.run_id), "step.started", "second")[-1]
    assert (began["args"]["argv"], began["args"]["cwd"]) == (["touch", "own"], str(tmp_path))


def test_a_literal_read_only_in_the_defaults_decides_the_effect_everywhere(tmp_path: Path) -> None:
    text = _book("  shell.run:\n    read_only: true\n", """  - id: look
    title: a diagnostic
    action: shell.run
    with: {argv: [echo, hi]}
""")
    loaded = load_text(text, "rb.yaml")
    [step] = describe(loaded)["steps"]
    assert (step["effect"], step["gated"]) == ("read", False)
    store = FileStore(tmp_path / "home")
    outcome = start(loaded, {}, RunOptions(operator="t", terminal=_terminal()), Quiet(), store=store)
    records = _records(store, outcome.run_id)
    assert outcome.exit_code == 0 and not [r for r in records if r["type"] == "gate.asked"]
    assert _of(records, "step.started", "look")[0]["effect"] == "read"


def test_a_required_argument_may_come_from_the_defaults_only() -> None:
    text = _book("  log.note:\n    text: hello\n", "  - id: one\n    title: one\n    action: log.note\n")
    check_text(text, "rb.yaml")
    with pytest.raises(RunbookError, match="needs argument 'text'"):
        check_text(text.replace("    text: hello\n", "    {}\n").replace("log.note:\n", "log.note:"), "rb.yaml")


def test_rollbacks_get_the_defaults_of_their_action(tmp_path: Path) -> None:
    text = _book(f'  shell.run:\n    cwd: "{tmp_path}"\n', """  - id: change
    title: change
    action: shell.run
    with: {argv: [touch, made]}
    rollback:
      action: shell.run
      with: {argv: [rm, made]}
""")
    [step] = load_text(text, "rb.yaml").runbook.steps
    assert step.rollback is not None and step.rollback.with_["cwd"] == str(tmp_path)


def test_show_displays_the_merged_arguments_and_masks_a_literal_secret() -> None:
    text = _book("""  dns.update:
    server: 127.0.0.1
    zone: example.test
    tsig_name: key
    tsig_secret: c2VjcmV0c2VjcmV0
""", """  - id: switch
    title: switch
    action: dns.update
    with:
      name: www
      type: A
      records: [192.0.2.1]
""")
    shown = render_description(describe(load_text(text, "rb.yaml")))
    assert "server: 127.0.0.1" in shown and "zone: example.test" in shown and "name: www" in shown
    assert "c2VjcmV0c2VjcmV0" not in shown and "tsig_secret: ***" in shown
