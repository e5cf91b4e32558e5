"""Drives a run: render → plan → gate → apply → record, one step at a time. The only engine module with I/O.

Every record goes to the audit log first, then into the state machine, then to the reporter. Every record is
durable before the next action is called: the record written just before a call (``step.started``,
``step.applying``, ``step.retried``) is synced, and its sync makes what came before it durable too (one
fsync or commit), so an outcome is written without waiting: the next step's start, a gate, or the run's end
makes it durable. A dry-run takes the same path and stops after the plan; a drill takes it against a
simulated world.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from actions.base import Action, ActionContext, ActionResult, Effect, Params, Plan
from actions.clients import fanout
from actions.registry import Registry
from engine import calls, comms, followups, loops, signers, templates
from engine import team as team_file
from engine.approvals import APPROVE, OpenGate, Tally
from engine.audit import AuditRecord, canonical, utc_now
from engine.console import Reporter
from engine.errors import ActionError, ActionTimeout, AuditError, BreakglassError, TemplateError
from engine.events import DRY_RUN_SKIP, RecordType, RunStatus, StepStatus, item_id, left_undone, parent_of
from engine.execution import call_with_timeout, sigterm_as_interrupt
from engine.gates import GateDecision, Gatekeeper, GateRequest, describe
from engine.i18n import _
from engine.loader import LoadedRunbook
from engine.machine import RunState
from engine.model import Announce, Gate, Group, Rollback, Step, action_steps, gate_for, repeat_note, retry_policy
from engine.redact import Redactor, declared_secrets, declares_secrets
from engine.rollbacks import rollback_of
from engine.store.base import RunLog
from engine.world import LiveWorld, World

T = RecordType
R = TypeVar("R")
# How often a gate waiting for other people looks at its timeout. Approvals themselves arrive as the store
# announces them (PostgreSQL: LISTEN/NOTIFY; files: following the log), not on this tick.
APPROVAL_TICK_S = 0.5
# What ``_gate`` returns when re-planning found another plan than the one approved: plan and ask again.
_VOIDED: dict[str, Any] = {"voided": True}


class _Stop(Exception):
    """Internal: the run ends here; its records say how (``RunState.outcome``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Lifecycle:
    """The records one use of an action writes: a step's, or a rollback's. None: not recorded for it."""

    started: RecordType
    planned: RecordType | None
    applying: RecordType | None
    retried: RecordType
    succeeded: RecordType
    failed: RecordType
    skipped: RecordType


STEP = Lifecycle(T.STEP_STARTED, T.STEP_PLANNED, T.STEP_APPLYING, T.STEP_RETRIED, T.STEP_SUCCEEDED,
                 T.STEP_FAILED, T.STEP_SKIPPED)
ROLLBACK = Lifecycle(T.ROLLBACK_STARTED, None, None, T.ROLLBACK_RETRIED, T.ROLLBACK_SUCCEEDED,
                     T.ROLLBACK_FAILED, T.ROLLBACK_SKIPPED)


@dataclass(frozen=True)
class Item:
    """One item of a ``for_each`` step: its key (index or mapping key) and value (``item_key``, ``item``)."""

    key: Any
    value: Any


@dataclass(frozen=True)
class Use:
    """One use of an action by the runner: a step, one item of a loop step, or the rollback that undoes a
    step. All take ``invoke``."""

    step: Step  # the step it belongs to: its id names every record and the gate
    spec: Step | Rollback  # the action, its arguments and how it is called (confirm, retries, until, ...)
    title: str  # rendered once
    item: Item | None = None

    @property
    def sid(self) -> str:
        """The id its records carry: the step's, or ``step[key]`` for an item."""
        return self.step.id if self.item is None else item_id(self.step.id, self.item.key)

    @property
    def rollback(self) -> bool:
        return self.spec is not self.step

    @property
    def records(self) -> Lifecycle:
        return ROLLBACK if self.rollback else STEP

    @property
    def gate_id(self) -> str:
        return f"{self.sid}.rollback" if self.rollback else self.sid

    @property
    def timeout(self) -> float | None:
        return self.step.timeout if self.spec.timeout is None else self.spec.timeout  # an undo: the step's


@dataclass
class Call:
    """A use of an action rendered, recorded as started and, if it changes the world, planned: what its gate
    shows, and what it applies once the gate opens."""

    action: Action[Any]
    params: Params
    effect: Effect
    actx: ActionContext
    begun: float
    plan: Plan | None = None
    plan_data: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    run_id: str
    status: RunStatus
    head: str
    note: str = ""  # said to the operator when nothing ran (e.g. resuming a finished run)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


@dataclass
class Runner:
    loaded: LoadedRunbook
    writer: RunLog
    state: RunState
    gates: Gatekeeper
    redactor: Redactor
    inputs: dict[str, Any]
    reporter: Reporter
    registry: Registry = field(default_factory=Registry)
    world: World = field(default_factory=LiveWorld)
    settings: dict[str, Any] = field(default_factory=dict)
    before_finish: Callable[[Runner], None] | None = None  # e.g. a drill's grading, recorded before the end
    started_ts: str = ""
    # The store's feed of this run's records (``RunStore.follow``): how a gate waiting for other people hears
    # of their approvals the moment they are durable. None: read the log on each tick instead.
    follow: Callable[[int, float], Iterator[list[AuditRecord]]] | None = None
    # The team file (engine/team.py), read once per run: contacts for templates (`{{ contacts.dpo.phone }}`),
    # the legal regimes and the contacts for actions (ctx.settings["legal_regimes"], ["team_contacts"]; actions
    # never read engine config).
    team: team_file.Team = field(default_factory=team_file.load)
    # Each step's title as first rendered: text that came out of a render may hold ``{{ }}`` from an input or
    # an output, and rendering it again would run that (a ``{{ inputs.token|upper }}`` the redactor misses).
    _titles: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    # The runbook being driven now: the top one, or a called one inside a `runbook.run` step (engine.calls).
    frame: calls.Frame = field(init=False, repr=False)
    _frames: dict[str, calls.Frame] = field(default_factory=dict, init=False, repr=False)
    _placed: dict[str, calls.Placed] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.frame = calls.Frame("", self.loaded, self.inputs)
        self._frames[""] = self.frame
        self._placed = {p.step.id: p for p in calls.flatten(self.loaded)}
        # One screen: whatever asks the operator something (a gate, a manual step, the in-doubt question)
        # first stops the reporter's spinner, which would otherwise redraw the line the question is on.
        self.gates.terminal.before_prompt = self.reporter.pause
        self._waited = 0.0  # seconds this step spent waiting at gates: the operator's time, not the step's
        self._feed: Iterator[list[AuditRecord]] | None = None  # the store's feed, opened at the first gate
        self._contacts = self.team.template_context()  # built once: every render reads the same cards
        # The items of a concurrent loop and the steps of a parallel group record from worker threads: one
        # record at a time, in one order for the log, the machine and the terminal.
        self._recording = threading.RLock()
        self._driver: int | None = None  # the thread that runs the steps one after another (``execute``)
        # Customer updates (engine/comms.py): what the run owes its customers and when. A resumed run reads it
        # from its log (``resumed_comms``): a hand-over keeps the promise the last update made.
        spec = self.loaded.runbook.comms
        self._comms = comms.at_start(self.world.now(), spec.cadence_s) if spec is not None else None

    @property
    def mode(self) -> str:
        return self.state.mode

    # --- recording -------------------------------------------------------------------------------------

    def record(self, type_: RecordType, data: dict[str, Any], sync: bool = True, hold: bool = False
               ) -> dict[str, Any]:
        """Append, apply, report. ``hold``: an outcome the store may write with the next record (one commit
        for both), asked only by the thread driving the run, whose next record always comes before anything
        waits; never when the reporter shows records as written (a held one's number may still change)."""
        missing = type_.missing(data)
        if missing:  # an engine bug: caught before the log holds a record its readers cannot read
            raise AssertionError(f"a {type_} record needs {', '.join(missing)}")
        hold = hold and threading.get_ident() == self._driver and not getattr(self.reporter, "shows_records", True)
        with self._recording:
            rec = self.writer.append(type_, self.redactor.record(data), sync=sync, hold=hold)
            self.state.apply(rec)
            self.reporter.event(rec)
        return rec

    # --- the run ---------------------------------------------------------------------------------------

    def execute(self, start: int) -> RunOutcome:
        """Run steps from index ``start`` to the end, then record how the run finished."""
        self._driver = threading.get_ident()
        status, reason = None, ""
        try:
            with sigterm_as_interrupt():
                for unit in self.loaded.runbook.steps[start:]:
                    self._comms_due()
                    if isinstance(unit, Group):
                        self._group(unit)
                    else:
                        self._step(unit)
        except _Stop as stop:
            reason = stop.reason
        except KeyboardInterrupt:
            # Said outright: between steps or during a rollback, no step is there to record it.
            status, reason = RunStatus.INTERRUPTED, "interrupted by the operator (Ctrl-C) or a termination signal"
            current = self._current_step()
            if current:
                self.record(T.STEP_INTERRUPTED, {"step": current})
        finally:
            self.reporter.close()
            if self._feed is not None:
                self._feed.close()  # type: ignore[attr-defined]  # a generator: ends its session
        return self.finish(reason, status)

    def finish(self, reason: str, status: RunStatus | None = None) -> RunOutcome:
        """Record how the run ended: what its records say (``RunState.outcome``) unless ``status`` says."""
        if self.before_finish is not None:
            self.before_finish(self)
        status = self.state.outcome if status is None else status
        counts: dict[str, int] = {}
        for st in calls.counted(self.state):
            label = "failed (continued)" if st.status is StepStatus.FAILED and st.continued else str(st.status)
            counts[label] = counts.get(label, 0) + 1
        still_open = followups.open_items(self.state.step_ids, self.state.context(), self.state.run_id, str(status))
        rec = self.record(T.RUN_FINISHED, {"run": self.state.run_id, "status": str(status), "reason": reason,
                                           "counts": counts, "open": still_open})
        return RunOutcome(self.state.run_id, status, rec["hash"])

    def _current_step(self) -> str | None:
        # The last one: inside a call, the call step runs while its child's step does; the child's is the one.
        for sid in reversed(self.state.step_ids):
            if self.state.steps[sid].status in (StepStatus.RUNNING, StepStatus.APPLYING):
                return sid
        return None

    def context(self, result: Any = None, use: Use | None = None) -> dict[str, Any]:
        views = self.state.context()
        ctx: dict[str, Any] = {
            "inputs": self.frame.inputs,
            "steps": self.frame.view(views) if self.loaded.children else views,
            "run": {"id": self.state.run_id, "mode": self.mode, "runbook": self.frame.loaded.runbook.id,
                    "operator": self.gates.operator, "started": self.started_ts,
                    # the render time: how long from *now* a cache may hold an answer, a rung may wait
                    "now": utc_now()},
            "contacts": self._contacts,
        }
        if result is not None:
            ctx["result"] = result
        if use is not None and use.item is not None:
            ctx["item"] = use.item.value
            ctx["item_key"] = use.item.key
        return ctx

    def _comms_due(self) -> None:
        """Remind the operator, once per due time, that customers are owed an update: the runbook's
        ``comms.cadence`` passed since the last ``comms.post`` (or the start). Checked between steps and
        before every gate, where the operator is looking. A dry-run sends nothing, so owes nothing."""
        spec, owed = self.loaded.runbook.comms, self._comms
        if spec is None or owed is None or self.mode == "dry-run":
            return
        reminded = owed.reminder(self.world.now())
        if reminded is None or reminded.due is None:
            return
        self._comms = reminded
        self.record(T.COMMS_DUE, {"due": comms.iso(reminded.due), "last": comms.iso(reminded.last),
                                  "cadence_s": spec.cadence_s, "kinds": spec.kinds()})

    def resumed_comms(self, records: list[dict[str, Any]]) -> None:
        """Take what the run owes its customers from its log (a resume): the due time the last update promised,
        or the run's start plus the cadence, never the moment of the resume."""
        spec = self.loaded.runbook.comms
        if spec is not None:
            self._comms = comms.from_records(records, spec.cadence_s)

    def learn_declared_secrets(self) -> None:
        """Secrets that actions declare in arguments needing only the inputs (a header built from a plain
        input, a webhook URL, a literal password): known before ``run.started`` records the inputs.

        Each argument renders on its own, so one that needs an earlier step's output (a message text) does
        not hide the secret in another; those are learned again when their step runs."""
        ctx = {"inputs": self.inputs, "steps": self.state.context(),
               "run": {"id": "", "mode": self.mode, "operator": "", "runbook": self.loaded.runbook.id,
                       "started": "", "now": ""}, "contacts": self._contacts}
        for step in action_steps(self.loaded.runbook.steps):
            # An auto undo's arguments are its step's; a gate's announcement holds a webhook URL too.
            specs: list[Step | Rollback] = [step, step.rollback] if isinstance(step.rollback, Rollback) else [step]
            uses = [(spec.action, spec.with_) for spec in specs]
            uses += [(spec.confirm.announce.action, spec.confirm.announce.with_) for spec in specs
                     if isinstance(spec.confirm, Gate) and spec.confirm.announce is not None]
            for name, args in uses:
                if declares_secrets(self.registry, name):
                    self.redactor.add(*declared_secrets(self.registry.get(name), args, ctx))

    # --- one step, one rollback: one path --------------------------------------------------------------

    def _step(self, step: Step) -> None:
        use = Use(step, step, self._title(step))

        def when_then_invoke() -> dict[str, Any] | None:
            if step.when is not None and not templates.evaluate(step.when, self.context()):
                return self.record(T.STEP_SKIPPED, {"step": step.id, "title": use.title,
                                                    "reason": "its `when` was false"})
            # A called runbook never speaks to customers: its caller decides what they hear (one status page,
            # one cadence, the top runbook's), and a switch made for another reason (a defaced shop taken
            # offline) must not announce "moving to our standby" in words written for an outage.
            caller = self._caller() if step.action == comms.ACTION else None
            if caller is not None:
                return self.record(T.STEP_SKIPPED, {"step": step.id, "title": use.title, "reason": (
                    f"called by runbook '{caller}', which decides what customers are told")})
            if step.action == calls.CALL:
                return calls.invoke(self, use)
            return self._loop(use) if step.for_each is not None else self._invoke(use)

        self._guarded(use, when_then_invoke)

    def _caller(self) -> str | None:
        """Inside a called runbook: the id of the runbook that calls it; None at the top."""
        if not self.frame.prefix:
            return None
        above = [f for p, f in self._frames.items() if p != self.frame.prefix and self.frame.prefix.startswith(p)]
        return max(above, key=lambda f: len(f.prefix)).loaded.runbook.id

    def _guarded(self, use: Use, call: Callable[[], R]) -> R | dict[str, Any]:
        try:
            return call()
        except AuditError:
            raise  # without a log nothing else may happen: the run stops
        except (BreakglassError, ValueError) as exc:  # rendering, argument or planning failures
            return self._failed(use, self._located(use, exc), {}, 0.0, 0)

    def _located(self, use: Use, exc: BaseException, *under: str) -> str:
        """The error in one line; a template's failure names the file:line:col where it is written."""
        if not isinstance(exc, TemplateError):
            return _one_line(exc)
        frame = self._frames.get(self._placed[use.step.id].prefix, self.frame)
        within = ("rollback", *under) if use.rollback else under
        where = frame.loaded.where((*_path_of(frame.loaded, frame.own(use.step.id)), *within), exc.template)
        return f"{where}: {_one_line(exc)}"

    @contextlib.contextmanager
    def in_frame(self, frame: calls.Frame) -> Iterator[None]:
        """Drive ``frame``'s runbook: its inputs and its steps are what templates see."""
        outer, self.frame = self.frame, frame
        try:
            yield
        finally:
            self.frame = outer

    def frame_of(self, call: Step) -> calls.Frame:
        """The frame of the child a call step runs (made once, when the call first runs or an undo needs it)."""
        prefix = call.id + calls.SEP
        if prefix not in self._frames:
            self._frames[prefix] = calls.child_frame(self, call)
        return self._frames[prefix]

    def _frame_at(self, prefix: str) -> calls.Frame:
        """The frame a step with this prefix runs in, made from the calls above it when needed (a resumed run
        undoing a child step whose call finished before the crash)."""
        if prefix not in self._frames:
            call = self._placed[prefix[:-len(calls.SEP)]]
            with self.in_frame(self._frame_at(call.prefix)):
                self.frame_of(call.step)
        return self._frames[prefix]

    def _invoke(self, use: Use) -> dict[str, Any] | None:
        """render → plan → gate → apply → verify → record, for a step, a loop's item or the rollback of one.

        Returns the record that ended it, or None when a dry-run stopped the step after its plan."""
        call = self._open(use)
        return self._carry_out(use, call) if isinstance(call, Call) else call

    def _open(self, use: Use) -> Call | dict[str, Any] | None:
        """render → record started → plan: a Call ready for its gate, else how it ended before one (its
        plan was refused; a dry-run stops here, None)."""
        sid, spec, kinds = use.sid, use.spec, use.records
        action, params = self._prepare(spec.action, spec.with_, self.context(use=use))
        effect = action.effect_of(spec.with_)  # as written, never as rendered: output cannot lift a gate
        args_shown = self.redactor(params.model_dump(mode="json", by_alias=True, exclude_none=True))
        if not use.rollback:
            with self._recording:
                self.reporter.step_begins(sid, use.title)
        # A read item's start need not be durable before it runs: lost in a crash, the read runs again on
        # resume. Synced one by one, under the record lock, they made a concurrent loop serial.
        lazy = use.item is not None and effect is Effect.READ
        self.record(kinds.started, {"step": sid, "title": use.title, "action": spec.action, "effect": str(effect),
                                    "args": args_shown}, sync=not lazy)
        call = Call(action, params, effect, self._action_context(sid, use.timeout), time.monotonic())
        self._waited = 0.0
        if effect is Effect.READ:
            return call
        return self._planned(use, call, self.world.plan(sid, action, params, call.actx, rollback=use.rollback))

    def _planned(self, use: Use, call: Call, plan: Plan) -> Call | dict[str, Any] | None:
        """Record a plan: the Call that carries it, else how the use ended (a refused plan; a dry-run's stop)."""
        sid, kinds = use.sid, use.records
        plan_data = self._plan_data(plan)
        final = self.mode == "dry-run"
        if kinds.planned is not None:  # durable with the gate's question, or with step.applying
            self.record(kinds.planned, {"step": sid, **plan_data, "final": final, "refused": plan.refused,
                                        "gated": gate_for(use.spec.confirm, True) is not None}, sync=False)
        if plan.refused:
            return self._failed(use, f"plan refused: {plan.refused}", {"plan": plan_data}, 0.0, 0)
        if final:
            if use.rollback:  # nothing was changed, so nothing is left undone
                return self.record(kinds.skipped, {"step": sid, "reason": DRY_RUN_SKIP, **plan_data})
            return None
        return replace(call, plan=plan, plan_data=plan_data)

    def _carry_out(self, use: Use, call: Call, gated: bool = True) -> dict[str, Any] | None:
        """gate → apply → verify → record; ``gated`` False: a loop's one gate already let this item through."""
        if gated:
            ended, opened = self._plan_and_gate(use, call)
            if opened is None:
                return ended
            call = opened
        else:
            call = replace(call, begun=time.monotonic())  # the loop's gate wait is not this item's time
        sid, world, action, params, actx, plan = use.sid, self.world, call.action, call.params, call.actx, call.plan
        if plan is None:
            result, attempts = self._attempts(
                use, lambda: world.run(sid, action, params, actx, rollback=use.rollback), actx)
        else:
            if use.records.applying is not None:
                self.record(use.records.applying, {"step": sid})
            result, attempts = self._attempts(
                use, lambda: world.apply(sid, action, params, actx, plan, rollback=use.rollback), actx)
        return self._conclude(use, result, attempts, time.monotonic() - call.begun - self._waited)

    def _plan_and_gate(self, use: Use, call: Call) -> tuple[dict[str, Any] | None, Call | None]:
        """Ask the gate of an opened use: (None, the call to carry out) or (the record that ended it, None).
        When other people's approvals turn out void because the world moved while they read (a re-plan
        differs), it records the new plan and asks again."""
        if call.plan is None:  # a read: no plan to show
            refused = self._gate(use, call.effect, self._as_written(call.action, call.params), None)
            return (refused, None) if refused is not None else (None, call)
        sid, world = use.sid, self.world
        while True:
            fresh: list[Plan] = []

            def replan(c: Call = call) -> dict[str, Any]:
                fresh.append(world.plan(sid, c.action, c.params, c.actx, rollback=use.rollback))
                return self._plan_data(fresh[-1])

            ended = self._gate(use, call.effect, self._as_written(call.action, call.params), call.plan_data,
                               repeat_note(use.spec), replan)
            if ended is _VOIDED:
                again = self._planned(use, call, fresh[-1])
                if not isinstance(again, Call):
                    return again, None
                call = again
                continue
            if ended is not None:
                return ended, None
            if fresh:  # a re-plan that matched what was approved is the freshest
                call = replace(call, plan=fresh[-1], plan_data=self._plan_data(fresh[-1]))
            return None, call

    # --- a parallel group: read-only steps at once, each on the path above ---------------------------------

    def _group(self, group: Group) -> None:
        """Run the group's steps not done yet at once, each recorded as it finishes. Validation let in only
        reads without a gate, so no two questions and no two changes can meet; a failure that does not say
        ``continue`` stops the run once every running step has ended."""
        prefix = self.frame.prefix
        todo = [self._placed[prefix + s.id].step for s in group.parallel
                if not self.state.steps[prefix + s.id].done]
        if todo:
            fanout.call_all([partial(self._step, s) for s in todo], len(todo))

    # --- a for_each step: its items, each on the path above (engine.loops has the rules) ----------------

    def _loop(self, use: Use) -> dict[str, Any] | None:
        step = use.step
        loop = self.state.loops.get(step.id)
        effect = self.registry.get(step.action).effect_of(step.with_)
        with self._recording:
            self.reporter.step_begins(step.id, use.title)
        self.record(T.STEP_STARTED, {"step": step.id, "title": use.title, "action": step.action,
                                     "effect": str(effect), "args": {}}, sync=effect is not Effect.READ)
        if loop is None:  # a resumed loop goes on over the items it fixed, never a new render
            loop = loops.expand(templates.render_value(step.for_each, self.context()))
            self.record(T.LOOP_EXPANDED, {"step": step.id, "keys": loop.keys, "items": loop.values,
                                          "mapping": loop.mapping})
        items = [Use(step, step, f"{use.title} [{key}]", Item(key, value))
                 for key, value in zip(loop.keys, loop.values, strict=True)]
        todo = [u for u in items if not self.state.steps[u.sid].done]
        each = isinstance(step.confirm, Gate) and step.confirm.each
        if effect is Effect.READ or each or self.mode == "dry-run":
            if effect is Effect.READ and not each:
                refused = self._gate(use, effect, {"items": len(items)}, None)
                if refused is not None:
                    return self._skip_items(todo, refused)
            self._items(todo, (step.concurrency or 1) if effect is Effect.READ and not each else 1)
        else:
            refused = self._gated_items(use, effect, todo)
            if refused is not None:
                return refused
        return self._loop_ended(use, items)

    def _items(self, todo: list[Use], concurrency: int) -> None:
        """Each item on the invoke path; after a failure that does not say ``continue``, start no other."""
        stop = threading.Event()

        def one(item: Use) -> None:
            if stop.is_set():
                return
            ended = self._guarded(item, partial(self._invoke, item))
            if ended is not None and ended["type"] == T.STEP_FAILED and not ended.get("continued"):
                stop.set()

        if concurrency <= 1:
            for item in todo:
                one(item)
        else:
            fanout.call_all([partial(one, item) for item in todo], concurrency)

    def _gated_items(self, use: Use, effect: Effect, todo: list[Use]) -> dict[str, Any] | None:
        """A write loop: plan every item, ask once showing every plan, then apply them one by one. The one
        gate takes the path every gate takes: other people's approvals, and a re-plan of every item before
        applying (a plan that changed while they read voids their approvals, and the loop asks again)."""
        opened: list[tuple[Use, Call]] = []
        for item in todo:
            call = self._guarded(item, partial(self._open, item))
            if not isinstance(call, Call):
                if call is not None and not call.get("continued"):
                    return None  # a plan refused or an argument that did not render: apply none
                continue
            opened.append((item, call))
        while opened:
            fresh: dict[str, Plan] = {}

            def replan(now: list[tuple[Use, Call]] = opened) -> dict[str, Any]:
                for item, call in now:
                    fresh[item.sid] = self.world.plan(item.sid, call.action, call.params, call.actx)
                return loops.combined_plan([(_key(item), self._plan_data(fresh[item.sid])) for item, _ in now])

            plans = [(_key(item), call.plan_data or {}) for item, call in opened]
            refused = self._gate(use, effect, {"items": len(opened)}, loops.combined_plan(plans),
                                 repeat_note(use.spec), replan)
            if refused is _VOIDED:  # record each item's new plan, then ask again
                again: list[tuple[Use, Call]] = []
                for item, call in opened:
                    planned = self._planned(item, call, fresh[item.sid])
                    if not isinstance(planned, Call):
                        if planned is not None and not planned.get("continued"):
                            return None
                        continue
                    again.append((item, planned))
                opened = again
                continue
            if refused is not None:
                return self._skip_items([item for item, _ in opened], refused)
            if fresh:  # re-plans that matched what was approved are the freshest
                opened = [(item, replace(call, plan=fresh[item.sid], plan_data=self._plan_data(fresh[item.sid])))
                          for item, call in opened]
            break
        for item, call in opened:
            ended = self._guarded(item, partial(self._carry_out, item, call, False))
            if ended is not None and ended["type"] == T.STEP_FAILED and not ended.get("continued"):
                break
        return None

    def _skip_items(self, items: list[Use], refused: dict[str, Any]) -> dict[str, Any]:
        """The loop's gate said skip (a refusal stopped the run already): so do its items not yet done."""
        for item in items:
            if not self.state.steps[item.sid].done:
                self.record(T.STEP_SKIPPED, {"step": item.sid, "reason": "the loop's gate was refused; skipped"})
        return refused

    def _loop_ended(self, use: Use, items: list[Use]) -> dict[str, Any] | None:
        """Record how the whole loop ended, from its items' states."""
        states = [self.state.steps[item.sid] for item in items]
        counts: dict[str, int] = {}
        for st in states:
            counts[str(st.status)] = counts.get(str(st.status), 0) + 1
        output = {"count": len(items), **counts}
        failed = [item.sid for item, st in zip(items, states, strict=True)
                  if st.status is not StepStatus.SUCCEEDED and st.status is not StepStatus.SKIPPED
                  and st.status is not StepStatus.PLANNED]
        if not failed:
            if self.mode == "dry-run" and any(st.status is StepStatus.PLANNED for st in states):
                return self.record(T.STEP_PLANNED, {"step": use.step.id, "summary": f"{len(items)} item(s) planned",
                                                    "changes": [], "final": True, "refused": None,
                                                    "gated": False})
            return self.record(T.STEP_SUCCEEDED, {"step": use.step.id, "output": output, "message": "",
                                                  "attempts": 1})
        return self._failed(use, f"{len(failed)} of {len(items)} item(s) did not succeed: {', '.join(failed[:5])}"
                            + (" ..." if len(failed) > 5 else ""), output, 0.0, 1)

    def _plan_data(self, plan: Plan) -> dict[str, Any]:
        return {"summary": self.redactor.text(plan.summary), "changes": plan.changes}

    def _prepare(self, name: str, args: dict[str, Any], ctx_data: dict[str, Any]) -> tuple[Action[Any], Params]:
        cls = self.registry.get(name)
        rendered = templates.render_value(args, ctx_data)
        action = cls()
        from pydantic import ValidationError

        try:
            params = cls.Params.model_validate(rendered)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in exc.errors(include_url=False))
            raise ActionError(f"arguments for {name} after rendering are invalid: {problems}") from None
        # Before anything records or shows the arguments: the action knows where its secrets hide (a
        # password argument, an Authorization header, a token in a URL), not only in ``secret_params``.
        secrets_for = getattr(action, "secrets_for", None)
        if secrets_for is not None:
            self.redactor.add(*secrets_for(params))
        for secret_arg in cls.secret_params:
            self.redactor.add(getattr(params, secret_arg, None))
        return action, params

    def _title(self, step: Step) -> str:
        """The step's title with its templates filled in (``Point {{ inputs.hostname }} at the standby``),
        rendered once and kept; the text as written when it cannot render yet (it names a step that has not
        run)."""
        if step.id not in self._titles:
            self._titles[step.id] = self._rendered_text(step.title)
        return self._titles[step.id]

    def _rendered_text(self, text: str, use: Use | None = None) -> str:
        """Runbook text (a title) with its templates filled in and secrets masked. Only text as written in the
        runbook comes here, never a value that was already rendered."""
        if not templates.is_template(text):
            return text
        try:
            return self.redactor.text(str(templates.render_string(text, self.context(use=use))))
        except TemplateError:
            return text

    def _as_written(self, action: Action[Any], params: Params) -> dict[str, Any]:
        """The arguments the runbook gave, rendered: what an operator at a gate needs, without the defaults
        (the full set is in the step's record) nor what the plan shows finished (``Action.shown_by_plan``)."""
        return dict(self.redactor(params.model_dump(mode="json", by_alias=True, exclude_unset=True,
                                                    exclude_none=True, exclude=set(action.shown_by_plan))))

    def _action_context(self, step_id: str, timeout: float | None) -> ActionContext:
        return ActionContext(run_id=self.state.run_id, step_id=step_id, mode=self.mode, timeout=timeout,
                             settings={"legal_regimes": self.team.regimes, "run_clock": self.world.now(),
                                       "team_contacts": self.team.contacts, "team_roles": team_file.ROLES,
                                       "team_file": str(self.team.path or ""),
                                       **self.settings},
                             operator=self.gates.operator,
                             runbook_id=self.loaded.runbook.id, terminal=self.gates.terminal,
                             progress=lambda message: self.reporter.progress(step_id, self.redactor.text(message)))

    def _gate_for(self, confirm: Any, effect: Effect) -> Gate | None:
        # A dry-run changes nothing, so it asks only where the runbook asks explicitly.
        return gate_for(confirm, effect is not Effect.READ and self.mode != "dry-run")

    def _gate(self, use: Use, effect: Effect, args: dict[str, Any], plan: dict[str, Any] | None,
              repeats: str | None = None, replan: Callable[[], dict[str, Any]] | None = None
              ) -> dict[str, Any] | None:
        """Ask the gate, if any: None when the way is open, else the record of what followed the refusal (a
        skipped step or undo); a refused step stops the run. ``_VOIDED`` when other people approved a plan
        that ``replan`` no longer finds: the caller plans and asks again."""
        gate = self._gate_for(use.spec.confirm, effect)
        if gate is None:
            return None
        self._comms_due()
        sid, gate_id = use.sid, use.gate_id
        ctx_data = self.context(use=use)
        message = (templates.render_string(gate.message, ctx_data) if gate.message
                   else _("run '{title}'?").format(title=use.title))
        typed = templates.render_string(gate.type_to_confirm, ctx_data) if gate.type_to_confirm else None
        shown = _shown(args, plan, repeats)
        digest = _digest(gate_id, use.spec.action, shown)
        req = GateRequest(gate_id, use.step.id, use.title, self.redactor.text(str(message)),
                          str(typed) if typed is not None else None, shown, digest, effect is not Effect.READ,
                          notify=effect is Effect.NOTIFY)
        asked: dict[str, Any] = {"step": sid, "gate": gate_id, "message": req.message, "shown": shown,
                                 "digest": digest, "type_to_confirm": bool(typed)}
        allowed, script = None, None
        if gate.approvals:
            script = self.world.answers_at(gate_id)  # a drill's scripted approvers
            if script is None:
                allowed = signers.load()  # fail closed: no team signers file, no multi-party gate opens
            asked["others"] = self._others(gate, allowed)
        opened = self.record(T.GATE_ASKED, asked)
        approvers: list[str] = []
        decision: GateDecision | None = None
        open_gate = OpenGate.of(opened)
        if open_gate is not None:
            self._show_waiting(open_gate, req)
            if gate.announce is not None:
                self._announce(use, gate.announce, open_gate, sent=script is None)
            if script is not None:
                decision, approvers = self._rehearse_others(open_gate, script)
            else:
                assert allowed is not None
                decision, approvers = self._await_others(open_gate, allowed)
        if decision is None:
            decision = self.gates.decide(req)
        self._waited += decision.waited_s
        data = {"step": sid, "gate": gate_id, "digest": digest, **decision.to_dict()}
        if open_gate is not None:
            data["approvers"] = approvers
        data["answer"] = "" if typed is not None and not decision.approved else decision.answer
        if decision.approved and open_gate is not None and replan is not None:
            fresh = replan()
            now = _digest(gate_id, use.spec.action, _shown(args, fresh, repeats))
            if now != digest:
                self.gates.terminal.say(_("  the plan changed while it waited for approvals ({plan}): the "
                                          "approvals given are void; asking again").format(plan=fresh["summary"]))
                self.record(T.GATE_VOIDED, {**data, "approved": False, "how": "plan-changed", "now": now,
                                            "plan": fresh["summary"]})
                return _VOIDED
        if decision.approved:
            self.record(T.GATE_APPROVED, data)
            return None
        self.record(T.GATE_DENIED, data)
        if use.rollback:
            return self.record(T.ROLLBACK_SKIPPED, {"step": sid, "reason": "rollback gate refused"})
        if decision.choice == "skip":
            return self.record(T.STEP_SKIPPED, {"step": sid, "reason": f"gate refused by {decision.by}; skipped"})
        self.record(T.STEP_REFUSED, {"step": sid, "by": decision.by, "how": decision.how})
        raise _Stop(f"gate '{gate_id}' refused by {decision.by} ({decision.how})")

    def _others(self, gate: Gate, allowed: signers.AllowedSigners | None) -> dict[str, Any]:
        """What a multi-party gate records when it opens: who may approve, by when, and who may not (the
        operator, by name and by key, so a second name on the operator's own key does not count either).
        ``allowed`` None: a drill, whose approvers are scripted and sign nothing."""
        deadline = time.time() + gate.timeout if gate.timeout else None
        if allowed is None:
            return {"needed": gate.approvals, "approvers": list(gate.approvers), "eligible": [],
                    "deadline": deadline, "operator": self.gates.operator, "operator_names": [],
                    "operator_keys": [], "scripted": True}
        keys = set(signers.own_keys())
        names = allowed.names_of(keys)
        user = self.gates.operator.split("@")[0]
        if user in {s.name for s in allowed.signers}:
            names.add(user)
        return {"needed": gate.approvals, "approvers": list(gate.approvers),
                "eligible": sorted(allowed.expand(list(gate.approvers))), "deadline": deadline,
                "operator": self.gates.operator, "operator_names": sorted(names),
                "operator_keys": sorted(allowed.fingerprints_of(keys) | {signers.fingerprint(k) for k in keys})}

    def _announce(self, use: Use, announce: Announce, gate: OpenGate, sent: bool = True) -> None:
        """Tell the approvers the gate is open, through the notify action the runbook names; a message that
        does not go out is said and recorded, and the gate waits all the same (they may hear of it otherwise).
        ``sent`` False: the approvers are a drill's script, so nobody real is told (the message is only shown).
        """
        sid = use.sid
        about = {"run": gate.run, "step": gate.step, "gate": gate.gate, "digest": gate.digest,
                 "needed": gate.needed, "approvers": list(gate.approvers),
                 "seconds": None if gate.deadline is None else round(gate.deadline - time.time()),
                 "approve": f"breakglass approve {gate.run} {gate.gate} --digest {gate.digest}"}
        actx = self._action_context(sid, None)
        try:
            action, params = self._prepare(announce.action, announce.with_, {**self.context(), "gate": about})
            if action.effect_of(announce.with_) is not Effect.NOTIFY:  # checked at load; said again where it acts
                raise ActionError(f"announce uses '{announce.action}', which is not a notify action")
            if not sent:
                ok, message = True, f"not sent in a drill: {action.plan(params, actx).summary}"
            else:
                plan = self.world.plan(sid, action, params, actx)
                result = self.world.apply(sid, action, params, actx, plan)
                ok, message = result.ok, result.message or plan.summary
        except BreakglassError as exc:
            ok, message = False, _one_line(exc)
        if not ok:
            self.gates.terminal.say(_("  the announcement did not go out: {problem}").format(problem=message))
        self.record(T.GATE_ANNOUNCED, {"step": sid, "gate": gate.gate, "action": announce.action, "ok": ok,
                                       "message": self.redactor.text(message)})

    def _show_waiting(self, gate: OpenGate, req: GateRequest) -> None:
        """The gate as the operator sees it while other people decide. The screen only grows from here: the
        gate, its plan and the command to approve stay where they are, and each answer adds one line (nothing
        redraws, so nothing scrolls the plan out from under the operator's eyes)."""
        t = self.gates.terminal
        t.say("")
        t.say(_("GATE {gate}: {message}").format(gate=gate.gate, message=req.message))
        for line in describe(req.shown):
            t.say(f"  {line}")
        t.say(_("  waiting for {needed} approval(s) from {approvers} (not {operator})").format(
            needed=gate.needed, approvers=", ".join(gate.approvers), operator=gate.operator))
        t.say(_("  to approve: {command}").format(
            command=f"breakglass approve {gate.run} {gate.gate} --digest {gate.digest}"))

    def _rehearse_others(self, gate: OpenGate, script: list[dict[str, Any]]) -> tuple[GateDecision | None,
                                                                                         list[str]]:
        """A drill's scripted approvers answer in order, recorded as the real ones are (without signatures):
        the operator rehearses the wait, the count, a refusal and a timeout. Nobody counts twice, nor the
        operator; an answer the script leaves out is a timeout."""
        t, base = self.gates.terminal, {"step": gate.step, "gate": gate.gate, "record": 0, "scripted": True}
        names: list[str] = []
        operator = self.gates.operator.split("@")[0]
        for answer in script:
            by, kind = str(answer.get("by", "")), answer.get("answer")
            if kind == "timeout":
                break
            if by in names or by == operator:
                why = "one person counts once" if by in names else "the operator cannot approve their own gate"
                self.record(T.APPROVAL_REJECTED, {**base, "by": by, "reason": why}, sync=False)
                t.say(_("  not counted, from {by}: {problem}").format(by=by, problem=why))
                continue
            if kind == "deny":
                reason = str(answer.get("reason", ""))
                t.say(_("  refused by {by}: {reason}").format(by=by, reason=reason))
                return GateDecision(False, by, "denied", answer=reason), names
            names.append(by)
            missing = max(0, gate.needed - len(names))
            self.record(T.APPROVAL_COUNTED, {**base, "by": by, "fingerprint": "", "missing": missing}, sync=False)
            t.say(_("  approved by {by} (scripted in the drill): {count} of {needed}, {missing} still needed").format(
                by=by, count=len(names), needed=gate.needed, missing=missing))
            if missing == 0:
                return None, names
        t.say(_("  the gate's timeout ran out with {missing} approval(s) missing: that means no").format(
            missing=max(0, gate.needed - len(names))))
        return GateDecision(False, self.gates.operator, "timeout"), names

    def _await_others(self, gate: OpenGate, allowed: signers.AllowedSigners) -> tuple[GateDecision | None,
                                                                                    list[str]]:
        """Wait until enough other people approved (None: the operator decides next), one refused, or the
        timeout ran out (both a refusal). Each approval read is judged and the judgement recorded."""
        t = self.gates.terminal
        started = time.monotonic()
        tally = Tally(gate)
        for batch in self._records_after(gate.seq):
            for rec in batch:
                self._judge(rec, tally, allowed)
            waited = round(time.monotonic() - started, 3)
            names = [j.by for j in tally.approved]
            if tally.denied is not None:
                t.say(_("  refused by {by}: {reason}").format(by=tally.denied.by, reason=tally.denied.reason))
                return GateDecision(False, tally.denied.by, "denied", answer=tally.denied.reason,
                                    waited_s=waited), names
            if tally.missing == 0:
                return None, names
            if gate.deadline is not None and time.time() >= gate.deadline:
                t.say(_("  the gate's timeout ran out with {missing} approval(s) missing: that means no").format(
                    missing=tally.missing))
                return GateDecision(False, self.gates.operator, "timeout", waited_s=waited), names
        raise AssertionError("unreachable: following a run's records never ends by itself")

    def _judge(self, rec: AuditRecord, tally: Tally, allowed: signers.AllowedSigners) -> None:
        """Judge one record read at a waiting gate; record and say what an approval counted for."""
        verdict = tally.feed(rec.to_dict(), allowed)
        if verdict is None:
            return
        gate, t = tally.gate, self.gates.terminal
        base = {"step": gate.step, "gate": gate.gate, "by": verdict.by, "record": rec.seq}
        # Not synced on its own: the gate's decision, which nothing acts before, is, and it makes these durable
        # with it (one log, written in order); a crash before it leaves the gate open, asked again on resume.
        if verdict.problem:
            self.record(T.APPROVAL_REJECTED, {**base, "reason": verdict.problem}, sync=False)
            t.say(_("  not counted, from {by}: {problem}").format(by=verdict.by, problem=verdict.problem))
        elif verdict.decision == APPROVE:
            self.record(T.APPROVAL_COUNTED, {**base, "fingerprint": verdict.fingerprint, "missing": tally.missing},
                        sync=False)
            t.say(_("  approved by {by} (signature verified): {count} of {needed}, {missing} still needed").format(
                by=verdict.by, count=len(tally.approved), needed=gate.needed, missing=tally.missing))

    def _records_after(self, seq: int) -> Iterator[list[AuditRecord]]:
        """Batches of the run's records after ``seq``, as the store announces them, at least every tick.

        One feed serves every gate of the run: opening it (a database session, LISTEN) is not left for the
        moment an approval arrives."""
        if self.follow is not None:
            if self._feed is None:
                self._feed = self.follow(seq, APPROVAL_TICK_S)
            while True:
                yield [r for r in next(self._feed) if r.seq > seq]
        while True:
            yield [r for r in self.writer.records() if r.seq > seq]
            time.sleep(APPROVAL_TICK_S)

    def _attempts(self, use: Use, call: Callable[[], ActionResult],
                  actx: ActionContext) -> tuple[ActionResult, int]:
        """Call the action until it succeeds (and ``until`` holds) or the attempts run out."""
        policy = retry_policy(use.spec)
        delay = policy.delay
        for attempt in range(1, policy.attempts + 1):
            actx.started = time.monotonic()
            actx.cancel.clear()
            result = self._call(call, use.timeout, actx)
            self.redactor.add(*result.secrets)
            reason = self._attempt_problem(use, result)
            if reason is None:
                return result, attempt
            if attempt == policy.attempts:
                return ActionResult(result.output, False, reason, result.secrets), attempt
            self.record(use.records.retried, {"step": use.sid, "attempt": attempt, "reason": reason,
                                              "delay": round(delay, 3)})
            self.world.wait(delay)
            delay = min(delay * policy.backoff, policy.max_delay)
        raise AssertionError("unreachable: Retry.attempts is at least 1")

    def _attempt_problem(self, use: Use, result: ActionResult) -> str | None:
        spec = use.spec
        if not result.ok:
            return result.message or "the action reported failure"
        if spec.until is not None and not templates.evaluate(spec.until, self.context(result.output, use)):
            return f"`until` not yet true: {spec.until}"
        return None

    def _call(self, call: Callable[[], ActionResult], timeout: float | None, actx: ActionContext) -> ActionResult:
        try:
            if timeout is None:
                return call()
            return call_with_timeout(call, timeout, actx)
        except ActionTimeout as exc:
            return ActionResult(output={"timed_out": True}, ok=False, message=str(exc))
        except ActionError as exc:
            return ActionResult(output={}, ok=False, message=_one_line(exc))
        except TemplateError as exc:
            return ActionResult(output={}, ok=False, message=_one_line(exc))

    def _conclude(self, use: Use, result: ActionResult, attempts: int, seconds: float) -> dict[str, Any]:
        """Verify (``expect``) and record how it ended."""
        output, expect = dict(result.output), use.spec.expect
        if result.ok and expect is not None:
            try:
                holds = templates.evaluate(expect, self.context(output, use))
            except TemplateError as exc:
                holds, result = False, ActionResult(output, False, "expect could not be evaluated: "
                                                    + self._located(use, exc, "expect"))
            if not holds and result.ok:
                result = ActionResult(output, False, f"expect did not hold: {expect}")
        spec = self.loaded.runbook.comms
        if result.ok and use.spec.action == comms.ACTION and not use.rollback and spec is not None:
            self._comms = comms.after_post(self.world.now(), output, spec.cadence_s,
                                           self._comms.reminded if self._comms else None)
        if result.ok:
            return self.record(use.records.succeeded, {"step": use.sid, "output": output,
                                                       "message": result.message,
                                                       "duration_ms": round(seconds * 1000, 3),
                                                       "attempts": attempts}, sync=False, hold=True)
        return self._failed(use, result.message, output, seconds, attempts)

    def _failed(self, use: Use, error: str, output: dict[str, Any], seconds: float, attempts: int) -> dict[str, Any]:
        """Record the failure; for a step, then do what its ``on_failure`` says. ``attempts`` 0: the action was
        never called (its arguments did not render, its plan was refused)."""
        step = use.step
        data = {"step": use.sid, "title": use.title, "error": error, "output": output, "attempts": attempts,
                "duration_ms": round(seconds * 1000, 3)}
        if use.rollback:
            return self.record(T.ROLLBACK_FAILED, data)
        continued = step.on_failure == "continue"
        rec = self.record(T.STEP_FAILED, {**data, "continued": continued})
        if continued or use.item is not None:  # an item's failure: the loop decides once all have ended
            return rec
        if step.on_failure == "rollback":
            undone = [str(r["step"]) for r in self._rollback(step) if left_undone(r)]
            if undone:
                raise _Stop(f"step '{step.id}' failed: {error}; rollback incomplete: {', '.join(undone)} not undone "
                            "(refused or failed): check them by hand")
            raise _Stop(f"step '{step.id}' failed: {error}; completed steps were rolled back")
        raise _Stop(f"step '{step.id}' failed: {error}")

    # --- rollback --------------------------------------------------------------------------------------

    def _rollback(self, failed: Step) -> list[dict[str, Any]]:
        """Undo completed steps newest first; the records say how each undo ended. Inside a called runbook,
        its own steps; at the top, every step of the run, called ones included."""
        scope = self.frame.prefix
        undos = {sid: rb for sid in reversed(self.state.completed_with_effect()) if sid.startswith(scope)
                 and (rb := self._undo_of(sid)) is not None}
        self.record(T.ROLLBACK_BEGUN, {"after": failed.id, "steps": list(undos)})
        ended = []
        for sid, rb in undos.items():
            placed, item = self._placed_of(sid)
            with self.in_frame(self._frame_at(placed.prefix)):
                use = Use(placed.step, rb, "", item)
                title = self._rendered_text(rb.title, use) if rb.title else f"undo {self._title(placed.step)}"
                use = replace(use, title=title if item is None else f"{title} [{item.key}]")
                ended.append(self._guarded(use, partial(self._invoke, use)))
        return [rec for rec in ended if rec is not None]

    def _undo_of(self, sid: str) -> Rollback | None:
        placed, _ = self._placed_of(sid)
        return rollback_of(placed.step, self.registry, placed.step.id[len(placed.prefix):])

    def _placed_of(self, sid: str) -> tuple[calls.Placed, Item | None]:
        """The step an id of the log names, and for a loop's item, which item (its key and value as fixed)."""
        parent = parent_of(sid)
        if parent is None or parent not in self.state.loops:
            return self._placed[sid], None
        loop = self.state.loops[parent]
        index = loop.ids(parent).index(sid)
        return self._placed[parent], Item(loop.keys[index], loop.values[index])


def _path_of(loaded: LoadedRunbook, step_id: str) -> tuple[str | int, ...]:
    """Where a step is written in its runbook: ("steps", i), or ("steps", i, "parallel", j) inside a group."""
    for i, unit in enumerate(loaded.runbook.steps):
        if isinstance(unit, Group):
            for j, member in enumerate(unit.parallel):
                if member.id == step_id:
                    return ("steps", i, "parallel", j)
        elif unit.id == step_id:
            return ("steps", i)
    raise AssertionError(f"no step '{step_id}' in runbook '{loaded.runbook.id}'")


def _key(item: Use) -> Any:
    return item.item.key if item.item is not None else ""


def _shown(args: dict[str, Any], plan: dict[str, Any] | None, repeats: str | None) -> dict[str, Any]:
    """What the operator and every approver read at a gate; its digest is what they approve."""
    shown = {"args": args, "plan": plan["summary"] if plan else None, "changes": plan["changes"] if plan else []}
    if repeats:  # retries/until re-apply after this one approval
        shown["repeats"] = repeats
    return shown


def _digest(gate_id: str, action: str, shown: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({"gate": gate_id, "action": action, **shown})).hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
