"""Runbook files → Runbook models, with every problem of a file reported at once as file:line:col."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from breakglass.engine.errors import Problem, RunbookError
from breakglass.engine.yamlsource import Path, Source, SourceError, parse

if TYPE_CHECKING:  # the registry imports pydantic; `list` must not pay for it
    from breakglass.actions.registry import Registry



@dataclass(frozen=True)
class LoadedRunbook:
    """A valid runbook with where it came from and the hash of its exact text."""

    runbook: Any  # engine.model.Runbook (imported lazily: pydantic costs start-up)
    path: str
    text: str
    sha256: str


def read_text(path: str | os.PathLike[str]) -> str:
    file = str(path)
    try:
        raw = FsPath(path).read_bytes()
    except OSError as exc:
        raise RunbookError([Problem(file, 1, 1, f"cannot read runbook: {exc.strerror or exc}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RunbookError([Problem(file, line, col, "file is not valid UTF-8")]) from None


def load_text(text: str, file: str, registry: Registry | None = None,
              expected_id: str | None = None) -> LoadedRunbook:
    """Validate runbook text; raise RunbookError listing every problem."""
    from pydantic import ValidationError

    from breakglass.engine.checks import check_runbook
    from breakglass.engine.model import Runbook

    try:
        src = parse(text, file)
    except SourceError as exc:
        raise RunbookError(_one_line(exc.problems)) from None
    if not isinstance(src.data, dict):
        raise RunbookError([src.problem((), "a runbook is a mapping with id, title and steps at the top "
                                            "level")])
    if registry is None:
        from breakglass.actions.registry import Registry

        registry = Registry()
    try:
        rb = Runbook.model_validate(src.data)
    except ValidationError as exc:
        # Structural errors: still run the checks on every input and step that is valid on its own.
        problems = list(_pydantic_problems(exc, src)) + _partial_checks(src, registry)
    else:
        problems = check_runbook(rb, src, registry)
    runbook_id = src.data.get("id")
    if expected_id is not None and isinstance(runbook_id, str) and runbook_id != expected_id:
        problems.append(src.problem(("id",), f"runbook id '{runbook_id}' must equal the file name "
                                             f"'{expected_id}'"))
    if problems:
        raise RunbookError(_one_line(list(dict.fromkeys(problems))))
    return LoadedRunbook(rb, file, text, hashlib.sha256(text.encode()).hexdigest())


def _one_line(problems: list[Problem]) -> list[Problem]:
    """One problem per line: keys, ids and values quoted in messages may hold newlines of their own."""
    table = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {10: "\\n", 13: "\\r"}
    return [Problem(p.file, p.line, p.column, p.message.translate(table)) for p in problems]


def _partial_checks(src: Source, registry: Registry) -> list[Problem]:
    """check_parts over the inputs and steps that validate one by one; the rest were reported by pydantic."""
    from pydantic import ValidationError

    from breakglass.engine.checks import check_parts
    from breakglass.engine.model import InputSpec, Step

    def valid(model: Any, raw: Any) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError:
            return None

    raw_inputs = src.data.get("inputs", {})
    inputs = None
    if isinstance(raw_inputs, dict):
        inputs = {str(n): valid(InputSpec, v) for n, v in raw_inputs.items()}
    raw_steps = src.data.get("steps")
    raw_steps = raw_steps if isinstance(raw_steps, list) else []
    steps = [valid(Step, raw) for raw in raw_steps]
    ids = [raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
           for raw in raw_steps]
    return check_parts(inputs, steps, ids, src, registry)


def load_file(path: str | os.PathLike[str], registry: Registry | None = None) -> LoadedRunbook:
    text = read_text(path)
    stem = FsPath(path).name.rsplit(".", 1)[0]
    return load_text(text, str(path), registry, expected_id=stem)


# --- pydantic errors → located problems ------------------------------------------------------------


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Path, list[Any]]:
    """Follow pydantic's loc through the data, dropping the parts that name union members or validators."""
    path: list[str | int] = []
    rest: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        else:
            rest.append(part)
    return tuple(path), rest


def _pydantic_problems(exc: Any, src: Source) -> Iterator[Problem]:
    from breakglass.engine.model import Runbook

    grouped: dict[Path, list[dict[str, Any]]] = {}
    for err in exc.errors(include_url=False):
        path, _ = _data_path(tuple(err["loc"]), src.data)
        grouped.setdefault(path, []).append(err)
    deepest = [p for p in grouped if not any(q != p and q[: len(p)] == p for q in grouped)]
    for path in deepest:
        errors = grouped[path]
        if any(e["type"] == "extra_forbidden" for e in errors):
            key = str(path[-1])
            yield src.problem(path, f"unknown key '{key}'{_suggest(key, path, Runbook)}", key=True)
        elif any(e["type"] == "missing" for e in errors):
            for e in errors:
                if e["type"] == "missing":
                    yield src.problem(path, f"{_where(path)}missing required key '{e['loc'][-1]}'")
        else:
            messages = list(dict.fromkeys(_message(e) for e in errors))
            yield src.problem(path, f"{_where(path)}{' or '.join(messages)}")


def _where(path: Path) -> str:
    shown = ".".join(str(p) for p in path)
    return f"'{shown}': " if shown else ""


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    if err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return "must be snake_case (a-z, 0-9, _)" if "_" in pattern else "must be kebab-case (a-z, 0-9, -)"
    return msg[0].lower() + msg[1:] if msg else msg


def _suggest(key: str, path: Path, root: Any) -> str:
    from breakglass.engine.model import Gate, InputSpec, Retry, Rollback, Step

    parent = [p for p in path[:-1] if isinstance(p, str)]
    model = {"steps": Step, "inputs": InputSpec, "retries": Retry, "rollback": Rollback, "confirm": Gate}
    candidates = root
    for name in parent:
        candidates = model.get(name, candidates)
    if path[:1] == ("inputs",) and len(path) == 3:
        candidates = InputSpec
    names = [f.alias or n for n, f in candidates.model_fields.items()]
    near = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean '{near[0]}'?)" if near else f"; allowed here: {', '.join(names)}"
