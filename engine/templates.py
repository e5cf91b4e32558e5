"""The one sandboxed Jinja2 environment, template rendering, and static checks of template text.

Runbook strings are templates; everything the world returns (DNS answers, HTTP bodies, command output) is
inserted as data and never rendered itself, so a TXT record holding ``{{ ... }}`` stays text. The sandbox is
Jinja2's ImmutableSandboxedEnvironment (Jinja2 ≥ 3.1.6: earlier 3.1 releases have sandbox escapes,
CVE-2024-56326 and CVE-2025-27516) with StrictUndefined, and the context holds plain data only.
Templates that reach for private attributes (``''.__class__.__mro__``) are refused when the runbook is
validated, before anything runs; the sandbox refuses them again at render time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import TemplateError

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.S)
_FALSE_WORDS = frozenset({"", "false", "no", "off", "0", "none", "null"})


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The sandboxed environment, built once (importing Jinja2 costs ~60 ms, so only when needed)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Environment(ImmutableSandboxedEnvironment):
        def getattr(self, obj: Any, attribute: str) -> Any:
            # Data before methods: `steps.scan.items` is a loop's items and an HTTP answer's field `keys`
            # is that field, not the dict method of the same name that Jinja would find first.
            if isinstance(obj, Mapping) and isinstance(attribute, str) and attribute in obj:
                return self.getitem(obj, attribute)
            return super().getattr(obj, attribute)

    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["to_json"] = _to_json
    # Helpers that hand out live objects with reachable globals are the usual first hop of an escape.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


def _to_json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Any:
    return environment().from_string(text)


@functools.lru_cache(maxsize=4096)
def _compile_expression(expr: str) -> Any:
    return environment().compile_expression(expr, undefined_to_none=False)


def _explain(exc: Exception) -> str:
    from jinja2.exceptions import SecurityError, UndefinedError

    if isinstance(exc, SecurityError):
        return f"refused by the template sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return f"undefined value: {exc}"
    return f"{type(exc).__name__}: {exc}"


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """Render one string. A string that is exactly one ``{{ expression }}`` keeps the value's type."""
    if not is_template(text):
        return text
    try:
        single = _SINGLE_EXPRESSION.match(text)
        if single:
            return _as_data(_compile_expression(single.group("expr"))(**context), text)
        return _compile(text).render(**context)
    except TemplateError:
        raise
    except Exception as exc:  # Jinja2 raises many types; all mean "this template cannot render"
        raise TemplateError(f"template {text!r}: {_explain(exc)}", text) from None


_DATA = (str, int, float, bool, type(None))


def _as_data(value: Any, text: str) -> Any:
    """A single expression's value, only if it is plain data.

    compile_expression hands back whatever the expression yields: a StrictUndefined (which raises only when
    printed, so ``{{ inputs.typo }}`` would slip through as an object) or a live callable such as
    ``inputs.items``. Neither may reach an action's arguments.
    """
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError, naming what is missing
        raise TemplateError(f"template {text!r}: undefined value", text)
    if isinstance(value, _DATA):
        return value
    if isinstance(value, (list, tuple, range)):
        return [_as_data(v, text) for v in value]
    if isinstance(value, dict):
        return {k: _as_data(v, text) for k, v in value.items()}
    raise TemplateError(f"template {text!r}: yields a {type(value).__name__}, not data "
                        "(strings, numbers, booleans, lists and mappings)", text)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists walked); other values pass through."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)


def evaluate(condition: str | bool | None, context: Mapping[str, Any]) -> bool:
    """Evaluate a when/expect/until condition: a template (``{{ x }}``) or a bare expression."""
    if condition is None or isinstance(condition, bool):
        return condition is not False
    if is_template(condition):
        return truthy(render_string(condition, context))
    try:
        return truthy(_compile_expression(condition)(**context))
    except Exception as exc:
        raise TemplateError(f"condition {condition!r}: {_explain(exc)}", condition) from None


# --- static checks, used by the loader ---------------------------------------------------------------


def parse(text: str, expression: bool) -> Any:
    """Parse template text (or a bare expression) into a Jinja2 AST; raise TemplateError on bad syntax."""
    from jinja2.exceptions import TemplateSyntaxError

    env = environment()
    source = f"{{{{ {text} }}}}" if expression else text
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from None


@dataclass(frozen=True)
class Facts:
    """What validation needs to know about one template, independent of where it sits in the runbook."""

    unsafe: str | None  # the private attribute it reaches for, if any
    altered_secret: tuple[str, str] | None  # (secret input or "inputs", how) when it may transform a secret
    local: frozenset[str]  # names it assigns itself
    references: tuple[tuple[str, str | None], ...]  # (root, first attribute) it reads
    chains: tuple[tuple[str, ...], ...] = ()  # every constant path it reads: ("steps", "probe", "output", "x")


