"""Checks that need more than one field: step ids, actions and their arguments, templates and references.

Each check yields Problems located in the source; the loader collects all of them so an engineer fixes a
file in one pass. The checks read the parsed data (plain dicts and lists) of the parts the model accepted.
Every check is linear in the runbook's size: what a template may name at a step is asked of one table of
step positions, never of a copy made per step.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actions.base import Effect
from actions.registry import Registry, UnknownAction
from engine import loops, team, templates
from engine.calls import CALL
from engine.errors import InputError, Problem, TemplateError
from engine.input_types import InputType
from engine.model import AUTO
from engine.yamlsource import Path, Source

Raw = dict[str, Any]  # an input or a step as parsed, its structure already checked

CONTEXT_ROOTS = frozenset({"inputs", "steps", "run", "contacts"})
# `loop` is Jinja's own variable inside {% for %}; outside a loop it fails at render time like any undefined.
JINJA_GLOBALS = frozenset({"range", "dict", "namespace", "loop", "true", "false", "none", "True", "False", "None"})
ROOTS = CONTEXT_ROOTS | JINJA_GLOBALS
RESULT_ROOTS = ROOTS | {"result"}
ANNOUNCE_ROOTS = ROOTS | {"gate"}  # a four-eyes gate's announcement may name the gate it announces


_NO_DEFAULTS: Mapping[str, Raw] = {}  # never written to


@dataclass(frozen=True)
class _Runbook:
    """What every template check needs to know about the whole runbook, built once."""

    inputs: frozenset[str] | None  # None: the inputs section itself is broken, so input names are not checked
    secrets: frozenset[str]  # inputs redacted by value: templates may use them only as they are
    position: Mapping[str, int]  # each step id's first index
    actions: Mapping[str, str]  # each step id's action, where the step's structure is sound
    registry: Registry
    defaults: Mapping[str, Raw]  # the `defaults:` arguments per action, where sound


@dataclass(frozen=True)
class _Scope:
    """What a template may name at one place in the runbook: O(1) to make, whatever the runbook's size."""

    book: _Runbook
    here: int  # steps at an index below this have run
    roots: frozenset[str] = ROOTS
    action: str | None = None  # the action whose output `result` is (expect, until)
    steps_refused: str | None = None  # why no step may be read here at all (the defaults), else None

    @property
    def inputs(self) -> frozenset[str] | None:
        return self.book.inputs

    @property
    def secrets(self) -> frozenset[str]:
        return self.book.secrets

    def has_run(self, step_id: str) -> bool:
        return self.book.position.get(step_id, self.here) < self.here

    def exists(self, step_id: str) -> bool:
        return step_id in self.book.position


def check_parts(inputs: Mapping[str, Raw | None] | None, steps: Sequence[Raw | None],
                step_ids: Sequence[str | None], src: Source, registry: Registry,
                defaults: Mapping[str, Raw | None] | None = None, outputs: Mapping[str, Any] | None = None,
                comms: Mapping[str, Any] | None = None) -> list[Problem]:
    """Check the inputs, the defaults and the steps; ``None`` marks one whose structure the model refused
    (reported by the loader); ``defaults`` None: that section itself is broken.

    Every structurally sound part is checked even when others are broken, so one pass shows every problem.
    """
    problems: list[Problem] = []
    if inputs is not None:
        problems += _check_inputs(inputs, src, registry)
    problems += _check_step_ids(step_ids, src)
    entries = list(_entries(steps, step_ids))
    problems += _check_groups(steps, src, registry)
    problems += _check_step_ids([e.step_id for e in entries if e.path[2:]], src,
                                [e.path for e in entries if e.path[2:]], {s for s in step_ids if s})
    position: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.step_id is not None:
            position.setdefault(entry.step_id, index)
    steps = [e.raw for e in entries]
    step_ids = [e.step_id for e in entries]
    actions = {str(step["id"]): str(step["action"]) for step in steps if step is not None}
    sound_defaults = {name: args for name, args in (defaults or {}).items() if args is not None}
    book = _Runbook(frozenset(inputs) if inputs is not None else None, _secret_inputs(inputs or {}), position,
                    actions, registry, sound_defaults)
    problems += _check_defaults(book, steps, src)
    problems += _check_steps(book, entries, src)
    after_all = _Scope(book, len(step_ids))  # `outputs:` render after the last step (engine.calls)
    for name, template in (outputs or {}).items():
        problems += _check_tree(template, ("outputs", name), src, after_all)
    # `comms:` texts, checked once over the whole runbook (names, syntax, the sandbox) even where no step
    # posts them yet; each `comms.post` step checks them again where it stands (engine.comms fills them in).
    for kind, texts in (comms or {}).items():
        problems += _check_tree(texts, ("comms", "templates", kind), src, after_all)
    return problems


