"""Input values: typed checks for every declared input, resolved before any step runs.

Values come, strongest first, from the command line (``-i name=value`` or ``--inputs FILE``), then the
input's ``env`` variable, then its ``default`` (which may be a template over other inputs).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine import templates
from engine.errors import InputError, TemplateError
from engine.input_types import InputType
from engine.redact import MIN_SECRET_LENGTH, TOO_SHORT

if TYPE_CHECKING:  # pydantic: validation checks input defaults without building the model
    from engine.model import InputSpec, Runbook

# RFC 1035 §2.3.1 / RFC 1123 §2.1: letters, digits, hyphens; no leading or trailing hyphen; ≤ 63 per label.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.I)
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


def _hostname(value: str, need_dot: bool) -> str:
    name = value.strip().rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise InputError(f"'{value}' is not a valid internationalised domain name") from None
    if not ascii_name or len(ascii_name) > 253:
        raise InputError(f"'{value}' is not a valid domain name (empty or longer than 253 characters)")
    labels = ascii_name.split(".")
    bad = next((label for label in labels if not _LABEL.match(label)), None)
    if bad is not None:
        raise InputError(f"'{value}' is not a valid domain name: {_label_problem(bad)}")
    if need_dot and len(labels) < 2:
        raise InputError(f"'{value}' is not a domain name: it needs at least two labels, like example.com")
    if labels[-1].isdigit():
        raise InputError(f"'{value}' is not a domain name: the top-level label is numeric")
    return ascii_name


def _label_problem(label: str) -> str:
    if label == "":
        return "an empty label (two dots in a row, or a leading dot)"
    if len(label) > 63:
        return f"label '{label[:20]}…' is longer than 63 characters"
    if label.startswith("-") or label.endswith("-"):
        return f"label '{label}' starts or ends with a hyphen"
    return f"label '{label}' has characters other than letters, digits and hyphens"


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"'{value}' is not a boolean (use true or false)")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    raise InputError(f"'{value}' is not a list (give a YAML list or comma-separated values)")


def _as_url(value: Any) -> str:
    try:
        parts = urlsplit(str(value))
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number below 65536)
    except ValueError:
        raise InputError(f"'{value}' is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"'{value}' is not an http(s) URL with a host")
    return str(value)


def _as_email(value: Any) -> str:
    local, at, domain = str(value).rpartition("@")
    if not at or not _EMAIL_LOCAL.match(local):
        raise InputError(f"'{value}' is not an email address")
    _hostname(domain, need_dot=True)
    return str(value)


def _as_ip(value: Any, version: int | None) -> str:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InputError(f"'{value}' is not an IP address") from None
    if version is not None and address.version != version:
        raise InputError(f"'{value}' is not an IPv{version} address")
    return str(address)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise InputError(f"'{value}' is not an integer")
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        raise InputError(f"'{value}' is not an integer") from None


def _as_host(value: Any) -> str:
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return _hostname(text, need_dot=False)


def coerce(name: str, spec: InputSpec, value: Any) -> Any:
    """Check ``value`` against the input's type and return it in its typed form."""
    return coerce_as(name, spec.type, spec.choices, value)


def coerce_as(name: str, t: InputType, choices: list[str | int] | None, value: Any) -> Any:
    try:
        if t is InputType.INTEGER:
            return _as_int(value)
        if t is InputType.BOOLEAN:
            return _as_bool(value)
        if t is InputType.LIST:
            return _as_list(value)
        if t is InputType.CHOICE:
            allowed = [str(c) for c in choices or []]
            if str(value) not in allowed:
                raise InputError(f"'{value}' is not one of: {', '.join(allowed)}")
            return str(value)
        if t is InputType.DOMAIN:
            return _hostname(str(value), need_dot=True)
        if t is InputType.HOSTNAME:
            return _hostname(str(value), need_dot=False)
        if t is InputType.HOST:
            return _as_host(value)
        if t in (InputType.IPV4, InputType.IPV6, InputType.IP):
            return _as_ip(value, {InputType.IPV4: 4, InputType.IPV6: 6}.get(t))
        if t is InputType.URL:
            return _as_url(value)
        if t is InputType.EMAIL:
            return _as_email(value)
        if isinstance(value, (dict, list)):
            raise InputError("expected text, got a structure")
        return str(value)
    except InputError as exc:
        raise InputError(f"input '{name}' ({t}): {exc}") from None


