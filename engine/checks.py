"""Checks that need more than one field: step ids, actions and their arguments, templates and references.

Each check yields Problems located in the source; the loader collects all of them so an engineer fixes a
file in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from breakglass.actions.registry import Registry, UnknownAction
from breakglass.engine import templates
from breakglass.engine.errors import InputError, Problem, TemplateError
from breakglass.engine.model import Gate, InputSpec, InputType, Runbook, Step
from breakglass.engine.yamlsource import Path, Source

CONTEXT_ROOTS = frozenset({"inputs", "steps", "run"})
# `loop` is Jinja's own variable inside {% for %}; outside a loop it fails at render time like any undefined.
JINJA_GLOBALS = frozenset({"range", "dict", "namespace", "loop", "true", "false", "none", "True", "False", "None"})


class _Scope:
    """What a template may name at one place in the runbook."""

    def __init__(self, inputs: set[str] | None, steps_before: list[str], later: set[str],
                 extra: frozenset[str], secrets: frozenset[str] = frozenset()) -> None:
        self.inputs = inputs  # None: the inputs section itself is broken, so input names are not checked
        self.secrets = secrets  # inputs redacted by value: templates may use them only as they are
        self.steps_before = set(steps_before)
        self.later = later
        self.roots = CONTEXT_ROOTS | extra | JINJA_GLOBALS


def check_runbook(rb: Runbook, src: Source, registry: Registry) -> list[Problem]:
    return check_parts(dict(rb.inputs), list(rb.steps), [s.id for s in rb.steps], src, registry)


def check_parts(inputs: Mapping[str, InputSpec | None] | None, steps: Sequence[Step | None],
                step_ids: Sequence[str | None], src: Source, registry: Registry) -> list[Problem]:
    """Check what is structurally valid: ``None`` marks an input or step pydantic rejected (reported there).

    The loader also calls this when the file has structural errors, so one pass shows every problem.
    """
    problems: list[Problem] = []
    if inputs is not None:
        problems += _check_inputs(inputs, src)
    problems += _check_step_ids(step_ids, src)
    secrets = frozenset(n for n, spec in (inputs or {}).items()
                        if spec is not None and (spec.type is InputType.SECRET or spec.env))
    problems += _check_steps(set(inputs) if inputs is not None else None, steps, step_ids, src, registry,
                             secrets)
    return problems


def _check_inputs(inputs: Mapping[str, InputSpec | None], src: Source) -> Iterator[Problem]:
    names = set(inputs)
    for name, spec in inputs.items():
        path: Path = ("inputs", name)
        if not name.isidentifier():
            yield src.problem(path, f"input name '{name}' must be a valid identifier (letters, digits, _)",
                              key=True)
        if spec is None:
            continue
        if spec.type is InputType.CHOICE and not spec.choices:
            yield src.problem(path, f"input '{name}' has type choice but no choices")
        if isinstance(spec.default, str) and templates.is_template(spec.default):
            scope = _Scope(names - {name}, [], set(), frozenset())
            yield from _check_template(spec.default, (*path, "default"), src, scope, expression=False)
        elif spec.default is not None and spec.type is not InputType.SECRET:
            from breakglass.engine.inputs import coerce

            try:
                coerce(name, spec, spec.default)
            except InputError as exc:
                yield src.problem((*path, "default"), f"default of input '{name}': {exc}")
        if spec.type is InputType.SECRET and spec.default is not None:
            yield src.problem((*path, "default"), f"secret input '{name}' must not have a default in the "
                              "file; use env: to read it from the environment")


def _check_step_ids(step_ids: Sequence[str | None], src: Source) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, step_id in enumerate(step_ids):
        if step_id is None:
            continue
        if step_id in first:
            yield src.problem(("steps", index, "id"),
                              f"duplicate step id '{step_id}' (first used by step {first[step_id] + 1})")
        else:
            first[step_id] = index


def _check_steps(inputs: set[str] | None, steps: Sequence[Step | None], step_ids: Sequence[str | None],
                 src: Source, registry: Registry, secrets: frozenset[str] = frozenset()) -> Iterator[Problem]:
    all_ids = [i for i in step_ids if i is not None]
    seen: list[str] = []
    has_rollback = False
    for index, step in enumerate(steps):
        if step is None:  # rejected by the model; its id still counts for references that follow
            if step_ids[index] is not None:
                seen.append(str(step_ids[index]))
            has_rollback = has_rollback or "rollback" in _raw(src, ("steps", index))
            continue
        path: Path = ("steps", index)
        later = set(all_ids[index:])
        plain = _Scope(inputs, seen, later, frozenset(), secrets)
        with_result = _Scope(inputs, seen, later, frozenset({"result"}), secrets)
        if templates.is_template(step.title):
            yield from _check_template(step.title, (*path, "title"), src, plain, expression=False)
        yield from _check_action(step.action, step.with_, path, src, registry)
        yield from _check_tree(step.with_, (*path, "with"), src, plain)
        for field, scope in (("when", plain), ("expect", with_result), ("until", with_result)):
            value = getattr(step, field)
            if isinstance(value, str):
                yield from _check_template(value, (*path, field), src, scope, expression=True)
        yield from _check_gate(step.confirm, (*path, "confirm"), src, plain)
        if step.rollback is not None:
            has_rollback = True
            rb_path = (*path, "rollback")
            rb_scope = _Scope(inputs, [*seen, step.id], later - {step.id}, frozenset(), secrets)
            yield from _check_action(step.rollback.action, step.rollback.with_, rb_path, src, registry)
            yield from _check_tree(step.rollback.with_, (*rb_path, "with"), src, rb_scope)
            yield from _check_gate(step.rollback.confirm, (*rb_path, "confirm"), src, rb_scope)
        if step.on_failure == "rollback" and not has_rollback:
            yield src.problem((*path, "on_failure"), f"step '{step.id}' says on_failure: rollback but "
                              "neither it nor any earlier step has a rollback")
        seen.append(step.id)


def _raw(src: Source, path: Path) -> Any:
    node = src.data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return {}
    return node if isinstance(node, dict) else {}


def _check_gate(confirm: Any, path: Path, src: Source, scope: _Scope) -> Iterator[Problem]:
    if isinstance(confirm, str):
        yield from _check_template(confirm, path, src, scope, expression=False)
    elif isinstance(confirm, Gate):
        for field in ("message", "type_to_confirm"):
            value = getattr(confirm, field)
            if value:
                yield from _check_template(value, (*path, field), src, scope, expression=False)


def _check_action(name: str, args: dict[str, Any], path: Path, src: Source,
                  registry: Registry) -> Iterator[Problem]:
    try:
        cls = registry.get(name)
    except UnknownAction as exc:
        yield src.problem((*path, "action"), str(exc))
        return
    fields = cls.Params.model_fields
    accepted = {f.alias or n: n for n, f in fields.items()} | {n: n for n in fields}
    for arg in args:
        if arg not in accepted:
            import difflib

            near = difflib.get_close_matches(arg, list(accepted), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            options = ", ".join(sorted(f.alias or n for n, f in fields.items()))
            yield src.problem((*path, "with", arg), f"action '{name}' does not accept argument "
                              f"'{arg}'{hint}; it accepts: {options}", key=True)
    given = {accepted.get(a) for a in args}
    for n, f in fields.items():
        if f.is_required() and n not in given:
            where = (*path, "with") if (*path, "with") in src.marks else (*path, "action")
            yield src.problem(where, f"action '{name}' needs argument '{f.alias or n}'")


def _check_tree(value: Any, path: Path, src: Source, scope: _Scope) -> Iterator[Problem]:
    if isinstance(value, str):
        if templates.is_template(value):
            yield from _check_template(value, path, src, scope, expression=False)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _check_tree(v, (*path, k), src, scope)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _check_tree(v, (*path, i), src, scope)


def _check_template(text: str, path: Path, src: Source, scope: _Scope, expression: bool) -> Iterator[Problem]:
    is_expr = expression and not templates.is_template(text)
    try:
        ast = templates.parse(text, expression=is_expr)
    except TemplateError as exc:
        yield src.problem(path, f"{exc} in {text!r}")
        return
    unsafe = templates.unsafe_access(ast)
    if unsafe:
        yield src.problem(path, f"template reaches for '{unsafe}', which the sandbox refuses: templates may "
                          "only read inputs, steps and run")
        return
    altered = templates.secret_transform(ast, scope.secrets)
    if altered:
        yield src.problem(path, f"template alters the secret input '{altered[0]}' with {altered[1]}: secrets are "
                          "redacted by value, so use them only as they are ({{ inputs." + altered[0] + " }})")
    local = templates.assigned_names(ast)
    reported: set[str] = set()
    for root, attr in templates.references(ast):
        message = _reference_problem(root, attr, scope, local)
        if message and message not in reported:
            reported.add(message)
            yield src.problem(path, message)


def _reference_problem(root: str, attr: str | None, scope: _Scope, local: set[str]) -> str | None:
    if root in local:
        return None
    if root not in scope.roots:
        if root == "result":
            return "'result' is only defined inside expect and until"
        return f"undefined name '{root}' (templates can read inputs, steps and run)"
    if attr is None:
        return None
    if root == "inputs" and scope.inputs is not None and attr not in scope.inputs:
        return f"undefined input 'inputs.{attr}'" + (f"; declared inputs: {', '.join(sorted(scope.inputs))}"
                                                     if scope.inputs else "; this runbook declares no inputs")
    if root == "steps" and attr not in scope.steps_before:
        if attr in scope.later:
            return f"'steps.{attr}' refers to a step that has not run yet at this point"
        return f"'steps.{attr}' refers to a step that does not exist"
    if root == "run" and attr not in ("id", "mode", "runbook", "operator", "started"):
        return f"'run.{attr}' is not defined; run has id, mode, runbook, operator, started"
    return None