@dataclass(frozen=True)
class _Entry:
    """One step that calls an action, where it is written and what it may read: the steps before
    ``here`` (a group's steps run together, so none of them may read another)."""

    path: Path
    raw: Raw | None
    step_id: str | None
    here: int


def _entries(steps: Sequence[Raw | None], step_ids: Sequence[str | None]) -> Iterator[_Entry]:
    flat = 0
    for index, (raw, step_id) in enumerate(zip(steps, step_ids, strict=True)):
        members = raw.get("parallel") if isinstance(raw, dict) else None
        if not isinstance(members, list):
            yield _Entry(("steps", index), raw, step_id, flat)
            flat += 1
            continue
        start = flat
        for j, member in enumerate(members):
            mid = member.get("id") if isinstance(member, dict) and isinstance(member.get("id"), str) else None
            yield _Entry(("steps", index, "parallel", j), member, mid, start)
            flat += 1


def _check_groups(steps: Sequence[Raw | None], src: Source, registry: Registry) -> Iterator[Problem]:
    """A group's steps run at once: each must be read-only (``Action.effect_of`` decides, as everywhere),
    ask no gate, and stop nothing but the run (no rollback of others while they are running)."""
    for index, raw in enumerate(steps):
        if raw is None or not isinstance(raw.get("parallel"), list):
            continue
        for j, member in enumerate(raw["parallel"]):
            path: Path = ("steps", index, "parallel", j)
            try:
                effect = str(registry.get(member["action"]).effect_of(member.get("with", {})))
            except UnknownAction:
                continue  # reported with the step's action
            if effect != "read":
                yield src.problem((*path, "action"), f"step '{member['id']}' changes the world ({effect}: "
                                  f"{member['action']}); a parallel group runs only read-only steps: move it "
                                  "out of the group")
            if member.get("confirm") not in (None, False):
                yield src.problem((*path, "confirm"), f"step '{member['id']}' asks a gate; the steps of a "
                                  "parallel group run at once, so none may ask: move it out of the group")
            if member.get("on_failure") == "rollback":
                yield src.problem((*path, "on_failure"), "on_failure: rollback inside a parallel group would "
                                  "undo steps while the others run; use abort or continue")


def _check_defaults(book: _Runbook, steps: Sequence[Raw | None], src: Source) -> Iterator[Problem]:
    """Each action's defaults: arguments it accepts, templates over inputs and run only (they apply to every
    step of the action, wherever it is), and some step or rollback that uses them (else they are a typo)."""
    used = {call["action"] for step in steps if step is not None
            for call in (step, step.get("rollback")) if isinstance(call, dict)}
    before_any_step = _Scope(book, 0, steps_refused="defaults apply to every step of their action, wherever it "
                             "is, so they may read inputs and run only; write this argument in the step's `with`")
    for name, args in book.defaults.items():
        path: Path = ("defaults", name)
        if name not in used:
            try:
                book.registry.arguments(name)
            except UnknownAction as exc:
                yield src.problem(path, str(exc), key=True)
                continue
            yield src.problem(path, f"defaults for '{name}' apply to nothing: no step or rollback uses this "
                              "action", key=True)
            continue
        yield from _check_action(name, args, path, src, book.registry, with_path=path, required=False)
        yield from _check_tree(args, path, src, before_any_step)


def _secret_inputs(inputs: Mapping[str, Raw | None]) -> frozenset[str]:
    """Inputs redacted by value (engine.inputs.is_secret, read from the file as parsed)."""
    return frozenset(n for n, spec in inputs.items()
                     if spec is not None and (spec.get("type") == InputType.SECRET or spec.get("env")))


