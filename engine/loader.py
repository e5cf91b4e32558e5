"""Runbook files → Runbook models, with every problem of a file reported at once as file:line:col.

One path: YAML with positions (engine.yamlsource) → the model (engine.model, the one runbook contract) →
the checks that need more than one field (engine.checks). The model's errors are translated here into
advice located in the file; the parts the model refused are left out of the checks, the rest all checked.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from engine import comms
from engine.errors import Problem, RunbookError
from engine.model import CADENCE, RUNBOOK_ID, STEP_ID, Runbook, Step
from engine.yamlsource import Path, Source, SourceError, parse, read_document

if TYPE_CHECKING:
    from actions.registry import Registry
    from engine.translation import Translation


@dataclass(frozen=True)
class LoadedRunbook:
    """A valid runbook with where it came from, the hash of its exact text and where each part sits in it."""

    runbook: Runbook
    path: str
    text: str
    sha256: str
    source: Source | None = None  # positions; None for a runbook built without a file (tests)
    lang: str = "en"  # the language of the runbook's text: English, or a sidecar's (engine.translation)
    translation: Translation | None = None  # the sidecar the text came from, when not English
    # The runbooks its `runbook.run` steps call, by call step id (engine.calls), each loaded and checked.
    children: dict[str, LoadedRunbook] = field(default_factory=dict)

    @functools.cached_property
    def step_ids(self) -> dict[str, None]:
        """Its steps' ids, in order (a dict: ordered, and O(1) to ask)."""
        from engine.model import action_steps

        return dict.fromkeys(s.id for s in action_steps(self.runbook.steps))

    def where(self, under: Path, text: str | None = None) -> str:
        """``file:line:col`` of the runbook text ``text`` written under ``under`` (``("steps", 3)``), else of
        ``under`` itself: a template that fails at run time is named where it is written."""
        if self.source is None:
            return self.path
        translated = self._translated_where(under, text)
        if translated is not None:
            return translated
        path = _find(self.source.data, under, text) if text is not None else None
        line, col = self.source.where(path if path is not None else under)
        return f"{self.path}:{line}:{col}"

    def _translated_where(self, under: Path, text: str | None) -> str | None:
        """Where a step's translated text is written in the sidecar (which keys steps by id), if it is one."""
        if self.translation is None or text is None or len(under) < 2 or under[0] != "steps":
            return None
        index = under[1]
        if not isinstance(index, int) or not 0 <= index < len(self.runbook.steps):
            return None
        src = self.translation.source
        unit: Any = self.runbook.steps[index]
        if len(under) >= 4 and under[2] == "parallel" and isinstance(under[3], int):  # a group's step
            unit = unit.parallel[under[3]]
        path = _find(src.data, ("steps", unit.id), text)
        if path is None:
            return None
        line, col = src.where(path)
        return f"{self.translation.path}:{line}:{col}"


def _find(data: Any, under: Path, text: str) -> Path | None:
    """The path of the first string equal to ``text`` at or below ``under`` in the parsed runbook."""
    node = data
    for part in under:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    stack: list[tuple[Path, Any]] = [(under, node)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and node == text:
            return path
        if isinstance(node, dict):
            stack += reversed([((*path, k), v) for k, v in node.items()])
        elif isinstance(node, list):
            stack += reversed([((*path, i), v) for i, v in enumerate(node)])
    return None


def read_text(path: str | os.PathLike[str]) -> str:
    try:
        return read_document(path)
    except SourceError as exc:
        raise RunbookError(exc.problems) from None


def check_text(text: str, file: str, registry: Registry | None = None,
               expected_id: str | None = None) -> Source:
    """Parse and check runbook text; raise RunbookError listing every problem. What ``validate`` does."""
    with _collector_paused():
        return _checked(text, file, registry, expected_id, ())[0]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of small, acyclic objects (YAML nodes, marks, dicts), and each
    batch of them sets off the cyclic garbage collector over all the others: measured, 5,000 steps parsed in
    1.5 s with it and 0.9 s without. Nothing here makes cycles, so there is nothing for it to find."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_text(text: str, file: str, registry: Registry | None = None,
              expected_id: str | None = None, calling: tuple[str, ...] = ()) -> LoadedRunbook:
    """Check runbook text and build the runbook a run executes; raise RunbookError listing every problem.
    ``calling``: the runbooks whose calls led here (engine.calls refuses a cycle)."""
    import hashlib  # OpenSSL's load is felt in `validate`, which never hashes

    with _collector_paused():
        src, runbook, children = _checked(text, file, registry, expected_id, calling)
    return LoadedRunbook(runbook, file, text, hashlib.sha256(text.encode()).hexdigest(), src, children=children)


