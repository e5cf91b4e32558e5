"""Property tests of the loader: whatever the text, ``load_text`` returns a runbook or raises RunbookError.

Every problem must be located (line ≥ 1, column ≥ 1, inside the text) and fit on one line, because editors
and ``file:line:col`` parsers read one problem per line. No other exception may escape.
"""

from __future__ import annotations

import os
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.registry import Registry
from engine.errors import RunbookError
from engine.loader import LoadedRunbook, load_text

pytestmark = pytest.mark.slow

FILE = "fuzz.yaml"
REGISTRY = Registry()
# BREAKGLASS_FUZZ_SCALE=20 for a longer hunt; the default keeps the whole file around 10 s.
SCALE = int(os.environ.get("BREAKGLASS_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = """\
id: fuzz
title: A runbook the fuzzer mutates
description: |
  Markdown *here*.
severity: high
tags: [dns, mail]
inputs:
  domain:
    type: domain
    description: The zone
  count:
    type: integer
    default: 3
  mode:
    type: choice
    choices: [fast, slow]
    default: fast
  backup:
    type: string
    default: "backup.{{ inputs.domain }}"
steps:
  - id: look
    title: Look
    action: shell.run
    with:
      argv: ["echo", "{{ inputs.domain }}"]
      read_only: true
    expect: "result.exit_code == 0"
    retries: {attempts: 3, delay: 1, backoff: 2}
  - id: wait
    title: Wait
    action: wait.sleep
    with: {seconds: 1, reason: ttl}
    when: "{{ steps.look.ok }}"
    until: result.slept > 0
    timeout: 5
  - id: tell
    title: Tell
    action: log.note
    with:
      text: "{{ steps.look.output.stdout }} in {{ run.mode }}"
    confirm:
      message: Really?
      type_to_confirm: "{{ inputs.domain }}"
    on_failure: rollback
    rollback:
      action: log.note
      with: {text: undo}
"""


def _check(text: str) -> None:
    try:
        loaded = load_text(text, FILE, REGISTRY)
    except RunbookError as exc:
        assert exc.problems
        lines = text.count("\n") + 1
        for p in exc.problems:
            assert p.file == FILE
            assert 1 <= p.line <= lines + 1, (p, lines)
            assert p.column >= 1, p
            assert "\n" not in p.message, p
            assert p.message.strip(), p
            assert "please report" not in p.message, p  # the schema check passed what the model refused
    else:
        assert isinstance(loaded, LoadedRunbook)


def test_the_seed_is_valid() -> None:
    assert load_text(VALID, FILE, REGISTRY).runbook.id == "fuzz"


@FUZZ
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    _check(text)


YAML_BITS = st.sampled_from(
    ["\n", "  ", "- ", ": ", "? ", "{", "}", "[", "]", ",", "&a ", "*a", "!!str ",
     "!!python/object:os.system ", "|", ">", "#", "'", '"', "\t", "---\n", "...\n", "<<: ", "%YAML 1.1\n",
     "{{", "}}", "{%", "%}", "id",
     "steps", "title", "action", "with", "inputs", "type", "default", "log.note", "0x1F", "2024-02-30",
     "~", "null", "yes", ".inf", "-", "\\", "\x00", "\ufeff", "é", "__class__"]
)


@FUZZ
@given(st.lists(YAML_BITS | st.text(string.ascii_letters + string.digits, max_size=4), max_size=60))
def test_yaml_ish_text(bits: list[str]) -> None:
    _check("".join(bits))


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12) | \
    st.sampled_from(["{{ inputs.x }}", "{{ steps.a.output }}", "{{ ''.__class__ }}", "{% for %}", "result.ok",
                     "log.note", "shell.run", "dns.lokup", "abort", "rollback", "domain", "choice", "secret"])
KEYS = st.sampled_from([
    "id", "title", "description", "steps", "inputs", "action", "with", "when", "confirm", "retries", "until",
    "timeout", "expect", "on_failure", "rollback", "attempts", "delay", "type", "default", "choices", "env",
    "required", "text", "argv", "seconds", "message", "type_to_confirm", "severity", "tags", "x",
]) | st.text(max_size=6)
DATA = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30)


@FUZZ
@given(DATA)
def test_arbitrary_yaml_documents(data: object) -> None:
    _check(yaml.safe_dump(data, allow_unicode=True))


STEP = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c", "Bad", "a"]), "title": st.just("t"),
     "action": st.sampled_from(["log.note", "wait.sleep", "assert", "manual", "shell.run", "nope"])},
    optional={"with": st.dictionaries(KEYS, SCALARS, max_size=3), "when": SCALARS, "expect": SCALARS,
              "confirm": SCALARS | st.dictionaries(KEYS, SCALARS, max_size=2), "on_failure": SCALARS,
              "retries": st.dictionaries(KEYS, SCALARS, max_size=3), "timeout": SCALARS,
              "rollback": st.dictionaries(KEYS, SCALARS, max_size=3)},
)
RUNBOOK = st.fixed_dictionaries(
    {"id": st.just("fuzz"), "title": st.just("t"), "steps": st.lists(STEP, max_size=4)},
    optional={"inputs": st.dictionaries(st.text(max_size=5), st.dictionaries(KEYS, SCALARS, max_size=3),
                                        max_size=3)},
)


@FUZZ
@given(RUNBOOK)
def test_runbook_shaped_documents(data: object) -> None:
    _check(yaml.safe_dump(data, allow_unicode=True))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line", "swap_lines"]))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == "insert":
            text = text[:at] + draw(YAML_BITS) + text[at:]
        elif kind == "replace":
            text = text[:at] + draw(st.text(max_size=3)) + text[at + 1:]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(i, lines[j])
            elif kind == "drop_line":
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_runbook(text: str) -> None:
    _check(text)