def _check_inputs(inputs: Mapping[str, Raw | None], src: Source, registry: Registry) -> Iterator[Problem]:
    names = frozenset(inputs)
    for name, spec in inputs.items():
        path: Path = ("inputs", name)
        if not name.isidentifier():
            yield src.problem(path, f"input name '{name}' must be a valid identifier (letters, digits, _)",
                              key=True)
        if spec is None:
            continue
        kind = InputType(spec.get("type", InputType.STRING))
        default = spec.get("default")
        if kind is InputType.CHOICE and not spec.get("choices"):
            yield src.problem(path, f"input '{name}' has type choice but no choices")
        if isinstance(default, str) and templates.is_template(default):
            scope = _Scope(_Runbook(names - {name}, frozenset(), {}, {}, registry, _NO_DEFAULTS), 0)
            yield from _check_template(default, (*path, "default"), src, scope, expression=False)
        elif default is not None and kind is not InputType.SECRET:
            from engine.inputs import coerce_as

            try:
                coerce_as(name, kind, spec.get("choices"), default)
            except InputError as exc:
                yield src.problem((*path, "default"), f"default of input '{name}': {exc}")
        if kind is InputType.SECRET and default is not None:
            yield src.problem((*path, "default"), f"secret input '{name}' must not have a default in the "
                              "file; use env: to read it from the environment")


def _check_step_ids(step_ids: Sequence[str | None], src: Source, paths: Sequence[Path] | None = None,
                    taken: set[str] | None = None) -> Iterator[Problem]:
    """Duplicate ids among the top-level steps; with ``paths``, among a group's steps and against ``taken``
    (the top-level ids, groups' included)."""
    first: dict[str, int] = {}
    for index, step_id in enumerate(step_ids):
        if step_id is None:
            continue
        path = ("steps", index) if paths is None else paths[index]
        if taken is not None and step_id in taken:
            yield src.problem((*path, "id"), f"duplicate step id '{step_id}' (a step or group outside this "
                              "group has it)")
        elif step_id in first:
            yield src.problem((*path, "id"),
                              f"duplicate step id '{step_id}' (first used by step {first[step_id] + 1})")
        else:
            first[step_id] = index


def _check_steps(book: _Runbook, entries: Sequence[_Entry], src: Source) -> Iterator[Problem]:
    has_rollback = False
    for entry in entries:
        step, path, index = entry.raw, entry.path, entry.here
        if step is None:  # structurally wrong; its id still counts for references that follow
            has_rollback = has_rollback or "rollback" in _raw(src, path)
            continue
        step_id = step["id"]
        plain = _Scope(book, index)
        if step.get("for_each") is not None:  # `item` is defined in every template of the step but `when`
            yield from _check_loop(book, step, path, src, plain)
            plain, whole = _Scope(book, index, ROOTS | loops.LOOP_ROOTS), plain
        else:
            yield from _check_loop(book, step, path, src, plain)
            whole = plain
        with_result = _Scope(book, index, plain.roots | RESULT_ROOTS, step["action"])
        if templates.is_template(step["title"]):
            yield from _check_template(step["title"], (*path, "title"), src, plain, expression=False)
        yield from _check_action(step["action"], step.get("with", {}), path, src, book.registry,
                                 defaulted=book.defaults.get(step["action"], _NO_DEFAULTS))
        yield from _check_tree(step.get("with", {}), (*path, "with"), src, plain)
        for field, scope in (("when", whole), ("expect", with_result), ("until", with_result)):
            value = step.get(field)
            if isinstance(value, str):
                yield from _check_template(value, (*path, field), src, scope, expression=True)
        yield from _check_gate(step.get("confirm"), (*path, "confirm"), src, plain)
        yield from _check_announce(step.get("confirm"), (*path, "confirm"), src, _Scope(book, index, ANNOUNCE_ROOTS))
        rollback = step.get("rollback")
        if step["action"] == CALL:
            has_rollback = True  # the steps it calls may have theirs (the called runbook is checked on its own)
        if rollback == AUTO:
            has_rollback = True
            yield from _check_auto_rollback(step["action"], (*path, "rollback"), src, book.registry)
        elif rollback is not None:
            has_rollback = True
            rb_path = (*path, "rollback")
            # A rollback runs after its step: it may read the step's output; a loop's undoes one item, its own.
            rb_scope = _Scope(book, index + 1, (ROOTS | loops.LOOP_ROOTS) if step.get("for_each") is not None
                              else ROOTS)
            yield from _check_action(rollback["action"], rollback.get("with", {}), rb_path, src, book.registry,
                                     defaulted=book.defaults.get(rollback["action"], _NO_DEFAULTS))
            yield from _check_tree(rollback.get("with", {}), (*rb_path, "with"), src, rb_scope)
            yield from _check_gate(rollback.get("confirm"), (*rb_path, "confirm"), src, rb_scope)
            yield from _check_announce(rollback.get("confirm"), (*rb_path, "confirm"), src,
                                       _Scope(book, index + 1, ANNOUNCE_ROOTS))
        if step.get("on_failure") == "rollback" and not has_rollback:
            yield src.problem((*path, "on_failure"), f"step '{step_id}' says on_failure: rollback but "
                              "neither it nor any earlier step has a rollback")