def _checked(text: str, file: str, registry: Registry | None, expected_id: str | None,
             calling: tuple[str, ...]) -> tuple[Source, Runbook, dict[str, LoadedRunbook]]:
    from engine import calls
    from engine.checks import check_parts

    try:
        src = parse(text, file)
    except SourceError as exc:
        raise RunbookError(_one_line(exc.problems)) from None
    data = src.data
    if not isinstance(data, dict):
        raise RunbookError([src.problem((), "a runbook is a mapping with id, title and steps at the top "
                                            "level")])
    if registry is None:
        from actions.registry import Registry

        registry = Registry()
    data = _with_comms(src)
    runbook: Runbook | None = None
    try:
        runbook = Runbook.model_validate(data)
        found: list[tuple[Path, str, bool]] = []
    except ValidationError as exc:
        found = structure_problems(exc, data)
    problems = [src.problem(path, message if key else f"{_where(path)}{message}", key=key)
                for path, message, key in found]
    # Parts with a structural problem are left out of the checks (None), the rest are all checked.
    broken = {path[:2] for path, _, _ in found}
    raw_inputs = data.get("inputs", {})
    inputs = None
    if ("inputs",) not in broken and isinstance(raw_inputs, dict):
        inputs = {str(n): None if ("inputs", n) in broken else v for n, v in raw_inputs.items()}
    raw_steps = data.get("steps") if ("steps",) not in broken else None
    raw_steps = raw_steps if isinstance(raw_steps, list) else []
    steps = [None if ("steps", i) in broken else raw for i, raw in enumerate(raw_steps)]
    ids = [raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
           for raw in raw_steps]
    raw_defaults = data.get("defaults", {})
    defaults = None
    if ("defaults",) not in broken and isinstance(raw_defaults, dict):
        defaults = {str(n): None if ("defaults", n) in broken else v for n, v in raw_defaults.items()}
    raw_outputs = data.get("outputs") if ("outputs",) not in broken else None
    problems += [src.problem(path, message) for path, message in comms.problems(src.data)]
    comms_sound = isinstance(data.get("comms"), dict) and not any(p[:1] == ("comms",) for p in broken)
    raw_comms = data["comms"] if comms_sound else {}
    problems += check_parts(inputs, steps, ids, src, registry, defaults,
                            raw_outputs if isinstance(raw_outputs, dict) else None,
                            raw_comms.get("templates") if isinstance(raw_comms.get("templates"), dict) else None)
    runbook_id = data.get("id")
    children: dict[str, LoadedRunbook] = {}
    if any(isinstance(step, dict) and step.get("action") == calls.CALL for step in steps):
        found_calls, children = calls.load_children(steps, src, registry, (*calling, str(runbook_id)))
        problems += found_calls
    if ("outputs",) not in broken:
        problems += calls.check_outputs(data.get("outputs"), src)
    if expected_id is not None and isinstance(runbook_id, str) and runbook_id != expected_id:
        problems.append(src.problem(("id",), f"runbook id '{runbook_id}' must equal the file name "
                                             f"'{expected_id}'"))
    if problems or runbook is None:
        raise RunbookError(_one_line(list(dict.fromkeys(problems))))
    return src, runbook, children


def _with_comms(src: Source) -> Any:
    """The data with each `comms.post` step's templates filled from `comms:` (engine.comms), and their
    positions pointed at where the templates are written, so a bad one is named there."""
    data = comms.with_comms(src.data)
    if data is src.data:
        return data
    for i, raw in enumerate(data["steps"]):
        if isinstance(raw, dict) and raw.get("action") == comms.ACTION:
            kind = (raw.get("with") or {}).get("kind")
            if not isinstance(kind, str):
                continue
            for lang in comms.LANGS:
                at: Path = ("comms", "templates", kind, lang)
                if at in src.marks:
                    src.marks[("steps", i, "with", "templates", lang)] = src.marks[at]
    return data


# --- the model's errors as advice ------------------------------------------------------------------------

# Keyed by pydantic's error types (its stable interface), never by its message text.
KINDS = {"string_type": "a valid string", "int_type": "a valid integer", "float_type": "a valid number",
         "bool_type": "a valid boolean", "list_type": "a valid list", "dict_type": "a valid mapping",
         "model_type": "a valid mapping", "model_attributes_type": "a valid mapping"}
PATTERNS = {RUNBOOK_ID: "must be kebab-case (a-z, 0-9, -)", STEP_ID: "must be snake_case (a-z, 0-9, _)",
            CADENCE: 'must be minutes or hours: "30m", "1h"'}
BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "greater than or equal to"),
          "less_than": ("lt", "less than"), "less_than_equal": ("le", "less than or equal to")}


