"""Drills: a runbook run against a simulated world described by a scenario file, then graded.

A drill walks the same engine path as a live run (render → plan → gate → apply → record); only the world is
swapped. Actions whose effect stays on this machine and talk to no one (``manual``, ``assert``, ``log.note``,
``mail.rejections``, ``wait.sleep`` with its wait cut to zero) run for real, and ``comms.post`` renders and
records its text for real with its webhook removed; every other action is answered by the scenario, by
step id, and never called. As a second fence, the whole drill runs with outbound sockets refused in-process.

Scenario files live next to the runbook: ``scenarios/<runbook id>/<NN-name>.yaml``; the first in file-name
order is the default. The file format::

    title: ...                      description: markdown shown at the start
    inputs: {domain: example.com}   the drill's inputs (-i overrides them)
    steps:
      <step id>:                                a loop's item is `<step id>[<key>]`; else its step answers
        output: {...} | outputs: [{...}, ...]   what the action returns (attempt by attempt; last repeats)
        ok: true | fail: "message"              a failed attempt
        approvals: [{by: alice, answer: approve}, {by: bob, answer: deny, reason: ...}, {answer: timeout}]
                                                other people at a four-eyes gate, in order (none: it times out)
        duration: 0.4                           simulated seconds (reported, never slept)
        plan: {summary: ..., changes: [...]}    a mutating step's plan
        effects: {<step id>: {output: ...}}     after this step applies, later steps see this instead
        rollback: {output: ..., fail: ...}      what undoing this step returns (``outputs``: per attempt)
    expect:
      steps: {<step id>: succeeded|failed|skipped|planned|refused|rolled_back|rollback_failed|...}
      gates: {<gate id>: approved|denied}
      outcome: succeeded|failed|refused|rolled_back|rollback_incomplete|interrupted
      reminders: 1                              how often a customer update fell due (`comms:` cadence)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actions.base import Action, ActionContext, ActionResult, Params, Plan
from engine import events
from engine.errors import Problem, RunbookError
from engine.events import DECISIONS, RecordType
from engine.scenario import (  # re-exported: the drill's public API
    ANSWER_KEYS,
    Expectation,
    Scenario,
    find_scenario,
    load_scenario,
    scenario_files,
    scenario_name,
)
from engine.world import LiveWorld

__all__ = ["Expectation", "Scenario", "SimulatedWorld", "find_scenario", "load_scenario", "run_drill",
           "scenario_files", "scenario_name"]

T = RecordType
DEFAULT_RUNBOOK = "registrar-suspension"
# Actions that only touch this machine and this operator: they run for real in a drill.
# mail.rejections only reads the text it is given (an earlier step's simulated output).
LOCAL_ACTIONS = frozenset({"manual", "assert", "log.note", "wait.sleep", "mail.rejections",
                           "followup.add"})
# Actions that notify people but whose text is the point of rehearsing them: a drill renders and records it
# for real, with every way out (the webhook) removed, so the report shows the words a live run would send.
RENDERED_LOCALLY = frozenset({"comms.post"})

# --- the simulated world ---------------------------------------------------------------------------------


class SimulatedWorld:
    """Answers actions from a scenario by step id; runs only local, harmless actions for real."""

    def __init__(self, scenario: Scenario, live: LiveWorld | None = None) -> None:
        self.scenario = scenario
        self.live = live or LiveWorld()
        self.specs: dict[str, dict[str, Any]] = {k: dict(v) for k, v in scenario.steps.items()}
        self.attempts: dict[str, int] = {}
        self.applied: set[str] = set()
        self.notes: list[str] = []
        self.durations: dict[str, float] = {}
        self.started = time.time()

    # World protocol ------------------------------------------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Retry delays are simulated time: a drill never sleeps through them."""

    def now(self) -> float:
        """Simulated time: the drill's start plus every simulated duration so far (a scenario's `duration:`,
        a `wait.sleep`), so a scenario can let a customer update fall due without anyone waiting."""
        return self.started + sum(self.durations.values())

    def answers_at(self, gate_id: str) -> list[dict[str, Any]] | None:
        """The scenario's approvers at a four-eyes gate, in the order they answer; nobody when it scripts none
        (the gate then times out, as it would with nobody there)."""
        if gate_id.endswith(".rollback"):
            return list(self.specs.get(self._described(gate_id.removesuffix(".rollback")), {}).get("rollback", {})
                        .get("approvals")
                        or [])
        # A loop asking per item (``confirm: {each: true}``): its items' approvers are the loop's unless named.
        return list(self.specs.get(self._described(gate_id), {}).get("approvals") or [])

    def run(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, *,
            rollback: bool = False) -> ActionResult:
        if rollback:
            return self._rollback(step_id)
        if action.name in LOCAL_ACTIONS:
            return self._local(step_id, action, params, ctx)
        return self._answer(step_id)

    def plan(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, *,
             rollback: bool = False) -> Plan:
        if action.name in RENDERED_LOCALLY and not rollback:
            return self.live.plan(step_id, action, _offline(params), ctx)
        spec = self.specs.get(self._described(step_id), {}).get("plan")
        if rollback or not isinstance(spec, dict):
            shown = {k: v for k, v in params.model_dump(mode="json", by_alias=True).items() if v is not None}
            return Plan(summary=f"simulated: {action.name} {shown}")
        refused = spec.get("refused")
        return Plan(
            summary=str(spec.get("summary", f"simulated: {action.name}")),
            changes=list(spec.get("changes") or []),
            refused=str(refused) if refused else None,
        )

    def apply(
        self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, plan: Plan, *,
        rollback: bool = False
    ) -> ActionResult:
        if rollback:
            return self._rollback(step_id)
        if action.name in RENDERED_LOCALLY:
            return self.live.apply(step_id, action, _offline(params), ctx, plan)
        result = self._answer(step_id)
        if result.ok:
            self._applied(step_id)
        return result

    # Answers -------------------------------------------------------------------------------------------

    def _local(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext) -> ActionResult:
        if action.name == "wait.sleep":
            self.durations.setdefault(step_id, float(getattr(params, "seconds", 0.0)))
            params = params.model_copy(update={"seconds": 0.0})
        if "duration" in self.specs.get(self._described(step_id), {}):
            self.durations[step_id] = float(self.specs[self._described(step_id)]["duration"])
        return self.live.run(step_id, action, params, ctx)

    def _described(self, step_id: str) -> str:
        """Where the scenario describes a step: under its own id, or for a loop's item (``scan[2]``) that the
        scenario does not name, under its loop step's id (every item answers the same)."""
        parent = events.parent_of(step_id)
        return parent if step_id not in self.specs and parent is not None and parent in self.specs else step_id

    def _answer(self, step_id: str) -> ActionResult:
        spec = self.specs.get(self._described(step_id))
        if spec is None:
            note = f"scenario does not describe step {step_id}"
            if note not in self.notes:
                self.notes.append(note)
            return ActionResult(
                {"simulated": True}, True, "simulated: the scenario does not describe this step"
            )
        n = self.attempts.get(step_id, 0)
        self.attempts[step_id] = n + 1
        if "duration" in spec:
            self.durations[step_id] = self.durations.get(step_id, 0.0) + float(spec["duration"])
        return _result_of(spec, n)

    def _rollback(self, step_id: str) -> ActionResult:
        spec = self.specs.get(self._described(step_id), {}).get("rollback")
        if not isinstance(spec, dict):
            return ActionResult({"simulated": True, "rolled_back": True}, True, "simulated rollback")
        key = f"{step_id}.rollback"  # an undo retries like a step: ``outputs`` answers attempt by attempt
        n = self.attempts.get(key, 0)
        self.attempts[key] = n + 1
        return _result_of(spec, n)

    def _applied(self, step_id: str) -> None:
        """The step changed the simulated world: the steps it affects answer differently from now on."""
        self.applied.add(step_id)
        for target, change in (self.specs.get(self._described(step_id), {}).get("effects") or {}).items():
            current = dict(self.specs.get(str(target), {}))
            change = dict(change or {})
            if ANSWER_KEYS & change.keys():
                current = {k: v for k, v in current.items() if k not in ANSWER_KEYS}
            self.specs[str(target)] = {**current, **change}
            self.attempts.pop(str(target), None)

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Rebuild the world of a resumed drill: redo the effects of the steps that applied before."""
        effects: dict[str, str] = {}
        for rec in records:
            kind, sid = rec.get("type"), str(rec.get("step", ""))
            if kind == T.STEP_STARTED:
                effects[sid] = str(rec.get("effect", "read"))
            elif kind == T.STEP_SUCCEEDED and effects.get(sid, "read") != "read":
                self._applied(sid)


def _offline(params: Params) -> Params:
    """The arguments without a way to reach anyone (a drill never sends)."""
    return params.model_copy(update={"url": None}) if "url" in type(params).model_fields else params


def _result_of(spec: Mapping[str, Any], attempt: int) -> ActionResult:
    outputs = spec.get("outputs")
    if isinstance(outputs, list) and outputs:
        output = outputs[min(attempt, len(outputs) - 1)]
    else:
        output = spec.get("output", {})
    output = dict(output) if isinstance(output, dict) else {"value": output}
    if spec.get("fail") is not None:
        return ActionResult(output, False, str(spec["fail"]))
    ok = bool(spec.get("ok", True))
    return ActionResult(output, ok, str(spec.get("message") or ("" if ok else "simulated failure")))


# --- no network, in-process ------------------------------------------------------------------------------


@contextmanager
def no_network() -> Iterator[None]:
    """Refuse every outbound connection and name lookup made in this process while the drill runs."""
    from engine.errors import ActionError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ActionError("network access is disabled during a drill")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        refuse()

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.family == socket.AF_UNIX:
            return real_connect_ex(self, address)
        refuse()
        return 1

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    patches: list[tuple[Any, str, Any]] = [
        (socket.socket, "connect", guarded_connect),
        (socket.socket, "connect_ex", guarded_connect_ex),
        (socket.socket, "sendto", refuse),
        (socket, "getaddrinfo", refuse),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


# --- grading ---------------------------------------------------------------------------------------------


def grade(
    scenario: Scenario,
    records: list[dict[str, Any]],
    step_status: Mapping[str, str],
    notes: list[str],
    durations: Mapping[str, float],
) -> dict[str, Any]:
    """The drill.graded record's data: what matched the expected path and where the team went elsewhere."""
    exp = scenario.expect
    deviations: list[str] = []
    score = 0
    for sid, want in exp.steps.items():
        was = step_status.get(sid, "not in the runbook")
        if was == want:
            score += 1
        else:
            deviations.append(f"step {sid}: expected {want}, was {was}")
    decisions = _decisions(records)
    last: dict[str, str] = {d["gate"]: "approved" if d["approved"] else "denied" for d in decisions}
    for gid, want in exp.gates.items():
        was = last.get(gid, "never asked")
        if was == want:
            score += 1
        else:
            deviations.append(f"gate {gid}: expected {want}, was {was}")
    if exp.reminders is not None:
        was_reminded = sum(1 for r in records if r["type"] == T.COMMS_DUE)
        if was_reminded == exp.reminders:
            score += 1
        else:
            deviations.append(f"customer-update reminders: expected {exp.reminders}, were {was_reminded}")
    outcome = events.outcome(records)  # the finish hook runs before run.finished: how the run is ending
    if exp.outcome:
        if outcome == exp.outcome:
            score += 1
        else:
            deviations.append(f"outcome: expected {exp.outcome}, was {outcome}")
    return {
        "scenario": scenario.name,
        "score": score,
        "total": exp.total,
        "deviations": deviations + notes,
        "decisions": decisions,
        "outcome_expected": exp.outcome,
        "outcome": outcome,
        "simulated_durations": dict(durations),
    }


