"""One runbook contract: the pydantic model checks a file's structure, and its errors read as located advice.

The model is the only source of the format (engine/shape.py and actions/data/arguments.json are gone): what
`validate` refuses is exactly what a run would refuse, by construction. These tests pin the advice each
constraint gives, in our words (keyed by pydantic's error types, not its message text); the broken corpus in
tests/cases pins positions. Output fields: `validate` checks reads of them against each action's `Output`.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from actions.base import Action, ActionContext, ActionResult, Params
from actions.registry import BUILTIN, Registry
from engine.checks import check_parts
from engine.errors import RunbookError
from engine.loader import check_text, structure_problems
from engine.model import Runbook
from engine.yamlsource import parse
from tests.engine.test_runner import go, of

SEED: dict[str, Any] = {
    "id": "seed", "title": "Seed", "description": "d", "severity": "high", "tags": ["dns"],
    "inputs": {
        "domain": {"type": "domain", "description": "zone"},
        "mode": {"type": "choice", "choices": ["fast", 2], "default": "fast", "required": False},
        "token": {"type": "secret", "env": "TOKEN"},
    },
    "steps": [
        {"id": "look", "title": "Look", "action": "shell.run", "with": {"argv": ["echo"], "read_only": True},
         "expect": "result.exit_code == 0", "retries": {"attempts": 3, "delay": 1, "backoff": 2.5,
                                                         "max_delay": 10}},
        {"id": "wait", "title": "Wait", "action": "wait.sleep", "with": {"seconds": 1}, "when": True,
         "until": "result.slept > 0", "timeout": 5, "confirm": "Sure?"},
        {"id": "tell", "title": "Tell", "action": "log.note", "with": {"text": "x"},
         "confirm": {"message": "Really?", "type_to_confirm": "yes"}, "on_failure": "rollback",
         "rollback": {"title": "Undo", "action": "log.note", "with": {"text": "undo"}, "confirm": False}},
    ],
}


def _problems(data: Any) -> list[tuple[tuple[Any, ...], str, bool]]:
    try:
        Runbook.model_validate(data)
    except ValidationError as exc:
        return structure_problems(exc, data)
    return []


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def test_the_seed_is_valid() -> None:
    assert _problems(SEED) == []
    check_text(yaml.safe_dump(SEED, sort_keys=False), "seed.yaml")


@pytest.mark.parametrize(("path", "value", "message"), [
    (("id",), "seed\n", "must be kebab-case"),
    (("steps", 0, "id"), "Look", "must be snake_case"),
    (("steps", 0, "retries", "attempts"), True, "input should be a valid integer"),
    (("steps", 0, "retries", "attempts"), "3", "input should be a valid integer"),
    (("steps", 0, "retries", "attempts"), 0, "input should be greater than or equal to 1"),
    (("steps", 0, "retries", "backoff"), 0.5, "input should be greater than or equal to 1"),
    (("steps", 1, "timeout"), 0, "input should be greater than 0"),
    (("inputs", "mode", "required"), "yes", "input should be a valid boolean"),
    (("steps", 1, "confirm"), 5, "input should be a valid boolean or a valid string or a valid mapping"),
    (("steps", 1, "when"), 5, "input should be a valid string or a valid boolean"),
    (("inputs", "mode", "choices"), [1.5], "input should be a valid string or a valid integer"),
    (("severity",), "urgent", "input should be 'critical', 'high', 'medium' or 'low'"),
    (("inputs", "domain", "type"), "Domain", "input should be 'string', "),
    (("steps",), [], "list should have at least 1 item"),
    (("steps", 0, "with"), "echo", "input should be a valid mapping"),
])
def test_each_constraint_is_named(path: tuple[Any, ...], value: Any, message: str) -> None:
    data = copy.deepcopy(SEED)
    _set(data, path, value)
    found = _problems(data)
    at = path if path[-1] != "choices" else (*path, 0)
    assert len(found) == 1 and found[0][0] == at and found[0][1].startswith(message), found


def test_a_misspelt_key_is_pointed_at_with_the_nearest_name() -> None:
    data = copy.deepcopy(SEED)
    data["steps"][2]["confirm"] = {"mesage": "x"}
    data["steps"][0]["retry"] = {"attempts": 2}
    found = _problems(data)
    assert (("steps", 0, "retry"), "unknown key 'retry' (did you mean 'retries'?)", True) in found
    assert (("steps", 2, "confirm", "mesage"), "unknown key 'mesage' (did you mean 'message'?)", True) in found


def test_a_missing_key_is_named_at_its_mapping() -> None:
    data = copy.deepcopy(SEED)
    del data["steps"][1]["action"]
    assert _problems(data) == [(("steps", 1), "missing required key 'action'", False)]


def test_the_python_name_of_with_is_not_a_runbook_key() -> None:
    """`with_` is the model's Python name for `with`; a file writing it is wrong, not silently accepted."""
    data = copy.deepcopy(SEED)
    data["steps"][2]["with_"] = data["steps"][2].pop("with")
    found = _problems(data)
    assert (("steps", 2, "with_"), "unknown key 'with_' (did you mean 'with'?)", True) in found


