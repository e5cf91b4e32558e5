"""YAML → plain data that remembers where every key and value came from.

The loader needs ``file:line:col`` for every problem, including those pydantic finds, so documents are
composed into nodes (a safe loader: no tags that construct objects) and converted by hand, keeping each
node's mark under its path. The conversion also refuses what a safe loader still allows: duplicate keys,
alias bombs (billion laughs) and documents too deep or too large to be a runbook.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.errors import Problem

try:  # libyaml is several times faster; fall back silently where it is not built
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the platform's PyYAML build
    from yaml import SafeLoader as _Loader

MAX_BYTES = 512 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 50
TOO_DEEP = f"document is nested deeper than {MAX_DEPTH} levels"

Path = tuple[str | int, ...]


@dataclass
class Source:
    """A parsed document: its data, and the (line, column) of every path in it (1-based)."""

    file: str
    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path, key: bool = False) -> tuple[int, int]:
        """The closest known position for ``path``: the key itself when asked, else the value."""
        probe = tuple(path)
        while probe:
            if key and probe in self.key_marks:
                return self.key_marks[probe]
            if probe in self.marks:
                return self.marks[probe]
            if probe in self.key_marks:
                return self.key_marks[probe]
            probe = probe[:-1]
        return self.marks.get((), (1, 1))

    def problem(self, path: Path, message: str, key: bool = False) -> Problem:
        line, col = self.where(path, key)
        return Problem(self.file, line, col, message)


class SourceError(Exception):
    """Internal: carries the problems of a document that could not be turned into data."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, file: str) -> None:
        self.source = Source(file, None)
        self.count = 0
        self.problems: list[Problem] = []
        # One constructor for the whole document: building one per scalar made an alias bomb cost seconds.
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            line, col = _pos(node)
            raise SourceError([Problem(self.source.file, line, col,
                                       f"document expands to more than {MAX_NODES} values "
                                       "(an alias bomb?); runbooks are far smaller")])
        if depth > MAX_DEPTH:
            line, col = _pos(node)
            raise SourceError([Problem(self.source.file, line, col,
                                       f"document is nested deeper than {MAX_DEPTH} levels")])
        self.source.marks.setdefault(path, _pos(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _pos(key_node)
                self.problems.append(Problem(self.source.file, line, col,
                                             "mapping keys must be plain strings"))
                continue
            if key_node.tag == "tag:yaml.org,2002:merge" or key_node.value == "<<":
                line, col = _pos(key_node)
                self.problems.append(Problem(self.source.file, line, col,
                                             "YAML merge keys ('<<') are not supported in runbooks"))
                continue
            key = str(self._scalar(key_node))
            if key in out:
                line, col = _pos(key_node)
                self.problems.append(Problem(self.source.file, line, col, f"duplicate key '{key}'"))
                continue
            self.source.key_marks[(*path, key)] = _pos(key_node)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        return out

    def _scalar(self, node: yaml.Node) -> Any:
        # Constructing scalars through the safe constructor keeps YAML 1.1 typing (ints, bools, null).
        try:
            return self.constructor.construct_object(node, deep=False)
        except yaml.MarkedYAMLError as exc:
            line, col = _pos(node)
            what = " ".join(x for x in (exc.context, exc.problem) if x)
            self.problems.append(Problem(self.source.file, line, col, f"bad value: {what}"))
            return None
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            line, col = _pos(node)
            self.problems.append(Problem(self.source.file, line, col, f"bad value: {exc}"))
            return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _oversized(root: yaml.Node) -> yaml.Node | None:
    """The first node whose expansion exceeds MAX_NODES, or that contains itself; counted without expanding.

    Aliases share nodes, so a billion-laughs document is small as a graph and huge as data: counting
    each distinct node once (memoised, iteratively) finds it in microseconds instead of building it.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_NODES:
                return node
            continue
        if key in sizes:
            continue
        if key in open_:
            return node  # a recursive alias: infinite when expanded
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return None


def _events(text: str, file: str) -> Iterator[tuple[int, yaml.Event]]:
    """The document's parse events, each with the nesting depth before it; deep nesting is refused as it comes.

    libyaml's composer recurses in C: ~30,000 nested '[' (a 60 KB file) crash the interpreter with a
    segmentation fault, and its scanner is quadratic in the nesting depth long before that. Events come
    one at a time, so this stops at the first collection nested too deep, having read only that far.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        yield depth, event
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line, col = event.start_mark.line + 1, event.start_mark.column + 1
                raise SourceError([Problem(file, line, col, TOO_DEEP)])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_depth(text: str, file: str) -> None:
    """Refuse deep nesting before composing (see ``_events``)."""
    for _ in _events(text, file):
        pass


def _a(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def read_document(path: str | os.PathLike[str], kind: str = "runbook") -> str:
    """A YAML file's text, read at most MAX_BYTES + 1 bytes in: a device, FIFO or directory (a symlink to
    /dev/zero is read forever) and a file over the cap are refused before they cost time or memory."""
    file = str(path)
    try:
        # O_NONBLOCK: opening a FIFO nobody writes to would otherwise wait forever, before fstat can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise SourceError([Problem(file, 1, 1, f"cannot read {kind}: {exc.strerror or exc}")]) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError([Problem(file, 1, 1, "not a regular file (a device, FIFO or directory); "
                                                   "give a regular file")])
        try:
            raw = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise SourceError([Problem(file, 1, 1, f"cannot read {kind}: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_BYTES:
        message = f"file is over {MAX_BYTES} bytes; {_a(kind)} may be at most that"
        raise SourceError([Problem(file, 1, 1, message)])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SourceError([Problem(file, line, col, "file is not valid UTF-8")]) from None


def parse(text: str, file: str, kind: str = "runbook") -> Source:
    """Parse one YAML document into a Source; raise SourceError with located problems."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        message = f"file is {size} bytes; {_a(kind)} may be at most {MAX_BYTES}"
        raise SourceError([Problem(file, 1, 1, message)])
    try:
        _check_depth(text, file)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            # An unclosed quote or bracket is found at the end of the file; point at where it opened.
            mark = exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise SourceError([Problem(file, line, col, f"invalid YAML: {what}")]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "a byte"
        message = f"invalid YAML: unacceptable {what}: {exc.reason}"
        raise SourceError([Problem(file, line, col, message)]) from None
    except yaml.YAMLError as exc:
        raise SourceError([Problem(file, 1, 1, f"invalid YAML: {' '.join(str(exc).split())}")]) from None
    except RecursionError:
        raise SourceError([Problem(file, 1, 1, TOO_DEEP)]) from None
    if node is None:
        needs = "id, title and steps" if kind == "runbook" else "some content"
        raise SourceError([Problem(file, 1, 1, f"the file is empty; {_a(kind)} needs {needs}")])
    bomb = _oversized(node)
    if bomb is not None:
        line, col = _pos(bomb)
        raise SourceError([Problem(file, line, col, f"document expands to more than {MAX_NODES} values "
                                   f"(an alias bomb, or a recursive alias?); {_a(kind)} is far smaller")])
    builder = _Builder(file)
    builder.source.data = builder.build(node, (), 0)
    if builder.problems:
        raise SourceError(builder.problems)
    return builder.source


def load_header(text: str, file: str, keys: frozenset[str]) -> dict[str, Any] | None:
    """Only the top-level ``keys`` of a document, for listings (`breakglass list`, scenario headings).

    One pass over the parser's events (in C where libyaml is built): it refuses nesting deeper than
    MAX_DEPTH as it goes, and only the values of ``keys`` become nodes and then Python data; the rest of
    the document (the steps) is counted past, never built. A value that refers to an anchor outside
    itself is read the long way, from the whole document's nodes. None when the document is not a mapping.
    """
    if len(text) > MAX_BYTES:
        raise SourceError([Problem(file, 1, 1, "file too large")])
    try:
        header = _header_from_events(text, file, keys)
        return _header_from_nodes(text, keys) if header is _ALIASED else header
    except (yaml.YAMLError, RecursionError, ValueError):
        raise SourceError([Problem(file, 1, 1, "invalid YAML")]) from None


_ALIASED: Any = object()  # a wanted value holds an alias: anchors elsewhere in the document are needed


def _header_from_events(text: str, file: str, keys: frozenset[str]) -> Any:
    wanted: dict[str, list[Any]] = {}
    documents, root_mapping, expect_key = 0, False, True
    key: str | None = None
    value: list[Any] | None = None  # the events of the wanted value being read
    for before, event in _events(text, file):
        opens = isinstance(event, yaml.CollectionStartEvent)
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise yaml.YAMLError("expected a single document")
        if before == 0:
            root_mapping = root_mapping or isinstance(event, yaml.MappingStartEvent)
            continue
        if not root_mapping:
            continue  # read on only to refuse what is nested too deep
        if before == 1 and (opens or isinstance(event, yaml.ScalarEvent | yaml.AliasEvent)):
            if expect_key:  # a key: a scalar names a value; a collection or an alias as key names none
                key = event.value if isinstance(event, yaml.ScalarEvent) else None
            elif key is not None and key in keys:  # a key given twice: the last one, as a mapping keeps
                value = wanted[key] = []
            expect_key = not expect_key
        if value is not None:
            value.append(event)
            # Complete at depth 1 again: a scalar value, or the end of a collection's.
            if before == 1 and not opens or before == 2 and isinstance(event, yaml.CollectionEndEvent):
                value = None
    if not root_mapping:
        return None
    header: dict[str, Any] = {}
    for name, events in wanted.items():
        if any(isinstance(e, yaml.AliasEvent) for e in events):
            return _ALIASED
        header[name] = _Replay(events).value()
    return header


class _Replay(yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc]
    """PyYAML's own composer and safe constructor over one value's events, as they came from the parser."""

    def __init__(self, events: list[Any]) -> None:
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.events = events[::-1]

    def check_event(self, *choices: Any) -> bool:
        return bool(self.events) and (not choices or isinstance(self.events[-1], choices))

    def peek_event(self) -> Any:
        return self.events[-1]

    def get_event(self) -> Any:
        return self.events.pop()

    def value(self) -> Any:
        return self.construct_object(self.compose_node(None, None), deep=True)


def _header_from_nodes(text: str, keys: frozenset[str]) -> dict[str, Any] | None:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if not isinstance(root, yaml.MappingNode):
            return None
        return {str(k.value): loader.construct_object(v, deep=True) for k, v in root.value
                if isinstance(k, yaml.ScalarNode) and k.value in keys}
    finally:
        loader.dispose()