def _decisions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        if r["type"] in DECISIONS:
            out.append(
                {
                    "gate": r.get("gate"),
                    "approved": r["type"] == T.GATE_APPROVED,
                    "by": r.get("by"),
                    "how": r.get("how"),
                    "waited_s": r.get("waited_s", 0.0),
                }
            )
    return out


def grader(scenario: Scenario, world: SimulatedWorld) -> Callable[[Any], None]:
    """A RunOptions.before_finish hook: reads the run's own log and records ``drill.graded``."""
    def hook(runner: Any) -> None:
        records = [r.to_dict() for r in runner.writer.records()]
        status = {sid: str(st.status) for sid, st in runner.state.steps.items()}
        runner.record(T.DRILL_GRADED, grade(scenario, records, status, world.notes, world.durations))

    return hook


# --- wiring ----------------------------------------------------------------------------------------------


def drill_extra(scenario: Scenario) -> dict[str, Any]:
    return {
        "drill": {
            "scenario": scenario.name,
            "title": scenario.title,
            "scenario_path": scenario.path,
            "scenario_sha256": scenario.sha256,
            "description": scenario.description,
        }
    }


def drill_options(scenario: Scenario) -> dict[str, Any]:
    """RunOptions fields for a drill of ``scenario``."""
    world = SimulatedWorld(scenario)
    return {
        "mode": "drill",
        "world": world,
        "before_finish": grader(scenario, world),
        "extra_start": drill_extra(scenario),
    }