def test_the_editor_schema_is_generated_from_the_model(tmp_path: Path) -> None:
    """`breakglass schema` prints the model's schema; an editor validating with it agrees with the model on
    the seed and on a broken copy."""
    import jsonschema
    from typer.testing import CliRunner

    from engine.cli import app

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["properties"]["steps"]["minItems"] == 1
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(SEED)) == []
    broken = copy.deepcopy(SEED)
    broken["steps"][2]["confirm"] = 5
    assert list(validator.iter_errors(broken)) != [] and _problems(broken) != []


# --- output fields -----------------------------------------------------------------------------------------

def _book(steps: str) -> str:
    return f"id: rb\ntitle: Output fields\nsteps:\n{steps}"


PROBE = """\
  - id: probe
    title: Probe
    action: shell.run
    with: {argv: [echo, hi], read_only: true}
    expect: result.exit_code == 0
"""


@pytest.mark.parametrize(("template", "where", "message"), [
    ("{{ steps.probe.output.status_code }}", "text",
     "'steps.probe.output.status_code': action 'shell.run' has no output field 'status_code'"),
    ("{{ steps.probe.output['exit_cod'] }}", "text", "no output field 'exit_cod' (did you mean 'exit_code'?)"),
    ("{% for l in steps.probe.output.stdout_lines %}{{ l }}{% endfor %}", "text",
     "no output field 'stdout_lines'"),
])
def test_a_read_of_an_output_field_the_action_lacks_is_refused(template: str, where: str, message: str) -> None:
    text = _book(PROBE + f"  - id: tell\n    title: Tell\n    action: log.note\n    with:\n      {where}: "
                         f"{json.dumps(template)}\n")
    with pytest.raises(RunbookError) as err:
        check_text(text, "rb.yaml")
    [problem] = err.value.problems
    assert (problem.line, problem.column) == (13, 13)
    assert message in problem.message and "see `breakglass actions shell.run`" in problem.message


def test_result_in_expect_is_checked_against_the_steps_own_action() -> None:
    text = _book(PROBE.replace("result.exit_code == 0", "result.exitcode == 0"))
    with pytest.raises(RunbookError, match=r"'result.exitcode': action 'shell.run' has no output field "
                                           r"'exitcode' \(did you mean 'exit_code'\?\)"):
        check_text(text, "rb.yaml")