def structure_problems(exc: ValidationError, data: Any) -> list[tuple[Path, str, bool]]:
    """(data path, message, at the key) for each error the model found, in document order.

    Type errors at one place (each member of a union refusing the value) become one message naming every
    kind that would do."""
    kinds: dict[Path, list[str]] = {}
    found: list[tuple[Path, str, bool]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, annotation, parent = _follow(loc, data)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind in KINDS:
            if path not in kinds:
                kinds[path] = []
                found.append((path, "", False))  # its message is filled in below, once all kinds are known
            kinds[path].append(KINDS[kind])
        elif kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _keys(parent)
            # A step is a group when it says `parallel`: a misspelt `parallel` is a near miss of a step's key.
            near = difflib.get_close_matches(key, allowed + (["parallel"] if parent is Step else []), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed here: {', '.join(allowed)}"
            found.append((path, f"unknown key '{key}'{hint}", True))  # the key is in the data: path ends at it
        else:
            found.append((path, _message(kind, ctx, annotation, str(loc[-1]) if loc else "",
                                         str(err["msg"])), False))
    return [(p, m or f"input should be {' or '.join(dict.fromkeys(kinds[p]))}", k) for p, m, k in found]


def _message(kind: str, ctx: dict[str, Any], annotation: Any, name: str, fallback: str) -> str:
    if kind == "missing":
        return f"missing required key '{name}'"
    if kind in ("literal_error", "enum"):
        choices = _choices(annotation)
        return f"input should be {choices}" if choices else f"input should be {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return PATTERNS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
    if kind in BOUNDS:
        key, words = BOUNDS[kind]
        return f"input should be {words} {_number(ctx.get(key))}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"list should have at least {n} item{'' if n == 1 else 's'}"
    if kind in ("confirm_type", "rollback_type"):
        return fallback  # the model's own message
    return f"{fallback[:1].lower()}{fallback[1:]}"


def _follow(loc: tuple[Any, ...], data: Any) -> tuple[Path, Any, Any]:
    """Walk pydantic's loc through the model and the data together: (the path in the data, the annotation
    there, the model holding it). Union members (``str``, a tag) are steps in the model, not in the data."""
    annotation: Any = Runbook
    parent: Any = Runbook
    node = data
    path: list[str | int] = []
    for part in loc:
        annotation = _plain(annotation)
        members = _members(annotation)
        if members:
            annotation = members.get(str(part), Any)
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            parent = annotation
            field = next((f for n, f in annotation.model_fields.items() if (f.alias or n) == part), None)
            annotation = field.annotation if field is not None else Any
        elif typing.get_origin(annotation) in (list, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            annotation = Any
        if isinstance(node, dict) and part in node or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            path.append(part)
            node = node[part]
        else:
            node = None
    return tuple(path), _plain(annotation), parent


def _plain(annotation: Any) -> Any:
    """The annotation without Annotated metadata and without its ``None`` member."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _plain(rest[0])
    return annotation


def _members(annotation: Any) -> dict[str, Any]:
    """A union's members by the name pydantic gives them in a loc (their tag, else their type's name)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return {}
    named: dict[str, Any] = {}
    for member in typing.get_args(annotation):
        tag = next((str(m.tag) for m in getattr(member, "__metadata__", ()) if hasattr(m, "tag")), None)
        inner = _plain(member)
        named[tag or str(getattr(inner, "__name__", inner))] = inner
    return named


def _keys(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _choices(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        values: list[Any] = list(typing.get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        values = [m.value for m in annotation]
    else:
        return ""
    shown = [f"'{v}'" for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _number(limit: Any) -> str:
    return str(int(limit)) if isinstance(limit, float) and limit.is_integer() else str(limit)


def _one_line(problems: list[Problem]) -> list[Problem]:
    """One problem per line: keys, ids and values quoted in messages may hold newlines of their own."""
    table = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {10: "\\n", 13: "\\r"}
    return [Problem(p.file, p.line, p.column, p.message.translate(table)) for p in problems]


def load_file(path: str | os.PathLike[str], registry: Registry | None = None, lang: str = "en") -> LoadedRunbook:
    """A runbook file, its text in ``lang`` where its sidecar gives it (engine.translation)."""
    loaded = load_text(read_text(path), str(path), registry, expected_id=_stem(path))
    if lang == loaded.lang:
        return loaded
    from engine.translation import loaded_with

    return loaded_with(loaded, lang, registry)


def checked_file(path: str | os.PathLike[str], registry: Registry | None = None) -> tuple[Source, Runbook]:
    """What ``validate`` needs of a file: its positions and the runbook (to check its sidecars against)."""
    with _collector_paused():
        src, runbook, _ = _checked(read_text(path), str(path), registry, _stem(path), ())
    return src, runbook


def check_file(path: str | os.PathLike[str], registry: Registry | None = None) -> Source:
    return check_text(read_text(path), str(path), registry, expected_id=_stem(path))


def _stem(path: str | os.PathLike[str]) -> str:
    return FsPath(path).name.rsplit(".", 1)[0]  # the id a runbook file must carry


def _where(path: Path) -> str:
    shown = ".".join(str(p) for p in path)
    return f"'{shown}': " if shown else ""