def drill_options_for_resume(stored: Any) -> dict[str, Any]:
    """RunOptions fields to resume a drill: its scenario (unchanged) and a world replayed to where it was."""
    meta = stored.started.get("drill") or {}
    path = Path(str(meta.get("scenario_path", "")))
    if not path.is_file():
        raise RunbookError(
            [Problem(str(path), 1, 1, "the drill's scenario file is gone; it cannot be resumed")]
        )
    scenario = load_scenario(path)
    if meta.get("scenario_sha256") and scenario.sha256 != meta["scenario_sha256"]:
        raise RunbookError(
            [
                Problem(
                    str(path),
                    1,
                    1,
                    "the scenario changed since this drill started; start a "
                    "new drill instead of resuming this one",
                )
            ]
        )
    world = SimulatedWorld(scenario)
    world.replay(stored.records)
    return {"world": world, "before_finish": grader(scenario, world), "inputs": dict(scenario.inputs)}


def run_drill(
    loaded: Any, scenario: Scenario, given: Mapping[str, Any], opts: Any, reporter: Any, store: Any = None
) -> Any:
    """Start a drill: scenario inputs overridden by ``given``, no network, graded at the end."""
    from engine.session import start

    for key, value in drill_options(scenario).items():
        setattr(opts, key, value)
    with no_network():
        return start(loaded, {**scenario.inputs, **given}, opts, reporter, store)