def test_declared_fields_pass_and_open_ended_outputs_are_not_checked() -> None:
    check_text(_book(PROBE + "  - id: tell\n    title: Tell\n    action: log.note\n    with:\n"
                             "      text: \"{{ steps.probe.output.stdout }} {{ steps.probe.ok }}\"\n"), "rb.yaml")

    class _Open(Action[Params]):
        name = "acme.open"
        summary = "an action that does not declare its output"

        def run(self, params: Params, ctx: ActionContext) -> ActionResult:
            return ActionResult({"anything": 1})

    registry = Registry()
    registry.register(_Open)
    check_text(_book("  - {id: o, title: O, action: acme.open}\n  - id: tell\n    title: Tell\n"
                     "    action: log.note\n    with: {text: \"{{ steps.o.output.anything }}\"}\n"), "rb.yaml",
               registry)


def test_actions_name_shows_arguments_output_fields_and_effect() -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    result = CliRunner().invoke(app, ["actions", "http.probe"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Effect: read" in out and "Arguments (with:):" in out and "Output fields" in out
    assert "\n  url (string, required)" in out and "\n  status (integer)" in out
    result = CliRunner().invoke(app, ["actions", "--json", "shell.run"])
    info = json.loads(result.stdout)
    assert info["effect"] == "write" and info["read_only_flag"] == "read_only"
    assert "exit_code" in [f["name"] for f in info["output"]]


def test_local_actions_produce_only_the_fields_they_declare(tmp_path: Path) -> None:
    """The declarations are true of what the actions give (those that run without a server here)."""
    text = _book("""\
  - {id: note, title: n, action: log.note, with: {text: hi}}
  - {id: check, title: c, action: assert, with: {that: [true]}}
  - {id: pause, title: p, action: wait.sleep, with: {seconds: 0}}
  - {id: sh, title: s, action: shell.run, with: {argv: [echo, hi], read_only: true}}
""")
    outcome, records = go(tmp_path, text)
    assert outcome.status == "succeeded"
    registry = Registry()
    for rec in of(records, "step.succeeded"):
        action = {"note": "log.note", "check": "assert", "pause": "wait.sleep", "sh": "shell.run"}[rec["step"]]
        assert set(rec["output"]) <= set(registry.output_fields(action) or ()), (action, rec["output"])
    assert set(BUILTIN) >= {"log.note", "assert", "wait.sleep", "shell.run"}


# --- run time ----------------------------------------------------------------------------------------------

def test_a_template_failing_at_run_time_names_its_file_line_and_column(tmp_path: Path) -> None:
    """Validation cannot know an output's inner shape; when such a read fails, the step's error says where
    the template is written."""
    text = _book(PROBE + "  - id: tell\n    title: Tell\n    action: log.note\n    with:\n"
                         "      text: \"{{ steps.probe.output.stdout.nowhere }}\"\n")
    outcome, records = go(tmp_path, text)
    assert outcome.status == "failed"
    [failed] = of(records, "step.failed", "tell")
    assert failed["error"].startswith(f"{tmp_path / 'rb.yaml'}:13:13: template ")
    assert "nowhere" in failed["error"]


# --- linear ------------------------------------------------------------------------------------------------

def _check_seconds(n: int) -> float:
    """Best of three runs of the checks alone over n plain steps (no templates: Jinja's own parse is linear
    and would hide a quadratic term)."""
    text = "id: many\ntitle: Many steps\nsteps:\n" + "".join(
        f"  - {{id: s{i}, title: Step {i}, action: log.note, with: {{text: note {i}}}}}\n" for i in range(n))
    src = parse(text, "many.yaml")
    steps = src.data["steps"]
    ids = [step["id"] for step in steps]
    registry = Registry()
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        assert check_parts({}, steps, ids, src, registry) == []
        best = min(best, time.perf_counter() - began)
    return best


def test_checking_is_linear_in_the_number_of_steps() -> None:
    """8x the steps must cost about 8x: a per-step copy of the step ids (what made a 5,500-step runbook spend
    4.7 s in checks) costs ~90x here."""
    small, large = _check_seconds(500), _check_seconds(4_000)
    assert large / small < 25, (small, large)