class _Flat:
    """The AST's nodes listed once in document order; ``find_all`` filters the list instead of walking the
    tree again for each question asked of it (that walk dominated validating a large runbook). The root
    stays for the one question that follows the tree's shape: where a secret's value flows."""

    def __init__(self, ast: Any) -> None:
        self.root = ast
        self.nodes = _descendants(ast)

    def find_all(self, kind: Any) -> Iterator[Any]:
        return (n for n in self.nodes if isinstance(n, kind))


def _descendants(root: Any) -> list[Any]:
    """Every node under ``root`` in document order, as ``root.find_all(nodes.Node)`` lists them: walked with
    one stack instead of a generator per node (Jinja2's walk was most of checking a template)."""
    from jinja2.nodes import Node

    found: list[Any] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node is not root:
            found.append(node)
        children: list[Any] = []
        for name in node.fields:
            value = getattr(node, name, None)
            if isinstance(value, Node):
                children.append(value)
            elif isinstance(value, list):
                children += [item for item in value if isinstance(item, Node)]
        stack += reversed(children)
    return found


@functools.lru_cache(maxsize=4096)
def facts(text: str, expression: bool, secrets: frozenset[str]) -> Facts:
    """What a template reads and does, once per distinct text and set of secret inputs."""
    flat, unsafe, local, read, paths = _examined(text, expression)
    try:
        return Facts(unsafe, secret_transform(flat, secrets), local, read, paths)
    except RecursionError:
        raise TemplateError(_TOO_DEEP) from None


@functools.lru_cache(maxsize=4096)
def _examined(text: str, expression: bool) -> tuple[_Flat, str | None, frozenset[str], tuple[Any, ...],
                                                   tuple[Any, ...]]:
    """Parse and examine a template once per distinct text (runbooks repeat "{{ inputs.domain }}"; the
    loader, the team file's check and the translations ask of the same texts with other secrets)."""
    ast = parse(text, expression)
    try:
        flat = _Flat(ast)
        return (flat, unsafe_access(flat), frozenset(assigned_names(flat)), tuple(references(flat)),
                tuple(dict.fromkeys(chains(flat))))
    except RecursionError:  # Jinja2 parses thousands of chained filters that its own tree walk cannot follow
        raise TemplateError(_TOO_DEEP) from None


_TOO_DEEP = "template nests too deeply to be checked; split it into simpler ones"


def references(ast: Any) -> Iterator[tuple[str, str | None]]:
    """Yield (root name, first attribute or key) for every top-level variable the template reads."""
    from jinja2 import nodes

    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node.node, nodes.Name) and node.node.ctx == "load":
            if isinstance(node, nodes.Getattr):
                yield node.node.name, node.attr
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                yield node.node.name, node.arg.value
            else:
                yield node.node.name, None
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load":
            yield node.name, None


