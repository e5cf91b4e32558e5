"""A runbook's structure checked against the published JSON Schema, every mismatch with its place.

``breakglass validate`` must start fast, and pydantic's import alone is about half a cold start, so the
structure of a file is checked here against engine/runbook.schema.json: the schema ``breakglass schema``
generates from engine.model and editors already use. The walker knows the keywords that schema uses and
refuses any other, so a model change that needs more fails a test instead of passing silently. Tests hold
the committed file equal to the model and this check in agreement with the model on generated documents;
a run still builds the pydantic model from the checked data.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from breakglass.engine.yamlsource import Path

SCHEMA_FILE = FsPath(__file__).resolve().with_name("runbook.schema.json")

# Annotations and the keywords handled below; anything else in the schema is a format this walker
# does not understand yet.
KNOWN = frozenset({"$schema", "$id", "$defs", "$ref", "title", "description", "default", "type", "enum",
                   "anyOf", "properties", "required", "additionalProperties", "items", "minItems", "pattern",
                   "minimum", "maximum", "exclusiveMinimum"})

WORDS = {"string": "a valid string", "integer": "a valid integer", "number": "a valid number",
         "boolean": "a valid boolean", "array": "a valid list", "object": "a valid mapping", "null": "empty"}


@dataclass(frozen=True)
class Mismatch:
    path: Path
    message: str
    key: bool = False  # point at the key (an unknown key) rather than at its value


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def mismatches(data: Any) -> list[Mismatch]:
    """Every place where ``data`` (a parsed runbook) differs from the schema, in document order."""
    root = schema()
    return list(_check(data, root, (), root))


def unknown_keywords(node: Any = None) -> set[str]:
    """Schema keywords this walker would ignore: must stay empty (a test says so)."""
    node = schema() if node is None else node
    found: set[str] = set()
    if isinstance(node, dict):
        found |= set(node) - KNOWN
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found |= unknown_keywords(sub)
            elif key not in ("default", "enum", "description", "title", "required"):
                found |= unknown_keywords(value)
    elif isinstance(node, list):
        for sub in node:
            found |= unknown_keywords(sub)
    return found


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref}")
        node = root["$defs"][ref.removeprefix("#/$defs/")]
    return node


def _is(value: Any, kind: str) -> bool:
    # bool is an int in Python, never in a runbook: `attempts: true` is a mistake.
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool, "array": list, "object": dict,
                              "null": type(None)}[kind])


def _choices(values: list[Any]) -> str:
    shown = [f"'{v}'" for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _number(limit: Any) -> str:
    return str(int(limit)) if isinstance(limit, float) and limit.is_integer() else str(limit)


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262: '$' is the end of the text. In Python it also matches before a
    # final newline, which would let the id "abc\n" through.
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))


def _pattern_message(pattern: str) -> str:
    if pattern.startswith("^[a-z0-9]+(-"):
        return "must be kebab-case (a-z, 0-9, -)"
    if pattern.startswith("^[a-z][a-z0-9_]"):
        return "must be snake_case (a-z, 0-9, _)"
    return f"must match {pattern}"


def _check(value: Any, node: dict[str, Any], path: Path, root: dict[str, Any]) -> Iterator[Mismatch]:
    node = _resolve(node, root)
    if "anyOf" in node:
        yield from _any_of(value, node["anyOf"], path, root)
        return
    if "enum" in node:
        if not any(type(value) is type(v) and value == v for v in node["enum"]):
            yield Mismatch(path, f"input should be {_choices(node['enum'])}")
        return
    kind = node.get("type")
    if kind is None:  # Any: free-form data such as an input's default
        return
    if not _is(value, kind):
        yield Mismatch(path, f"input should be {WORDS[kind]}")
        return
    if kind == "object":
        yield from _object(value, node, path, root)
    elif kind == "array":
        if len(value) < node.get("minItems", 0):
            n = node["minItems"]
            yield Mismatch(path, f"list should have at least {n} item{'' if n == 1 else 's'}")
        if "items" in node:
            for i, item in enumerate(value):
                yield from _check(item, node["items"], (*path, i), root)
    elif kind == "string":
        if "pattern" in node and not _pattern(node["pattern"]).search(value):
            yield Mismatch(path, _pattern_message(node["pattern"]))
    elif kind in ("integer", "number"):
        yield from _bounds(value, node, path)


def _bounds(value: float, node: dict[str, Any], path: Path) -> Iterator[Mismatch]:
    if "exclusiveMinimum" in node and not value > node["exclusiveMinimum"]:
        yield Mismatch(path, f"input should be greater than {_number(node['exclusiveMinimum'])}")
    if "minimum" in node and not value >= node["minimum"]:
        yield Mismatch(path, f"input should be greater than or equal to {_number(node['minimum'])}")
    if "maximum" in node and not value <= node["maximum"]:
        yield Mismatch(path, f"input should be less than or equal to {_number(node['maximum'])}")


def _object(value: dict[str, Any], node: dict[str, Any], path: Path, root: dict[str, Any]) -> Iterator[Mismatch]:
    properties: dict[str, Any] = node.get("properties", {})
    for name in node.get("required", []):
        if name not in value:
            yield Mismatch(path, f"missing required key '{name}'")
    extra = node.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            yield from _check(item, properties[key], (*path, key), root)
        elif extra is False:
            near = difflib.get_close_matches(key, list(properties), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed here: {', '.join(properties)}"
            yield Mismatch((*path, key), f"unknown key '{key}'{hint}", key=True)
        elif isinstance(extra, dict):
            yield from _check(item, extra, (*path, key), root)


def _any_of(value: Any, options: list[dict[str, Any]], path: Path, root: dict[str, Any]) -> Iterator[Mismatch]:
    results = [list(_check(value, option, path, root)) for option in options]
    if any(not r for r in results):
        return
    # One option takes this kind of value: its own mismatches are the precise ones (the misspelt key inside
    # `confirm: {...}`, a timeout that is not above 0), not "should be a boolean or a string or ...".
    fitting = [r for option, r in zip(options, results, strict=True) if _takes_kind(value, option, root)]
    if len(fitting) == 1:
        yield from fitting[0]
        return
    wanted = []
    for option in options:
        resolved = _resolve(option, root)
        if resolved.get("type") == "null":
            continue
        wanted.append(_choices(resolved["enum"]) if "enum" in resolved else WORDS[resolved.get("type", "null")])
    yield Mismatch(path, f"input should be {' or '.join(dict.fromkeys(wanted))}")


def _takes_kind(value: Any, option: dict[str, Any], root: dict[str, Any]) -> bool:
    resolved = _resolve(option, root)
    if "enum" in resolved:
        return any(type(value) is type(v) for v in resolved["enum"])
    return "type" in resolved and _is(value, resolved["type"])