def _check_auto_rollback(action: str, path: Path, src: Source, registry: Registry) -> Iterator[Problem]:
    from actions.base import can_undo
    from engine.rollbacks import undoable

    try:
        cls = registry.get(action)
    except UnknownAction:
        return  # reported where the action is named
    if not can_undo(cls):
        yield src.problem(path, f"action '{action}' cannot undo itself, so `rollback: auto` has nothing to run; "
                          f"`auto` works with: {', '.join(undoable(registry))}. Write the rollback's action and "
                          "with instead")
def _check_loop(book: _Runbook, step: Raw, path: Path, src: Source, scope: _Scope) -> Iterator[Problem]:
    """A loop's own keys: ``for_each`` as a template over what has run, and the rules of engine.loops."""
    for_each = step.get("for_each")
    if for_each is not None and step.get("action") == CALL:
        yield src.problem((*path, "for_each"), "a `runbook.run` call cannot loop: its steps are recorded once, "
                          "as <call>.<step>; loop inside the called runbook instead, or write one call per item")
        return
    if isinstance(for_each, str):
        yield from _check_template(for_each, (*path, "for_each"), src, scope, expression=False)
    effect_is_read = None
    if (step.get("concurrency") or 0) > 1:  # only then is the action's module worth loading here
        try:
            effect_is_read = str(book.registry.get(step["action"]).effect_of(step.get("with", {}))) == "read"
        except UnknownAction:
            pass  # reported with the action
    for key, message in loops.check(step, effect_is_read):
        yield src.problem((*path, key), message)


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
    elif isinstance(confirm, dict):
        for field in ("message", "type_to_confirm"):
            value = confirm.get(field)
            if value:
                yield from _check_template(value, (*path, field), src, scope, expression=False)


def _check_announce(confirm: Any, path: Path, src: Source, scope: _Scope) -> Iterator[Problem]:
    """A gate's announcement calls a notify action (a message to people, never a change) with valid arguments."""
    announce = confirm.get("announce") if isinstance(confirm, dict) else None
    if not isinstance(announce, dict) or not isinstance(announce.get("action"), str):
        return
    path, name = (*path, "announce"), announce["action"]
    try:
        effect = scope.book.registry.get(name).effect
    except UnknownAction:
        effect = Effect.NOTIFY  # _check_action names it, with a did-you-mean
    if effect is not Effect.NOTIFY:
        yield src.problem((*path, "action"), f"announce uses '{name}', which is not a notify action: an "
                          "announcement may only tell people, never change anything (e.g. notify.webhook)")
        return
    yield from _check_action(name, announce.get("with", {}), path, src, scope.book.registry)
    yield from _check_tree(announce.get("with", {}), (*path, "with"), src, scope)


