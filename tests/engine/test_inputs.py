"""Input values: every type's accept/reject table, env-sourced values, templated defaults and their cycles."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from engine.errors import InputError, RunbookError
from engine.inputs import coerce, resolve, secret_values
from engine.loader import load_text
from engine.model import InputSpec, InputType, Runbook


def _spec(kind: str, **extra: Any) -> InputSpec:
    return InputSpec.model_validate({"type": kind, **extra})


ACCEPT = [
    ("host", "192.0.2.7", "192.0.2.7"),
    ("host", "mx1.example.net", "mx1.example.net"),
    ("domain", "example.com", "example.com"),
    ("domain", "Example.COM.", "example.com"),
    ("domain", "bücher.de", "xn--bcher-kva.de"),
    ("domain", "a-b.c-d.example", "a-b.c-d.example"),
    ("domain", "xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("hostname", "localhost", "localhost"),
    ("hostname", "mx1.example.net", "mx1.example.net"),
    ("ipv4", "192.0.2.1", "192.0.2.1"),
    ("ipv6", "2001:DB8::1", "2001:db8::1"),
    ("ip", "198.51.100.7", "198.51.100.7"),
    ("ip", "::1", "::1"),
    ("url", "https://example.com/health?x=1", "https://example.com/health?x=1"),
    ("url", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
    ("email", "ops+oncall@example.com", "ops+oncall@example.com"),
    ("boolean", "yes", True),
    ("boolean", "OFF", False),
    ("boolean", True, True),
    ("boolean", "0", False),
    ("integer", "42", 42),
    ("integer", 7, 7),
    ("integer", " -3 ", -3),
    ("list", "a, b,,c", ["a", "b", "c"]),
    ("list", ["x", 1], ["x", 1]),
    ("string", 12, "12"),
    ("secret", "hunter2", "hunter2"),
]

REJECT = [
    ("host", "exa mple", "not a valid domain name"),
    ("domain", "exa mple..com", "not a valid domain name"),
    ("domain", "-bad.com", "label '-bad'"),
    ("domain", "bad-.com", "label 'bad-'"),
    ("domain", "a..b", "an empty label"),
    ("domain", "localhost", "at least two labels"),
    ("domain", "example.123", "top-level label is numeric"),
    ("domain", "a" * 64 + ".com", "longer than 63 characters"),
    ("domain", ("a" * 60 + ".") * 5 + "com", "longer than 253"),
    ("domain", "exa_mple.com", "label 'exa_mple'"),
    ("domain", "", "empty"),
    ("hostname", "host name", "not a valid domain name"),
    ("ipv4", "2001:db8::1", "not an IPv4 address"),
    ("ipv4", "256.1.1.1", "not an IP address"),
    ("ipv6", "192.0.2.1", "not an IPv6 address"),
    ("ip", "example.com", "not an IP address"),
    ("url", "ftp://example.com/", "not an http(s) URL"),
    ("url", "https://", "not an http(s) URL"),
    ("url", "http://[::1", "not a valid URL"),
    ("url", "http://example.com:99999/", "not a valid URL"),
    ("email", "no-at-sign", "not an email address"),
    ("email", "a@b", "at least two labels"),
    ("email", "a b@example.com", "not an email address"),
    ("boolean", "maybe", "not a boolean"),
    ("integer", "4.2", "not an integer"),
    ("integer", True, "not an integer"),
    ("integer", "1" * 5000, "not an integer"),
    ("list", 3, "not a list"),
    ("string", {"a": 1}, "expected text"),
]


@pytest.mark.parametrize(("kind", "value", "expected"), ACCEPT)
def test_accepts(kind: str, value: Any, expected: Any) -> None:
    assert coerce("x", _spec(kind), value) == expected


@pytest.mark.parametrize(("kind", "value", "message"), REJECT)
def test_rejects(kind: str, value: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        coerce("target", _spec(kind), value)
    text = str(info.value)
    assert text.startswith(f"input 'target' ({kind}): ")
    assert message in text


def test_every_type_is_in_the_tables() -> None:
    kinds = {k for k, _, _ in ACCEPT} | {k for k, _, _ in REJECT} | {"choice"}
    assert kinds == {t.value for t in InputType}


def test_choice() -> None:
    spec = _spec("choice", choices=["primary", "secondary", 3])
    assert coerce("site", spec, "secondary") == "secondary"
    assert coerce("site", spec, 3) == "3"
    with pytest.raises(InputError, match="not one of: primary, secondary, 3"):
        coerce("site", spec, "tertiary")


def _runbook(inputs: dict[str, Any]) -> Runbook:
    text = yaml.safe_dump({"id": "inputs", "title": "t", "inputs": inputs,
                           "steps": [{"id": "a", "title": "t", "action": "log.note", "with": {"text": "x"}}]})
    return load_text(text, "inputs.yaml").runbook  # type: ignore[no-any-return]


def test_precedence_given_then_env_then_default() -> None:
    rb = _runbook({"zone": {"type": "domain", "env": "BG_ZONE", "default": "default.example"}})
    assert resolve(rb, {}, {})["zone"] == "default.example"
    assert resolve(rb, {}, {"BG_ZONE": "env.example"})["zone"] == "env.example"
    assert resolve(rb, {"zone": "given.example"}, {"BG_ZONE": "env.example"})["zone"] == "given.example"


def test_env_values_are_checked_and_redacted() -> None:
    rb = _runbook({"token": {"type": "secret", "env": "BG_TOKEN"},
                   "port": {"type": "integer", "env": "BG_PORT"}})
    values = resolve(rb, {}, {"BG_TOKEN": "s3cret", "BG_PORT": "2525"})
    assert values == {"token": "s3cret", "port": 2525}
    assert secret_values(rb, values) == {"s3cret", "2525"}
    with pytest.raises(InputError, match=r"input 'port' \(integer\): the value read from \$BG_PORT is not a valid "
                       "integer") as info:
        resolve(rb, {}, {"BG_TOKEN": "s3cret", "BG_PORT": "many-9f8e7d"})
    assert "many-9f8e7d" not in str(info.value)  # read from the environment, so treated as a secret


@pytest.mark.parametrize(("spec", "value"), [
    ({"type": "url", "env": "BG_VALUE"}, "ftp://hook-9f8e7d.example/x"),
    ({"type": "domain", "env": "BG_VALUE"}, "bad_label-9f8e7d.example"),
    ({"type": "email", "env": "BG_VALUE"}, "no-at-sign-9f8e7d"),
    ({"type": "choice", "choices": ["a", "b"], "env": "BG_VALUE"}, "c-9f8e7d"),
    ({"type": "boolean", "env": "BG_VALUE"}, "maybe-9f8e7d"),
])
@pytest.mark.parametrize("given", [False, True])
def test_values_of_env_inputs_stay_out_of_type_errors(spec: dict[str, Any], value: str, given: bool) -> None:
    """Issue 14, item 13: such errors reach the terminal and CI logs, where redaction never looks."""
    rb = _runbook({"value": spec})
    with pytest.raises(InputError) as info:
        resolve(rb, {"value": value} if given else {}, {} if given else {"BG_VALUE": value})
    message = str(info.value)
    assert "9f8e7d" not in message
    assert "input 'value'" in message and "not shown" in message
    assert ("given" if given else "read from $BG_VALUE") in message


@pytest.mark.parametrize("value", ["a", "ab"])
@pytest.mark.parametrize("from_env", [False, True])
def test_secrets_too_short_to_mask_are_refused(value: str, from_env: bool) -> None:
    """Issue 14, item 13: a one- or two-character secret was accepted, then never redacted."""
    rb = _runbook({"token": {"type": "secret", "env": "BG_TOKEN"}})
    with pytest.raises(InputError, match="input 'token' \\(secret\\): a secret of fewer than 3 characters cannot "
                       "be masked") as info:
        resolve(rb, {} if from_env else {"token": value}, {"BG_TOKEN": value} if from_env else {})
    assert f"'{value}'" not in str(info.value)
    assert resolve(rb, {"token": "abc"}, {})["token"] == "abc"


def test_short_values_from_the_environment_are_no_secrets_and_lists_are_masked_item_by_item() -> None:
    rb = _runbook({"port": {"type": "integer", "env": "BG_PORT"},
                   "hosts": {"type": "list", "env": "BG_HOSTS"}})
    values = resolve(rb, {}, {"BG_PORT": "80", "BG_HOSTS": "alpha-host,beta-host"})
    assert secret_values(rb, values) == {"alpha-host", "beta-host"}


def test_required_and_unknown_inputs_reported_together() -> None:
    rb = _runbook({"zone": {"type": "domain"},
                   "token": {"type": "secret", "env": "BG_TOKEN", "required": True},
                   "hook": {"type": "url", "env": "BG_HOOK"},  # env without default: still required
                   "relay": {"type": "url", "env": "BG_RELAY", "required": False},
                   "note": {"type": "string", "required": False}})
    with pytest.raises(InputError) as info:
        resolve(rb, {"zoen": "x"}, {})
    text = str(info.value)
    assert "unknown input 'zoen'" in text
    assert "input 'zone' is required: pass -i zone=VALUE" in text
    assert "input 'token' is required" in text and "$BG_TOKEN" in text
    assert "input 'hook' is required" in text and "$BG_HOOK" in text
    assert "'note'" not in text and "'relay'" not in text
    assert resolve(rb, {"zone": "example.com"}, {"BG_TOKEN": "tok", "BG_HOOK": "https://hooks.test/x"}) == {
        "zone": "example.com", "token": "tok", "hook": "https://hooks.test/x", "relay": None, "note": None}


def test_templated_defaults_render_in_dependency_order() -> None:
    rb = _runbook({
        "backup": {"type": "hostname", "default": "backup.{{ inputs.mx }}"},  # declared before what it uses
        "mx": {"type": "hostname", "default": "mx.{{ inputs.zone }}"},
        "zone": {"type": "domain"},
        "count": {"type": "integer", "default": "{{ inputs.base * 2 }}"},
        "base": {"type": "integer", "default": 21},
    })
    values = resolve(rb, {"zone": "Example.com"}, {})
    assert values["mx"] == "mx.example.com"
    assert values["backup"] == "backup.mx.example.com"
    assert values["count"] == 42


def test_templated_default_is_type_checked() -> None:
    rb = _runbook({"zone": {"type": "string"}, "mx": {"type": "domain", "default": "mx..{{ inputs.zone }}"}})
    with pytest.raises(InputError, match="input 'mx' \\(domain\\).*empty label"):
        resolve(rb, {"zone": "example.com"}, {})


def test_cycle_in_defaults_is_reported() -> None:
    rb = _runbook({"a": {"type": "string", "default": "{{ inputs.b }}"},
                   "b": {"type": "string", "default": "{{ inputs.a }}"},
                   "c": {"type": "string", "default": "fine"}})
    with pytest.raises(InputError) as info:
        resolve(rb, {}, {})
    text = str(info.value)
    assert "input 'a'" in text and "input 'b'" in text and "cycle" in text
    assert resolve(rb, {"a": "x"}, {}) == {"a": "x", "b": "x", "c": "fine"}


@pytest.mark.parametrize(("inputs", "message"), [
    ({"zone": {"type": "domain", "default": "exa mple..com"}}, "'exa mple..com' is not a valid domain name"),
    ({"zone": {"type": "ipv4", "default": "::1"}}, "not an IPv4 address"),
    ({"site": {"type": "choice", "choices": ["a"], "default": "b"}}, "not one of: a"),
    ({"site": {"type": "choice"}}, "has type choice but no choices"),
    ({"token": {"type": "secret", "default": "x"}}, "must not have a default"),
    ({"mx": {"type": "string", "default": "{{ inputs.nope }}"}}, "undefined input 'inputs.nope'"),
    ({"mx": {"type": "string", "default": "{{ steps.a.output }}"}}, "'steps.a' refers to a step"),
    ({"bad name": {"type": "string"}}, "must be a valid identifier"),
])
def test_bad_declarations_are_refused_at_validation(inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(RunbookError) as info:
        _runbook(inputs)
    assert any(message in p.message for p in info.value.problems), info.value.problems
    assert all(p.line >= 1 and p.column >= 1 for p in info.value.problems)


@pytest.mark.parametrize(("raw", "typed"), [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"),
                                            ("standby-1.example.net", "standby-1.example.net"),
                                            ("db", "db")])
def test_host_accepts_names_and_addresses(raw: str, typed: str) -> None:
    rb = _runbook({"host": {"type": "host"}})
    assert resolve(rb, {"host": raw}, {}) == {"host": typed}


@pytest.mark.parametrize("raw", ["exa mple", "-bad.example", "a..b", "300.1.2.3.4"])
def test_host_rejects_what_is_neither(raw: str) -> None:
    rb = _runbook({"host": {"type": "host"}})
    with pytest.raises(InputError, match="input 'host' \\(host\\)"):
        resolve(rb, {"host": raw}, {})
