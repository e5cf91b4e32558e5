"""Runbooks that call runbooks: ``action: runbook.run`` with ``with: {runbook: ID, inputs: {...}}``.

The called runbook (the child) is loaded and checked with its caller, so an unknown child, a call cycle or
inputs the child does not take are file:line:col errors before anything runs. At run time the child's steps
run inside the caller's run: one audit log, one chain head, one state machine. Each child step is recorded
under the call step's id and its own, ``<call id>.<child step id>`` (``switch.switch_a``): that is the id of
its records, of its gate (``--approve switch.switch_a``), of a drill scenario's answer for it, and of its
row in the report. Nested calls nest the prefix (``a.b.step``).

Inside the child, templates see the child's own world: ``inputs`` are the values the call passed (rendered
in the caller, then typed and defaulted as the child declares), ``steps.<id>`` its own steps by their own
ids. The caller sees the child only through the call step: its output is the child's ``outputs:``, rendered
after the child's last step. The call's effect is the strongest of the child's steps (a call that writes is
gated like a write); each child step keeps its own gate, retries and rollback.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from engine import templates
from engine.errors import InputError, Problem, RunbookError, TemplateError
from engine.yamlsource import Source

if TYPE_CHECKING:
    from actions.base import Effect
    from actions.registry import Registry
    from engine.loader import LoadedRunbook
    from engine.machine import RunState, StepState
    from engine.model import Step
    from engine.runner import Runner, Use

CALL = "runbook.run"
SEP = "."  # between a call step's id and its child's step ids: never part of a written step id


@dataclass(frozen=True)
class Frame:
    """One runbook being driven: the top one (prefix ``""``) or a child inside a call (``"switch."``)."""

    prefix: str
    loaded: LoadedRunbook
    inputs: Mapping[str, Any]

    def own(self, sid: str) -> str:
        """A recorded step id as this runbook's templates name it."""
        return sid[len(self.prefix):]

    def view(self, steps: Mapping[str, Any]) -> Mapping[str, Any]:
        """The ``steps`` templates see here: this runbook's own steps by their own ids, no child's."""
        return StepsView(steps, self.prefix, self.loaded.step_ids)


