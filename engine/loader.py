"""Runbook files → checked data → Runbook models, with every problem of a file reported at once as
file:line:col. Checking needs no pydantic (``validate`` starts fast); only building the model does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from breakglass.engine.errors import Problem, RunbookError
from breakglass.engine.yamlsource import Path, Source, SourceError, parse, read_document

if TYPE_CHECKING:
    from breakglass.actions.registry import Registry


@dataclass(frozen=True)
class LoadedRunbook:
    """A valid runbook with where it came from and the hash of its exact text."""

    runbook: Any  # engine.model.Runbook (imported lazily: pydantic costs start-up)
    path: str
    text: str
    sha256: str


def read_text(path: str | os.PathLike[str]) -> str:
    try:
        return read_document(path)
    except SourceError as exc:
        raise RunbookError(exc.problems) from None


def check_text(text: str, file: str, registry: Registry | None = None,
               expected_id: str | None = None) -> Source:
    """Parse and check runbook text without building the model; raise RunbookError listing every problem.

    This is all ``breakglass validate`` does, and it never imports pydantic: the structure is checked
    against the committed JSON Schema (engine.shape), the meaning by engine.checks.
    """
    from breakglass.engine.checks import check_parts
    from breakglass.engine.shape import mismatches

    try:
        src = parse(text, file)
    except SourceError as exc:
        raise RunbookError(_one_line(exc.problems)) from None
    data = src.data
    if not isinstance(data, dict):
        raise RunbookError([src.problem((), "a runbook is a mapping with id, title and steps at the top "
                                            "level")])
    if registry is None:
        from breakglass.actions.registry import Registry

        registry = Registry()
    found = mismatches(data)
    problems = [src.problem(m.path, m.message if m.key else f"{_where(m.path)}{m.message}", key=m.key)
                for m in found]
    # Parts with a structural problem are left out of the checks (None), the rest are all checked.
    broken = {m.path[:2] for m in found}
    raw_inputs = data.get("inputs", {})
    inputs = None
    if ("inputs",) not in broken and isinstance(raw_inputs, dict):
        inputs = {str(n): None if ("inputs", n) in broken else v for n, v in raw_inputs.items()}
    raw_steps = data.get("steps") if ("steps",) not in broken else None
    raw_steps = raw_steps if isinstance(raw_steps, list) else []
    steps = [None if ("steps", i) in broken else raw for i, raw in enumerate(raw_steps)]
    ids = [raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
           for raw in raw_steps]
    problems += check_parts(inputs, steps, ids, src, registry)
    runbook_id = data.get("id")
    if expected_id is not None and isinstance(runbook_id, str) and runbook_id != expected_id:
        problems.append(src.problem(("id",), f"runbook id '{runbook_id}' must equal the file name "
                                             f"'{expected_id}'"))
    if problems:
        raise RunbookError(_one_line(list(dict.fromkeys(problems))))
    return src


def load_text(text: str, file: str, registry: Registry | None = None,
              expected_id: str | None = None) -> LoadedRunbook:
    """Check runbook text and build the runbook a run executes; raise RunbookError listing every problem."""
    import hashlib  # OpenSSL's load is felt in `validate`, which never hashes

    src = check_text(text, file, registry, expected_id)
    return LoadedRunbook(_build(src), file, text, hashlib.sha256(text.encode()).hexdigest())


def _build(src: Source) -> Any:
    from pydantic import ValidationError

    from breakglass.engine.model import Runbook

    try:
        return Runbook.model_validate(src.data)
    except ValidationError as exc:
        # The schema let through what the model refuses: a bug (tests look for it), still reported in place.
        problems = []
        for err in exc.errors(include_url=False):
            path = _data_path(tuple(err["loc"]), src.data)
            problems.append(src.problem(path, f"{_where(path)}{err['msg'][:1].lower()}{err['msg'][1:]} (the "
                                              "runbook model refused what its schema accepts; please report this)"))
        raise RunbookError(_one_line(problems)) from None


def _one_line(problems: list[Problem]) -> list[Problem]:
    """One problem per line: keys, ids and values quoted in messages may hold newlines of their own."""
    table = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {10: "\\n", 13: "\\r"}
    return [Problem(p.file, p.line, p.column, p.message.translate(table)) for p in problems]


def load_file(path: str | os.PathLike[str], registry: Registry | None = None) -> LoadedRunbook:
    return load_text(read_text(path), str(path), registry, expected_id=_stem(path))


def check_file(path: str | os.PathLike[str], registry: Registry | None = None) -> Source:
    return check_text(read_text(path), str(path), registry, expected_id=_stem(path))


def _stem(path: str | os.PathLike[str]) -> str:
    return FsPath(path).name.rsplit(".", 1)[0]  # the id a runbook file must carry


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Follow pydantic's loc through the data, dropping the parts that name union members or validators."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            path.append(part)
            node = node[part]
    return tuple(path)


def _where(path: Path) -> str:
    shown = ".".join(str(p) for p in path)
    return f"'{shown}': " if shown else ""
