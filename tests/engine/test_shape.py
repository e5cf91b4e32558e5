"""engine.shape (the schema check `validate` uses) and engine.model (what a run builds) agree.

The schema check must refuse exactly what the model refuses: if it let something through that the model
then rejected, `run` would fail on a file `validate` passed; if it refused more, `validate` would cry wolf.
Hypothesis mutates a valid runbook (values swapped for other types, keys dropped or added, near misses of
every constraint) and both must give the same verdict.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from breakglass.actions.registry import ARGUMENTS_FILE, argument_table
from breakglass.engine import shape
from breakglass.engine.model import Runbook

SCALE = int(os.environ.get("BREAKGLASS_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

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


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*path, i))
    return found


PATHS = _paths(SEED)[1:]
# Values chosen to sit on every constraint's edge: bool vs int, int vs float, 0 and negatives, ids with a
# trailing newline, enum near misses, empty and wrong containers.
EDGE_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 3, 10_000, 10_001, 0.0, 0.5, 1.0, -0.5, 2.5, "", "x", "3", "yes", "true",
    "abc\n", "a-b", "a_b", "Ab", "9a", "-a", "a--b", "abort", "continue", "rollback", "Abort", "critical",
    "string", "domain", "secret", "Domain", "choice", [], ["a"], [1], [True], [None], [1.5], {}, {"x": 1},
    {"message": "m"}, {"message": 1}, {"type_to_confirm": "x"}, {"action": "log.note"}, {"attempts": 2},
    {"attempts": 0}, {"id": "s", "title": "t", "action": "a"},
]
VALUES = st.sampled_from(EDGE_VALUES)
# Not `with_`: the model takes its own field name from Python code (populate_by_name); files write `with`,
# and the schema check refusing `with_` is the behaviour wanted.
KEYS = st.sampled_from(["id", "title", "with", "retry", "confirm", "type", "default", "attempts",
                        "message", "x", "action", "env", "choices", "required", "max_delay"])


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    _at(data, path[:-1])[path[-1]] = value


def _delete(data: dict[str, Any], path: tuple[Any, ...]) -> None:
    del _at(data, path[:-1])[path[-1]]


DICT_PATHS = [p for p in [(), *PATHS] if isinstance(_at(SEED, p), dict)]
MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), VALUES),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("add"), st.sampled_from(DICT_PATHS), st.tuples(KEYS, VALUES)),
), min_size=1, max_size=3)


def _mutate(mutations: list[tuple[str, tuple[Any, ...], Any]]) -> dict[str, Any]:
    data = copy.deepcopy(SEED)
    for kind, path, value in mutations:
        try:
            if kind == "set":
                _set(data, path, copy.deepcopy(value))
            elif kind == "delete":
                _delete(data, path)
            else:
                key, item = value
                _set(data, (*path, key), copy.deepcopy(item))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the container
    return data


def _model_accepts(data: Any) -> bool:
    try:
        Runbook.model_validate(data)
    except ValidationError:
        return False
    return True


def test_the_seed_is_valid_for_both() -> None:
    assert shape.mismatches(SEED) == []
    assert _model_accepts(SEED)


@FUZZ
@given(MUTATIONS)
def test_schema_check_and_model_agree(mutations: list[tuple[str, tuple[Any, ...], Any]]) -> None:
    data = _mutate(mutations)
    found = shape.mismatches(data)
    assert (found == []) == _model_accepts(data), (data, found)


def test_every_single_change_gets_the_same_verdict() -> None:
    """Every value of VALUES at every place of the seed, and every key dropped: exhaustive, under a second."""
    disagree = []
    for path in PATHS:
        for value in [*EDGE_VALUES, "drop"]:
            data = copy.deepcopy(SEED)
            if value == "drop":
                _delete(data, path)
            else:
                _set(data, path, copy.deepcopy(value))
            if (shape.mismatches(data) == []) != _model_accepts(data):
                disagree.append((path, value))
    assert disagree == []


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
    (("severity",), "urgent", "input should be 'critical', 'high', 'medium' or 'low'"),
    (("steps",), [], "list should have at least 1 item"),
])
def test_each_constraint_is_named(path: tuple[Any, ...], value: Any, message: str) -> None:
    data = copy.deepcopy(SEED)
    _set(data, path, value)
    found = shape.mismatches(data)
    assert [(m.path, m.message) for m in found] == [(path, message)] or (
        len(found) == 1 and found[0].path == path and found[0].message.startswith(message)), found
    assert not _model_accepts(data)


def test_an_integer_where_a_number_is_asked_is_fine() -> None:
    data = copy.deepcopy(SEED)
    _set(data, ("steps", 0, "retries", "delay"), 2)
    assert shape.mismatches(data) == [] and _model_accepts(data)


def test_a_misspelt_key_inside_a_gate_is_pointed_at() -> None:
    data = copy.deepcopy(SEED)
    data["steps"][2]["confirm"] = {"mesage": "x"}
    [m] = shape.mismatches(data)
    assert m.path == ("steps", 2, "confirm", "mesage") and m.key
    assert "did you mean 'message'" in m.message


def test_the_walker_knows_every_keyword_the_schema_uses() -> None:
    assert shape.unknown_keywords() == set()
    assert shape.unknown_keywords({"type": "string", "format": "email"}) == {"format"}


def test_argument_table_is_current() -> None:
    committed = json.loads(ARGUMENTS_FILE.read_text())
    assert committed == argument_table(), (
        "run: python -c 'from breakglass.actions.registry import write_argument_table as w; w()'")