class StepsView(Mapping[str, Any]):
    """One runbook's steps within a run's, by their own ids; made in O(1) for every render (a copy filtered
    per render made each step of a 500-step called runbook cost ~1 ms more)."""

    def __init__(self, steps: Mapping[str, Any], prefix: str, ids: Mapping[str, None]) -> None:
        self._steps, self._prefix, self._ids = steps, prefix, ids

    def __getitem__(self, key: str) -> Any:
        if key not in self._ids:
            raise KeyError(key)
        return self._steps[self._prefix + key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class Placed:
    """A step where it runs: its recorded id (namespaced inside a call) and the frame prefix it runs in."""

    step: Step  # with its recorded id
    prefix: str
    loaded: LoadedRunbook


def flatten(loaded: LoadedRunbook, prefix: str = "") -> Iterator[Placed]:
    """Every step of a run in order, each call followed by its child's steps (recursively)."""
    from engine.model import action_steps

    for step in action_steps(loaded.runbook.steps):
        sid = prefix + step.id
        yield Placed(step if not prefix else step.model_copy(update={"id": sid}), prefix, loaded)
        child = loaded.children.get(step.id)
        if step.action == CALL and child is not None:
            yield from flatten(child, sid + SEP)


def step_ids(loaded: LoadedRunbook) -> list[str]:
    """The ids a run of ``loaded`` records steps under: the state machine's steps."""
    return [p.step.id for p in flatten(loaded)]


def called(loaded: LoadedRunbook) -> dict[str, dict[str, str]]:
    """What run.started records of the runbooks a run calls, by call step id: a resume checks that each is
    still the text the run started with, as it does for the top one."""
    out: dict[str, dict[str, str]] = {}
    for p in flatten(loaded):
        child = p.loaded.children.get(p.step.id[len(p.prefix):]) if p.step.action == CALL else None
        if child is not None:
            out[p.step.id] = {"runbook": child.runbook.id, "path": child.path, "sha256": child.sha256}
    return out


def changed_since(loaded: LoadedRunbook, recorded: Mapping[str, Any]) -> list[str]:
    """Paths of called runbooks whose text differs from what ``run.started`` recorded (``called``)."""
    now = called(loaded)
    return sorted({str(was.get("path")) for sid, was in recorded.items()
                   if not isinstance(was, dict) or now.get(sid, {}).get("sha256") != was.get("sha256")})


def resume_index(loaded: LoadedRunbook, state: RunState, prefix: str = "") -> int:
    """Where a resumed run goes on among the top runbook's steps: the first not done (a call is not done
    until its child is, and then its child goes on from its own first step not done)."""
    from engine.model import members

    steps = loaded.runbook.steps
    return next((i for i, u in enumerate(steps) if not all(state.steps[prefix + s.id].done for s in members(u))),
                len(steps))


def counted(state: RunState) -> Iterator[StepState]:
    """The steps a run's counts include: not those of a call that never started (skipped, or not reached),
    which are no more pending than a skipped step's work is."""
    from engine.events import StepStatus, parent_of

    for sid, st in state.steps.items():
        call = (parent_of(sid) or sid).rpartition(SEP)[0]  # a loop item's key may hold a dot: not a call's
        if call and state.steps[call].status in (StepStatus.PENDING, StepStatus.SKIPPED):
            continue
        yield st


def gate_ids(loaded: LoadedRunbook) -> list[str]:
    """Every gate a run may ask (``--approve`` names them)."""
    out = []
    for p in flatten(loaded):
        out.append(p.step.id)
        if p.step.rollback is not None:
            out.append(f"{p.step.id}.rollback")
    return out


def effect_of(child: LoadedRunbook, registry: Registry) -> Effect:
    """The strongest effect of the child's steps (as each is written, like any step's): the call's effect."""
    from actions.base import Effect

    order = [Effect.READ, Effect.NOTIFY, Effect.WRITE]
    strongest = Effect.READ
    from engine.model import action_steps

    for step in action_steps(child.runbook.steps):
        grandchild = child.children.get(step.id)
        if step.action == CALL and grandchild is not None:
            effect = effect_of(grandchild, registry)
        else:
            effect = registry.get(step.action).effect_of(step.with_)
        strongest = max(strongest, effect, key=order.index)
    return strongest


# --- loading and checking ----------------------------------------------------------------------------------


def find_child(name: str, caller: str) -> FsPath | None:
    """A called runbook's file: next to its caller first, then where ``breakglass list`` looks."""
    from engine.locate import SUFFIXES, search_dirs

    for d in [FsPath(caller).parent, *search_dirs()]:
        for suffix in SUFFIXES:
            if (d / f"{name}{suffix}").is_file():
                return d / f"{name}{suffix}"
    return None


def known_ids(caller: str) -> list[str]:
    from engine.locate import runbook_files, search_dirs

    return sorted({f.stem for f in runbook_files([FsPath(caller).parent, *search_dirs()])})


def load_children(steps: Sequence[Any], src: Source, registry: Registry,
                  calling: tuple[str, ...]) -> tuple[list[Problem], dict[str, LoadedRunbook]]:
    """Load the runbook each sound call step names; problems of the calls (unknown runbook, a cycle, inputs
    the child does not take or lacks) located at the call, and the children by call step id.

    ``calling``: the ids of the runbooks above this one, this one's last: a child among them is a cycle."""
    problems: list[Problem] = []
    children: dict[str, LoadedRunbook] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("action") != CALL:
            continue
        path = ("steps", index)
        args = step.get("with") or {}
        name = args.get("runbook")
        if not isinstance(name, str) or templates.is_template(name):
            problems.append(src.problem((*path, "with", "runbook") if "runbook" in args else (*path, "with"),
                                        "`runbook` must be a runbook id written out (not a template): what a "
                                        "run may do is known before it starts"))
            continue
        if step.get("on_failure") == "continue":
            problems.append(src.problem((*path, "on_failure"), "a call cannot go on after its runbook failed: "
                                        "write on_failure: continue on the called runbook's steps instead"))
        if name in calling:
            chain = " → ".join((*calling[calling.index(name):], name))
            problems.append(src.problem((*path, "with", "runbook"), f"call cycle: {chain}; a runbook may not "
                                        "call itself, directly or through others (the run would never end)"))
            continue
        found = find_child(name, src.file)
        if found is None:
            near = difflib.get_close_matches(name, known_ids(src.file), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            problems.append(src.problem((*path, "with", "runbook"), f"no runbook named '{name}'{hint}"))
            continue
        from engine.loader import load_text, read_text

        try:
            child = load_text(read_text(found), str(found), registry, expected_id=name, calling=calling)
        except RunbookError as exc:
            first = exc.problems[0].message if exc.problems else ""
            problems.append(src.problem((*path, "with", "runbook"), f"runbook '{name}' is invalid ("
                                        f"{len(exc.problems)} problem(s), listed with its file): {first}"))
            problems += exc.problems
            continue
        problems += _input_problems(child, args.get("inputs"), (*path, "with"), src)
        children[str(step.get("id"))] = child
    return problems, children


def _input_problems(child: LoadedRunbook, given: Any, path: tuple[Any, ...], src: Source) -> list[Problem]:
    problems: list[Problem] = []
    declared = child.runbook.inputs
    given = given if isinstance(given, dict) else {}
    for name in given:
        if name not in declared:
            near = difflib.get_close_matches(str(name), list(declared), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            problems.append(src.problem((*path, "inputs", name), f"runbook '{child.runbook.id}' has no input "
                                        f"'{name}'{hint}; it takes: {', '.join(declared) or 'none'}", key=True))
    for name, spec in declared.items():
        if spec.is_required and spec.default is None and not spec.env and name not in given:
            where = (*path, "inputs") if "inputs" in (_src_value(src, path) or {}) else path
            problems.append(src.problem(where, f"runbook '{child.runbook.id}' needs input '{name}'"))
    return problems


def _src_value(src: Source, path: tuple[Any, ...]) -> Any:
    node: Any = src.data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


# --- running ---------------------------------------------------------------------------------------------


def child_frame(runner: Runner, call: Step) -> Frame:
    """The frame a call's child runs in: its inputs are the call's ``inputs`` rendered where the call is."""
    from engine import inputs

    child = runner.frame.loaded.children[runner.frame.own(call.id)]
    given = templates.render_value(dict(call.with_.get("inputs") or {}), runner.context())
    try:
        values = inputs.resolve(child.runbook, given)
    except InputError as exc:
        raise InputError(f"inputs of runbook '{child.runbook.id}': {exc}") from None
    runner.redactor.add(*inputs.secret_values(child.runbook, values))
    return Frame(call.id + SEP, child, values)


def invoke(runner: Runner, use: Use) -> dict[str, Any] | None:
    """A call step: start, gate, run the child's steps not done yet, then record the child's outputs as
    the step's output. A child step that stops the run (refused, interrupted) stops it here too; one that
    fails fails the call, and the call's ``on_failure`` (abort or rollback) decides what follows."""
    from actions.base import Effect
    from engine.events import RecordType as T
    from engine.events import RunStatus
    from engine.runner import _Stop

    call = use.step
    frame = runner.frame_of(call)
    effect = effect_of(frame.loaded, runner.registry)
    args = runner.redactor({"runbook": frame.loaded.runbook.id, "inputs": dict(frame.inputs)})
    runner.reporter.step_begins(call.id, use.title)
    runner.record(T.STEP_STARTED, {"step": call.id, "title": use.title, "action": CALL, "effect": str(effect),
                                   "args": args}, sync=effect is not Effect.READ)
    begun = time.monotonic()
    steps = [p.step for p in flatten(frame.loaded, frame.prefix) if p.prefix == frame.prefix]
    changing = [frame.own(s.id) for s in steps if s.action == CALL
                or runner.registry.get(s.action).effect_of(s.with_) is not Effect.READ]
    plan = {"summary": f"run runbook '{frame.loaded.runbook.id}' ({len(steps)} steps); these may change the "
                       f"world, each asked on its own: {', '.join(changing)}",
            "changes": [{"runbook": frame.loaded.runbook.id, "steps": [s.id for s in steps]}]}
    refused = runner._gate(use, effect, args, plan if effect is not Effect.READ else None)
    if refused is not None:
        return refused
    try:
        with runner.in_frame(frame):
            from engine.model import Group

            placed = {p.step.id: p.step for p in flatten(frame.loaded, frame.prefix) if p.prefix == frame.prefix}
            units = frame.loaded.runbook.steps
            for unit in units[resume_index(frame.loaded, runner.state, frame.prefix):]:
                if isinstance(unit, Group):
                    runner._group(unit)
                else:
                    runner._step(placed[frame.prefix + unit.id])
            output = _outputs(runner, frame)
    except _Stop as stop:
        if runner.state.outcome in (RunStatus.REFUSED, RunStatus.INTERRUPTED):
            raise
        return runner._failed(use, f"runbook '{frame.loaded.runbook.id}' stopped: {stop.reason}", {},
                              time.monotonic() - begun, 1)
    except TemplateError as exc:
        return runner._failed(use, f"{_located_output(frame, exc)}: {' '.join(str(exc).split())}", {},
                              time.monotonic() - begun, 1)
    return runner.record(T.STEP_SUCCEEDED, {"step": call.id, "output": output,
                                            "message": f"runbook '{frame.loaded.runbook.id}' finished",
                                            "duration_ms": round((time.monotonic() - begun) * 1000, 3),
                                            "attempts": 1})


def _outputs(runner: Runner, frame: Frame) -> dict[str, Any]:
    """The child's ``outputs:`` rendered over its steps. In a dry-run its changes were only planned, so an
    output that reads what a change would have returned is None rather than a failure."""
    ctx = runner.context()
    out: dict[str, Any] = {}
    for name, template in frame.loaded.runbook.outputs.items():
        try:
            out[name] = templates.render_value(template, ctx)
        except TemplateError:
            if runner.mode != "dry-run":
                raise
            out[name] = None
    return out


def _located_output(frame: Frame, exc: TemplateError) -> str:
    return frame.loaded.where(("outputs",), exc.template)


def check_outputs(outputs: Any, src: Source) -> Iterator[Problem]:
    """Output names a template can read (``steps.<call>.output.<name>``)."""
    if not isinstance(outputs, dict):
        return
    for name in outputs:
        if not isinstance(name, str) or not name.isidentifier():
            yield src.problem(("outputs", name), f"output name '{name}' must be a valid identifier (letters, "
                              "digits, _): the caller reads it as steps.<call>.output.<name>", key=True)

