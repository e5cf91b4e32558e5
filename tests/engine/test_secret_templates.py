"""Secrets are redacted by value, so templates may use a secret only as it is: altered forms are refused."""

from __future__ import annotations

import pytest

from breakglass.engine.errors import RunbookError
from breakglass.engine.loader import load_text

RUNBOOK = """\
id: sec
title: Secrets in templates
inputs:
  token: {{type: secret, env: BG_TOKEN}}
  hook: {{type: url, env: BG_HOOK}}
  plain: {{type: string, default: x}}
steps:
  - id: use
    title: Use it
    action: log.note
    with: {{text: "{text}"}}
"""


@pytest.mark.parametrize("text", [
    "Bearer {{ inputs.token }}",
    "{{ inputs.token | default('') }}",
    "{{ 'prefix ' ~ inputs.hook }}",
    "{{ inputs.plain | upper }}",
    "{{ inputs.token is defined }}",
])
def test_secrets_used_as_they_are_pass(text: str) -> None:
    load_text(RUNBOOK.format(text=text), "sec.yaml", expected_id="sec")


@pytest.mark.parametrize(("text", "how"), [
    ("{{ inputs.token | upper }}", "the filter 'upper'"),
    ("{{ inputs.token | reverse | join('') }}", "the filter 'reverse'"),
    ("{{ inputs.token[:7] }}", "an index or slice"),
    ("{{ inputs['token'] | urlencode }}", "the filter 'urlencode'"),
    ("{{ inputs.hook.split('/') }}", "an attribute or method"),
    ("{% for c in inputs.token %}{{ c }}{% endfor %}", "a loop"),
])
def test_altered_secrets_are_refused_with_a_located_message(text: str, how: str) -> None:
    with pytest.raises(RunbookError) as info:
        load_text(RUNBOOK.format(text=text), "sec.yaml", expected_id="sec")
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == (11, 18)  # the value of `text:`
    assert how in problem.message and "redacted by value" in problem.message
