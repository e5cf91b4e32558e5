"""The template sandbox: public SSTI payloads are refused at validation or inert at render; data is data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from actions.registry import Registry
from engine import templates
from engine.errors import RunbookError, TemplateError
from engine.loader import load_text

REGISTRY = Registry()
# What a refusal at validation may say; each names the problem and where templates may reach.
REFUSALS = ("which the sandbox refuses", "undefined name", "template syntax error", "undefined input",
            "refers to a step")
# Signs that something ran or leaked: `id` output, /etc/passwd, object reprs, module reprs.
EXECUTED = ("uid=", "root:x:0:0", "<class", "<module", "<function", "<built-in", "subprocess", "Popen")


def _context() -> dict[str, Any]:
    look = {"output": {"txt": "{{ 7*7 }}", "list": [1, 2]}, "ok": True, "status": "succeeded"}
    return {"inputs": {"domain": "example.com", "count": 3}, "run": {"id": "r1", "mode": "dry-run"},
            "steps": {"look": look}}


def _payloads(shared_fixtures: Path, marker: Path) -> list[str]:
    ssti = shared_fixtures / "ssti"
    if not (ssti / "jinja2-payloads.json").is_file():
        pytest.skip("ssti fixtures absent")
    payloads = [p["payload"] for p in json.loads((ssti / "jinja2-payloads.json").read_text(encoding="utf-8"))]
    payloads += [line for line in (ssti / "detect.txt").read_text(encoding="utf-8").splitlines() if line]
    # Point every command the payloads would run at a marker file we can look for afterwards.
    touch = f"touch {marker}"
    return [p.replace("'id'", f"'{touch}'").replace('"id"', f'"{touch}"').replace("'whoami'", f"'{touch}'")
            for p in payloads]


def _runbook(payload: str) -> str:
    return yaml.safe_dump({"id": "ssti", "title": "payload", "steps": [
        {"id": "look", "title": "look", "action": "log.note", "with": {"text": "x"}},
        {"id": "use", "title": "use", "action": "log.note", "with": {"text": payload}},
    ]})


def _inert(value: Any) -> None:
    assert isinstance(value, (str, int, float, bool, list, dict, type(None))), type(value)
    shown = json.dumps(value, default=repr)
    for sign in EXECUTED:
        assert sign not in shown, (sign, shown)


def test_every_public_payload_is_refused_or_inert(shared_fixtures: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = _payloads(shared_fixtures, marker)
    assert len(payloads) >= 50
    refused = 0
    for payload in payloads:
        try:
            load_text(_runbook(payload), "ssti.yaml", REGISTRY)
        except RunbookError as exc:
            refused += 1
            messages = [p.message for p in exc.problems]
            assert any(r in m for m in messages for r in REFUSALS), (payload, messages)
        else:
            # Accepted payloads are plain templates (arithmetic, text): nothing private, nothing undefined.
            assert "__" not in payload and "config" not in payload and "self" not in payload, payload
        try:
            rendered = templates.render_string(payload, _context())
        except TemplateError as exc:
            assert str(exc)
        else:
            _inert(rendered)
        assert not marker.exists(), payload
    assert refused >= 45


@pytest.mark.parametrize("payload", [
    "{{ ''.__class__.__mro__ }}",
    "{{ inputs|attr('__globals__') }}",
    "{{ inputs|attr('_'*2 ~ 'class' ~ '_'*2) }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__ }}",
    "{{ config.items() }}",
    "{{ inputs['__class__'] }}",
    "{% set x = ''.__class__ %}{{ x }}",
    "{{ inputs.domain.__len__() }}",
    "{{ namespace.__init__ }}",
])
def test_escape_routes_are_refused_at_validation(payload: str) -> None:
    doc = _runbook(payload)
    line = max(i for i, text in enumerate(doc.splitlines(), 1) if "text:" in text)
    with pytest.raises(RunbookError) as info:
        load_text(doc, "ssti.yaml", REGISTRY)
    assert any(r in p.message for p in info.value.problems for r in ("sandbox refuses", "undefined name"))
    assert all(p.line == line for p in info.value.problems), (line, info.value.problems)


@pytest.mark.parametrize("payload", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ inputs|attr('__class__') }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner }}",
    "{{ inputs.items }}",
    "{{ inputs.domain.upper }}",
    "{{ self }}",
    "{{ undefined_thing }}",
    "{{ inputs.nope }}",
    "{{ range }}",
])
def test_escape_routes_fail_at_render(payload: str) -> None:
    """The second line of defence: unvalidated, these raise TemplateError rather than hand out objects."""
    with pytest.raises(TemplateError):
        templates.render_string(payload, _context())


def test_render_keeps_types_of_single_expressions() -> None:
    ctx = _context()
    assert templates.render_string("{{ inputs.count }}", ctx) == 3
    assert templates.render_string("{{ steps.look.output.list }}", ctx) == [1, 2]
    assert templates.render_string("{{ steps.look.ok }}", ctx) is True
    assert templates.render_string("n={{ inputs.count }}", ctx) == "n=3"
    assert templates.render_string("{{ range(2) }}", ctx) == [0, 1]
    assert templates.render_string("plain", ctx) == "plain"


def test_output_of_a_step_is_never_rendered() -> None:
    ctx = _context()
    assert templates.render_string("{{ steps.look.output.txt }}", ctx) == "{{ 7*7 }}"
    assert templates.render_string("got {{ steps.look.output.txt }}", ctx) == "got {{ 7*7 }}"
    assert templates.render_value({"a": ["{{ steps.look.output.txt }}"]}, ctx) == {"a": ["{{ 7*7 }}"]}


def test_conditions() -> None:
    ctx = _context()
    assert templates.evaluate("steps.look.ok and inputs.count > 2", ctx) is True
    assert templates.evaluate("{{ inputs.count == 4 }}", ctx) is False
    assert templates.evaluate(None, ctx) is True
    assert templates.evaluate(False, ctx) is False
    with pytest.raises(TemplateError):
        templates.evaluate("inputs.missing", ctx)
    with pytest.raises(TemplateError):
        templates.evaluate("{{ inputs.missing }}", ctx)
    with pytest.raises(TemplateError):
        templates.evaluate("''.__class__", ctx)


def test_action_output_stays_literal_in_a_run(tmp_path: Path, bg_home: Path) -> None:
    """A real dry-run: a command prints '{{ 7*7 }}'; the next step's template inserts it as text, not 49."""
    from engine.cli import app

    rb = tmp_path / "literal-data.yaml"
    rb.write_text(
        "id: literal-data\ntitle: Output is data\nsteps:\n"
        "  - id: emit\n    title: Emit\n    action: shell.run\n"
        "    with:\n      argv: [printf, '%s', \"{{ '{{ 7*7 }}' }}\"]\n      read_only: true\n"
        "  - id: use\n    title: Use\n    action: log.note\n"
        "    with:\n      text: \"got {{ steps.emit.output.stdout }}\"\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["run", str(rb), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    [used] = [r for r in records if r.get("step") == "use" and r["type"] == "step.succeeded"]
    assert used["output"]["note"] == "got {{ 7*7 }}"


def test_environment_is_sandboxed_and_strict() -> None:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = templates.environment()
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env.undefined is StrictUndefined
    assert not {"lipsum", "cycler", "joiner"} & set(env.globals)


@pytest.mark.parametrize("text", [
    "{{ inputs.domain }}",
    "{% for h in steps.mx.output.answers | map(attribute='value') %}{{ h ~ '.' if h else x[0]['k'] }}{% endfor %}",
    "{% set a = (1, [2, {'k': inputs.x}]) %}{{ a | selectattr('y', 'equalto', 3) | list | length > 2 }}",
    "{% if a %}{{ b(c, d=e, *f, **g) }}{% elif h %}{{ i.j[k:l] }}{% else %}{{ m is defined and n }}{% endif %}",
])
def test_the_checker_sees_every_node_jinja2_itself_finds_in_order(text: str) -> None:
    from jinja2 import nodes

    ast = templates.parse(text, False)
    expected = list(ast.find_all(nodes.Node))
    walked = templates._descendants(ast)
    assert [id(n) for n in walked] == [id(n) for n in expected]