def chains(ast: Any) -> Iterator[tuple[str, ...]]:
    """Every path of constant attributes or keys read from a variable: ``steps.probe.output['code']`` gives
    ("steps", "probe"), ("steps", "probe", "output") and ("steps", "probe", "output", "code")."""
    from jinja2 import nodes

    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        parts: list[str] = []
        while isinstance(node, (nodes.Getattr, nodes.Getitem)):
            if isinstance(node, nodes.Getattr):
                parts.append(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                parts.append(node.arg.value)
            else:
                break
            node = node.node
        else:
            if isinstance(node, nodes.Name) and node.ctx == "load":
                yield node.name, *reversed(parts)


def unsafe_access(ast: Any) -> str | None:
    """The first private attribute the template reaches for (the usual sandbox-escape route), if any."""
    from jinja2 import nodes

    for node in ast.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            return str(node.attr)
    for node in ast.find_all(nodes.Getitem):
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        if isinstance(key, str) and key.startswith("_"):
            return key
    for node in ast.find_all(nodes.Filter):
        if node.name == "attr":
            for arg in node.args:
                if not isinstance(arg, nodes.Const) or str(arg.value).startswith("_"):
                    return f"|attr({getattr(arg, 'value', '...')})"
    for node in ast.find_all(nodes.Const):
        if isinstance(node.value, str) and "__" in node.value:
            return node.value
    return None


def assigned_names(ast: Any) -> set[str]:
    """Names a template defines itself (for loops, set): not context variables."""
    from jinja2 import nodes

    return {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}


# How a secret's value is used where it is read. A secret is redacted by value, so it may flow only to
# places that keep it whole: the output (alone or joined with ``~``), or a yes/no question about it.
_WHOLE = "whole"  # reaches the output (or an action's argument) exactly as it is
_TRUTH = "truth"  # only a true/false answer about it is used: ``{% if inputs.token %}``, ``is defined``
# Anything else is a string saying how the value is transformed, for the message.

# Filters that hand their operand back unchanged; ``default`` may also hand back its first argument.
_VERBATIM_FILTERS = frozenset({"default", "d", "string"})
# Statements whose body reaches the output as it is; any other block (filter, set, macro, call,
# autoescape) transforms or captures what its body prints.
_PLAIN_BLOCKS = ("If", "For", "With", "Scope")
# Within those (and within Concat, And, Or, CondExpr, whose value is one of their operands as it is), the
# fields not used whole: a condition is a truth value; a loop's items and a with's values become variables,
# which the walk does not follow.
_PLAIN_FIELDS = {"test": _TRUTH, "iter": "a loop", "values": "a {% with %} variable"}
_BLOCK_NAMES = {"FilterBlock": "a {% filter %} block", "AssignBlock": "a {% set %} block", "Macro": "a macro",
                "CallBlock": "a {% call %} block", "EvalContextModifier": "an {% autoescape %} block",
                "ScopedEvalContextModifier": "an {% autoescape %} block"}
_EXPRESSION_NAMES = {"Getattr": "an attribute or method", "Getitem": "an index or slice", "Call": "a call",
                     "List": "a list", "Tuple": "a tuple", "Dict": "a mapping", "Pair": "a mapping",
                     "Keyword": "a keyword argument", "Assign": "a {% set %} variable", "Slice": "a slice",
                     "Mod": "'%' formatting", "Add": "arithmetic", "Sub": "arithmetic", "Mul": "arithmetic",
                     "Div": "arithmetic", "FloorDiv": "arithmetic", "Pow": "arithmetic", "Neg": "arithmetic",
                     "Pos": "arithmetic"}


def secret_transform(ast: Any, secrets: frozenset[str]) -> tuple[str, str] | None:
    """(input name, how) when a template may alter a secret input before it reaches the output.

    Redaction works by value, so an altered secret (``inputs.token|upper``, ``inputs.token[:4]``,
    ``'%s'|format(inputs.token)``, ``[inputs.token]|first|upper``, ``inputs|tojson``) could not be
    recognised in the log or on the terminal: such templates are refused when the runbook is validated.
    The decision follows the data flow from each read of a secret to the output, so a value laundered
    through a verbatim filter, a variable or a list is followed too; whatever the walk does not know is
    taken as a transformation (fail closed). The whole ``inputs`` mapping, or a key of it chosen at render
    time, may hold any secret and is refused the same way.
    """
    if not secrets:
        return None
    return _flow(ast.root if isinstance(ast, _Flat) else ast, _WHOLE, secrets)


def _input_key(node: Any) -> tuple[bool, str | None]:
    """(reads ``inputs``, the constant input name it reads or None when the whole mapping is used)."""
    from jinja2 import nodes

    if isinstance(node, nodes.Name):
        return node.name == "inputs" and node.ctx == "load", None
    if not (isinstance(node, (nodes.Getattr, nodes.Getitem)) and isinstance(node.node, nodes.Name)
            and node.node.name == "inputs"):
        return False, None
    key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
    # A dict method (``inputs.items``, ``inputs.get``) or a key computed at render time hands out any input.
    if not isinstance(key, str) or (isinstance(node, nodes.Getattr) and hasattr(dict, key)):
        return True, None
    return True, key


def _flow(node: Any, use: str, secrets: frozenset[str]) -> tuple[str, str] | None:
    """Walk ``node`` knowing how its value is used; the first secret read that is not used whole or as a
    truth value, as (input name, how)."""
    reads, key = _input_key(node)
    if reads:
        if key is None:
            return ("inputs", "the whole inputs mapping (or a key chosen at render time), which holds the "
                    "secrets")
        if key in secrets and use not in (_WHOLE, _TRUTH):
            return key, use
        return None
    for child, child_use in _children(node, use):
        found = _flow(child, child_use, secrets)
        if found:
            return found
    return None


def _children(node: Any, use: str) -> Iterator[tuple[Any, str]]:
    """Each child of ``node`` with how its value is used, given how ``node``'s own value is used."""
    from jinja2 import nodes

    kind = type(node).__name__
    if isinstance(node, (nodes.Template, nodes.Output, nodes.Concat, nodes.And, nodes.Or, nodes.CondExpr)
                  ) or kind in _PLAIN_BLOCKS:
        for field, child in _fields(node):
            yield child, _PLAIN_FIELDS.get(field, use)
    elif isinstance(node, (nodes.Test, nodes.Compare, nodes.Not, nodes.Operand)):
        for _, child in _fields(node):
            yield child, _TRUTH
    elif isinstance(node, nodes.Filter):
        how = f"the filter '{node.name}'"
        for field, child in _fields(node):
            keeps = field == "node" or (node.name in ("default", "d") and node.args and child is node.args[0])
            yield child, use if node.name in _VERBATIM_FILTERS and keeps else how
    else:
        how = _BLOCK_NAMES.get(kind) or _EXPRESSION_NAMES.get(kind) or f"a {kind} expression"
        for _, child in _fields(node):
            yield child, how


def _fields(node: Any) -> Iterator[tuple[str, Any]]:
    """(field name, child node) for every child, lists flattened."""
    from jinja2 import nodes

    for field in node.fields:
        value = getattr(node, field, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, nodes.Node):
                yield field, item