def resolve(rb: Runbook, given: Mapping[str, Any],
            environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every input's typed value; raise InputError naming all problems at once."""
    env = os.environ if environ is None else environ
    unknown = sorted(set(given) - set(rb.inputs))
    takes = ", ".join(rb.inputs) or "no inputs"
    problems = [f"unknown input '{n}'; this runbook takes: {takes}" for n in unknown]
    values: dict[str, Any] = {}
    pending: dict[str, str] = {}
    for name, spec in rb.inputs.items():
        source = "given"
        # None is "not given": an optional input left empty is recorded as null and comes back so on resume.
        if given.get(name) is not None:
            raw: Any = given[name]
        elif spec.env and spec.env in env:
            raw, source = env[spec.env], f"read from ${spec.env}"
        elif isinstance(spec.default, str) and templates.is_template(spec.default):
            pending[name] = spec.default
            continue
        elif spec.default is not None:
            raw = spec.default
        elif spec.is_required:
            where = f" or set ${spec.env}" if spec.env else ""
            problems.append(f"input '{name}' is required: pass -i {name}=VALUE{where}")
            continue
        else:
            values[name] = None
            continue
        try:
            values[name] = _coerce_quietly(name, spec, raw, source)
        except InputError as exc:
            problems.append(str(exc))
    problems += _render_defaults(rb, values, pending)
    if problems:
        raise InputError("\n".join(problems))
    return values


def _render_defaults(rb: Runbook, values: dict[str, Any], pending: dict[str, str]) -> list[str]:
    """Render templated defaults in dependency order; a cycle is reported, not looped on."""
    problems: list[str] = []
    while pending:
        progressed = False
        for name, text in list(pending.items()):
            try:
                rendered = templates.render_string(text, {"inputs": values})
            except TemplateError:
                continue  # depends on an input not rendered yet
            del pending[name]
            progressed = True
            try:
                values[name] = _coerce_quietly(name, rb.inputs[name], rendered, "of its default")
            except InputError as exc:
                problems.append(str(exc))
        if not progressed:
            problems += [f"input '{n}': its default {t!r} cannot be rendered (a cycle, or a missing input)"
                         for n, t in pending.items()]
            break
    return problems


def is_secret(spec: InputSpec) -> bool:
    """Inputs of type secret and anything that may be read from an environment variable are redacted."""
    return spec.type is InputType.SECRET or bool(spec.env)


def _coerce_quietly(name: str, spec: InputSpec, value: Any, source: str) -> Any:
    """``coerce``, with a secret's value kept out of the message: it would reach the terminal and CI logs."""
    if not is_secret(spec):
        return coerce(name, spec, value)
    if spec.type is InputType.SECRET and 0 < len(str(value)) < MIN_SECRET_LENGTH:
        raise InputError(f"input '{name}' (secret): {TOO_SHORT}")
    try:
        return coerce(name, spec, value)
    except InputError:
        allowed = f" (one of: {', '.join(map(str, spec.choices or []))})" if spec.type is InputType.CHOICE else ""
        why = "it is" if spec.type is InputType.SECRET else f"inputs that read ${spec.env} are"
        raise InputError(f"input '{name}' ({spec.type}): the value {source} is not a valid {spec.type}{allowed}; "
                         f"it is not shown because {why} treated as secret") from None


def secret_values(rb: Runbook, values: Mapping[str, Any]) -> set[str]:
    """Values to redact (each item of a list). Values too short to mask are left out: ``resolve`` refused
    them for inputs of type secret, and one that short read from the environment (a flag) is no secret."""
    out: set[str] = set()
    for name, spec in rb.inputs.items():
        value = values.get(name)
        if is_secret(spec) and value is not None:
            out.update(str(v) for v in (value if isinstance(value, list) else [value])
                       if len(str(v)) >= MIN_SECRET_LENGTH)
    return out