def _check_action(name: str, args: dict[str, Any], path: Path, src: Source, registry: Registry,
                  defaulted: Mapping[str, Any] = _NO_DEFAULTS, with_path: Path | None = None,
                  required: bool = True) -> Iterator[Problem]:
    """The arguments written at ``with_path`` (the call's ``with`` by default) against what action ``name``
    takes; ``defaulted``: arguments the runbook's defaults give it. ``required`` False: a partial set (the
    defaults themselves), which the steps complete."""
    with_path = (*path, "with") if with_path is None else with_path
    try:
        arguments = registry.arguments(name)
    except UnknownAction as exc:
        yield src.problem((*path, "action"), str(exc))
        return
    for arg in args:
        if arg not in arguments.accepted:
            near = difflib.get_close_matches(arg, list(arguments.accepted), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            options = ", ".join(sorted(arguments.accepted))
            yield src.problem((*with_path, arg), f"action '{name}' does not accept argument "
                              f"'{arg}'{hint}; it accepts: {options}", key=True)
    for arg in arguments.required if required else ():
        if arg not in args and arg not in defaulted:
            where = with_path if with_path in src.marks else (*path, "action")
            yield src.problem(where, f"action '{name}' needs argument '{arg}'")
    for arg in arguments.literal_bools:
        if arg in args and not isinstance(args[arg], bool):
            yield src.problem((*with_path, arg), _not_literal_bool(arg, args[arg]))
    for arg, words in arguments.choices.items():
        value = args.get(arg)
        if isinstance(value, str) and value not in words and not templates.is_template(value):
            yield src.problem((*with_path, arg), _not_a_choice(arg, value, words))


def _not_a_choice(arg: str, value: str, words: tuple[str, ...]) -> str:
    import json

    near = difflib.get_close_matches(value, list(words), n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    shown = json.dumps(value, ensure_ascii=True)  # escapes control characters: the runbook is untrusted
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"'{arg}' cannot be {shown}{hint}; it takes: {', '.join(words)}"


def _not_literal_bool(arg: str, value: Any) -> str:
    """Why an effect-deciding argument must be a YAML boolean: lax coercion read "yes", 1 and "on" as true
    and let a template (an earlier step's output) decide, so a change ran ungated while `show` said gated."""
    if isinstance(value, str) and templates.is_template(value):
        return (f"'{arg}' must be a literal true or false, not a template: it decides whether the step is "
                "gated, and no step's output may decide that")
    import json

    shown = json.dumps(value, ensure_ascii=True)  # escapes control characters: the runbook is untrusted
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"'{arg}' must be a literal true or false, not {shown}: it decides whether the step is gated"


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
        found = templates.facts(text, is_expr, scope.secrets)
    except TemplateError as exc:
        yield src.problem(path, f"{exc} in {text!r}")
        return
    if found.unsafe:
        yield src.problem(path, f"template reaches for '{found.unsafe}', which the sandbox refuses: templates "
                          "may only read inputs, steps and run")
        return
    if found.altered_secret:
        yield src.problem(path, _altered_secret_message(*found.altered_secret, scope.secrets))
    reported: set[str] = set()
    for root, attr in found.references:
        message = _reference_problem(root, attr, scope, found.local)
        if message and message not in reported:
            reported.add(message)
            yield src.problem(path, message)
    for chain in found.chains:
        message = _output_problem(chain, scope, found.local)
        if message and message not in reported:
            reported.add(message)
            yield src.problem(path, message)


def _reference_problem(root: str, attr: str | None, scope: _Scope, local: frozenset[str]) -> str | None:
    if root in local:
        return None
    if root not in scope.roots:
        if root == "result":
            return "'result' is only defined inside expect and until"
        if root in loops.LOOP_ROOTS:
            return f"'{root}' is defined only in a step with `for_each` (and not in its `when`)"
        return f"undefined name '{root}' (templates can read inputs, steps and run)"
    if attr is None:
        return None
    if root == "inputs" and scope.inputs is not None and attr not in scope.inputs:
        return f"undefined input 'inputs.{attr}'" + (f"; declared inputs: {', '.join(sorted(scope.inputs))}"
                                                     if scope.inputs else "; this runbook declares no inputs")
    if root == "steps" and scope.steps_refused is not None:
        return f"'steps.{attr}': {scope.steps_refused}"
    if root == "steps" and not scope.has_run(attr):
        if scope.exists(attr):
            return f"'steps.{attr}' refers to a step that has not run yet at this point"
        return f"'steps.{attr}' refers to a step that does not exist"
    if root == "run" and attr not in ("id", "mode", "runbook", "operator", "started", "now"):
        return f"'run.{attr}' is not defined; run has id, mode, runbook, operator, started, now"
    if root == "contacts" and attr not in team.ROLES:
        near = difflib.get_close_matches(attr, team.ROLES, n=1)
        return (f"'contacts.{attr}' is not a contact role" + (f" (did you mean '{near[0]}'?)" if near else "")
                + f"; roles: {', '.join(team.ROLES)}")
    return None


def _output_problem(chain: tuple[str, ...], scope: _Scope, local: frozenset[str]) -> str | None:
    """A read of an output field the action does not produce: ``steps.probe.output.status_code`` or, in
    expect and until, ``result.status_code``."""
    if chain[0] in local:
        return None
    if chain[0] == "contacts" and len(chain) == 3 and chain[2] not in team.FIELDS:
        near = difflib.get_close_matches(chain[2], team.FIELDS, n=1)
        return (f"'{'.'.join(chain)}': a contact has no field '{chain[2]}'"
                + (f" (did you mean '{near[0]}'?)" if near else "") + f"; fields: {', '.join(team.FIELDS)}")
    if chain[0] == "steps" and len(chain) == 4 and chain[2] == "output" and scope.has_run(chain[1]):
        action, field = scope.book.actions.get(chain[1]), chain[3]
    elif chain[0] == "result" and len(chain) == 2 and "result" in scope.roots:
        action, field = scope.action, chain[1]
    else:
        return None
    if action is None:
        return None
    try:
        fields = scope.book.registry.output_fields(action)
    except UnknownAction:
        return None  # reported where the action is named
    if fields is None or field in fields:
        return None
    near = difflib.get_close_matches(field, fields, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return (f"'{'.'.join(chain)}': action '{action}' has no output field '{field}'{hint}; its output fields: "
            f"{', '.join(fields) or '(none)'} (see `breakglass actions {action}`)")


def _altered_secret_message(name: str, how: str, secrets: frozenset[str]) -> str:
    if name == "inputs":  # the whole mapping: any secret in it may come out transformed
        return (f"template uses {how} ({', '.join(sorted(secrets))}): secrets are redacted by value, so name "
                "each input you need, like {{ inputs.domain }}")
    return (f"template alters the secret input '{name}' with {how}: secrets are redacted by value, so use "
            "them only as they are ({{ inputs." + name + " }}), on their own or joined with ~")


# A command's arguments can be read by every user on the host while it runs (ps, /proc/PID/cmdline), where
# redaction cannot reach; its environment and standard input cannot.
COMMAND_LINE = "argv"


def warnings(src: Source) -> list[Problem]:
    """What is allowed but unwise, located like problems; ``validate`` prints them without failing.

    Reads a runbook that passed ``check_text``: a secret input (type secret, or read from env:) placed on a
    command line."""
    data = src.data
    secrets = _secret_inputs(data.get("inputs") or {})
    if not secrets:
        return []
    found: list[Problem] = []
    for index, step in enumerate(data.get("steps") or []):
        for path, call in ((("steps", index), step), (("steps", index, "rollback"), step.get("rollback"))):
            args = (call.get("with") or {}) if isinstance(call, dict) else {}  # `rollback: auto`: its step's
            if COMMAND_LINE in args:
                found += _secrets_on_command_line(args[COMMAND_LINE], (*path, "with", COMMAND_LINE), src, secrets)
    return found


def _secrets_on_command_line(value: Any, path: Path, src: Source, secrets: frozenset[str]) -> Iterator[Problem]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secrets_on_command_line(item, (*path, i), src, secrets)
    elif isinstance(value, str) and templates.is_template(value):
        names = sorted({attr for root, attr in templates.facts(value, False, secrets).references
                        if root == "inputs" and attr in secrets})
        for name in names:
            yield src.problem(path, f"warning: secret input '{name}' is placed on a command line, which any user "
                              "on that host can read while it runs (ps, /proc/PID/cmdline); pass it in env: "
                              "(env: {NAME: \"{{ inputs." + name + " }}\"}) or stdin: instead")
