"""Drives a run: render → plan → gate → apply → record, one step at a time. The only engine module with I/O.

Every record goes to the audit log first (fsync'd before anything acts on the world), then into the state
machine, then to the reporter. A dry-run takes the same path and stops after the plan; a drill takes it
against a simulated world.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from breakglass.actions.base import Action, ActionContext, ActionResult, Effect, Params
from breakglass.actions.registry import Registry
from breakglass.engine import templates
from breakglass.engine.audit import canonical
from breakglass.engine.errors import ActionError, ActionTimeout, AuditError, BreakglassError, TemplateError
from breakglass.engine.execution import call_with_timeout, sigterm_as_interrupt
from breakglass.engine.gates import GateDecision, Gatekeeper, GateRequest
from breakglass.engine.loader import LoadedRunbook
from breakglass.engine.machine import RunState, StepStatus
from breakglass.engine.model import Gate, Step, gate_for, repeat_note, retry_policy
from breakglass.engine.redact import Redactor, declared_secrets, declares_secrets
from breakglass.engine.store.base import RunLog
from breakglass.engine.world import LiveWorld, World

ROLLED_BACK, ROLLBACK_INCOMPLETE = "rolled_back", "rollback_incomplete"
# rollback_incomplete has its own code: the world is half changed and someone must look before anything else.
EXIT_CODES = {"succeeded": 0, "failed": 1, "aborted": 1, ROLLED_BACK: 1, "refused": 3, ROLLBACK_INCOMPLETE: 7,
              "interrupted": 130}


class _Stop(Exception):
    """Internal: the run ends here with this status."""

    def __init__(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason
        super().__init__(reason)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    head: str
    note: str = ""  # said to the operator when nothing ran (e.g. resuming a finished run)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)


@dataclass
class Runner:
    loaded: LoadedRunbook
    writer: RunLog
    state: RunState
    gates: Gatekeeper
    redactor: Redactor
    inputs: dict[str, Any]
    reporter: Any
    registry: Registry = field(default_factory=Registry)
    world: World = field(default_factory=LiveWorld)
    settings: dict[str, Any] = field(default_factory=dict)
    before_finish: Callable[[Runner], None] | None = None  # e.g. a drill's grading, recorded before the end
    started_ts: str = ""
    # Each step's title as first rendered: text that came out of a render may hold ``{{ }}`` from an input or
    # an output, and rendering it again would run that (a ``{{ inputs.token|upper }}`` the redactor misses).
    _titles: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # One screen: whatever asks the operator something (a gate, a manual step, the in-doubt question)
        # first stops the reporter's spinner, which would otherwise redraw the line the question is on.
        self.gates.terminal.before_prompt = getattr(self.reporter, "pause", None)
        self._waited = 0.0  # seconds this step spent waiting at gates: the operator's time, not the step's

    @property
    def mode(self) -> str:
        return self.state.mode

    # --- recording -------------------------------------------------------------------------------------

    def record(self, type_: str, data: dict[str, Any], sync: bool = True) -> dict[str, Any]:
        rec = self.writer.append(type_, self.redactor.record(data), sync=sync)
        self.state.apply(rec)
        self.reporter.event(rec)
        return rec

    # --- the run ---------------------------------------------------------------------------------------

    def execute(self, start: int) -> RunOutcome:
        """Run steps from index ``start`` to the end, then record how the run finished."""
        status, reason = "succeeded", ""
        try:
            with sigterm_as_interrupt():
                for step in self.loaded.runbook.steps[start:]:
                    self._step(step)
        except _Stop as stop:
            status, reason = stop.status, stop.reason
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the operator (Ctrl-C) or a termination signal"
            current = self._current_step()
            if current:
                self.record("step.interrupted", {"step": current})
        finally:
            self.reporter.close()
        return self.finish(status, reason)

    def finish(self, status: str, reason: str) -> RunOutcome:
        if self.before_finish is not None:
            self.before_finish(self)
        counts: dict[str, int] = {}
        for st in self.state.steps.values():
            label = "failed (continued)" if st.status is StepStatus.FAILED and st.continued else str(st.status)
            counts[label] = counts.get(label, 0) + 1
        rec = self.record("run.finished", {"run": self.state.run_id, "status": status, "reason": reason,
                                           "counts": counts})
        return RunOutcome(self.state.run_id, status, rec["hash"])

    def _current_step(self) -> str | None:
        for sid in self.state.step_ids:
            if str(self.state.steps[sid].status) in ("running", "applying"):
                return sid
        return None

    def context(self, result: Any = None) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "inputs": self.inputs,
            "steps": self.state.context(),
            "run": {"id": self.state.run_id, "mode": self.mode, "runbook": self.loaded.runbook.id,
                    "operator": self.gates.operator, "started": self.started_ts},
        }
        if result is not None:
            ctx["result"] = result
        return ctx

    def learn_declared_secrets(self) -> None:
        """Secrets that actions declare in arguments needing only the inputs (a header built from a plain
        input, a webhook URL, a literal password): known before ``run.started`` records the inputs.

        Each argument renders on its own, so one that needs an earlier step's output (a message text) does
        not hide the secret in another; those are learned again when their step runs."""
        ctx = {"inputs": self.inputs, "steps": self.state.context(),
               "run": {"id": "", "mode": self.mode, "operator": "", "runbook": self.loaded.runbook.id,
                       "started": ""}}
        for step in self.loaded.runbook.steps:
            calls = [(step.action, step.with_)]
            if step.rollback is not None:
                calls.append((step.rollback.action, step.rollback.with_))
            for name, args in calls:
                if declares_secrets(self.registry, name):
                    self.redactor.add(*declared_secrets(self.registry.get(name), args, ctx))

    # --- one step --------------------------------------------------------------------------------------

    def _step(self, step: Step) -> None:
        try:
            self._step_inner(step)
        except AuditError:
            raise  # without a log nothing else may happen: the run stops
        except (BreakglassError, ValueError) as exc:  # rendering, argument or planning failures
            self._fail(step, self._located(step, exc), {}, 0.0)

    def _located(self, step: Step, exc: BaseException, *under: str) -> str:
        """The error in one line; a template's failure names the file:line:col where it is written."""
        if not isinstance(exc, TemplateError):
            return _one_line(exc)
        index = next(i for i, s in enumerate(self.loaded.runbook.steps) if s.id == step.id)
        return f"{self.loaded.where(('steps', index, *under), exc.template)}: {_one_line(exc)}"

    def _step_inner(self, step: Step) -> None:
        ctx_data = self.context()
        if step.when is not None and not templates.evaluate(step.when, ctx_data):
            self.record("step.skipped", {"step": step.id, "title": self._title(step),
                                         "reason": "its `when` was false"})
            return
        action, params = self._prepare(step.action, step.with_, ctx_data)
        effect = action.effect_of(step.with_)  # as written, never as rendered: output cannot lift a gate
        args_shown = self.redactor(params.model_dump(mode="json", by_alias=True, exclude_none=True))
        title = self._title(step)
        self.reporter.step_begins(step.id, title)
        self.record("step.started", {"step": step.id, "title": title, "action": step.action,
                                     "effect": str(effect), "args": args_shown}, sync=effect is not Effect.READ)
        actx = self._action_context(step.id, step.timeout)
        begun = time.monotonic()
        self._waited = 0.0
        if effect is Effect.READ:
            if not self._gate_passes(step.id, step, step.confirm, effect, self._as_written(params), None):
                return
            result, attempts = self._attempts(step, lambda: self.world.run(step.id, action, params, actx), actx)
        else:
            plan = self.world.plan(step.id, action, params, actx)
            plan_data = {"summary": self.redactor.text(plan.summary), "changes": plan.changes}
            final = self.mode == "dry-run"
            self.record("step.planned", {"step": step.id, **plan_data, "final": final, "refused": plan.refused,
                                         "gated": gate_for(step.confirm, True) is not None})  # as a live run
            if plan.refused:
                self._fail(step, f"plan refused: {plan.refused}", {"plan": plan_data}, 0.0)
                return
            if final:
                return
            if not self._gate_passes(step.id, step, step.confirm, effect, self._as_written(params), plan_data,
                                     repeat_note(step)):
                return
            self.record("step.applying", {"step": step.id})
            result, attempts = self._attempts(
                step, lambda: self.world.apply(step.id, action, params, actx, plan), actx)
        self._conclude(step, result, attempts, time.monotonic() - begun - self._waited)

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

    def _rendered_text(self, text: str) -> str:
        """Runbook text (a title) with its templates filled in and secrets masked. Only text as written in the
        runbook comes here, never a value that was already rendered."""
        if not templates.is_template(text):
            return text
        try:
            return self.redactor.text(str(templates.render_string(text, self.context())))
        except TemplateError:
            return text

    def _as_written(self, params: Params) -> dict[str, Any]:
        """The arguments the runbook gave, rendered: what an operator at a gate needs, without the defaults
        (the full set is in the step's record)."""
        return dict(self.redactor(params.model_dump(mode="json", by_alias=True, exclude_unset=True,
                                                    exclude_none=True)))

    def _action_context(self, step_id: str, timeout: float | None) -> ActionContext:
        return ActionContext(run_id=self.state.run_id, step_id=step_id, mode=self.mode, timeout=timeout,
                             settings=self.settings, operator=self.gates.operator,
                             runbook_id=self.loaded.runbook.id, prompter=self.gates)

    def _gate_for(self, confirm: Any, effect: Effect) -> Gate | None:
        # A dry-run changes nothing, so it asks only where the runbook asks explicitly.
        return gate_for(confirm, effect is not Effect.READ and self.mode != "dry-run")

    def _gate_passes(self, gate_id: str, step: Step, confirm: Any, effect: Effect, args: dict[str, Any],
                     plan: dict[str, Any] | None, repeats: str | None = None, title: str | None = None) -> bool:
        """``title``: what the gate is about, already rendered (a rollback's); the step's own by default."""
        gate = self._gate_for(confirm, effect)
        if gate is None:
            return True
        title = self._title(step) if title is None else title
        ctx_data = self.context()
        message = templates.render_string(gate.message, ctx_data) if gate.message else f"run '{title}'?"
        typed = templates.render_string(gate.type_to_confirm, ctx_data) if gate.type_to_confirm else None
        shown = {"args": args, "plan": plan["summary"] if plan else None, "changes": plan["changes"] if plan else []}
        if repeats:  # retries/until re-apply after this one approval
            shown["repeats"] = repeats
        digest = hashlib.sha256(canonical({"gate": gate_id, "action": step.action, **shown})).hexdigest()
        req = GateRequest(gate_id, step.id, title, self.redactor.text(str(message)),
                          str(typed) if typed is not None else None, shown, digest, effect is not Effect.READ,
                          notify=effect is Effect.NOTIFY)
        self.record("gate.asked", {"step": step.id, "gate": gate_id, "message": req.message, "shown": shown,
                                   "digest": digest, "type_to_confirm": bool(typed)})
        decision: GateDecision = self.gates.decide(req)
        self._waited += decision.waited_s
        data = {"step": step.id, "gate": gate_id, "digest": digest, **decision.to_dict()}
        data["answer"] = "" if typed is not None and not decision.approved else decision.answer
        if decision.approved:
            self.record("gate.approved", data)
            return True
        self.record("gate.denied", data)
        if gate_id.endswith(".rollback"):
            return False
        if decision.choice == "skip":
            self.record("step.skipped", {"step": step.id, "reason": f"gate refused by {decision.by}; skipped"})
            return False
        self.record("step.refused", {"step": step.id, "by": decision.by, "how": decision.how})
        raise _Stop("refused", f"gate '{gate_id}' refused by {decision.by} ({decision.how})")

    def _attempts(self, step: Step, call: Callable[[], ActionResult],
                  actx: ActionContext) -> tuple[ActionResult, int]:
        """Call the action until it succeeds (and ``until`` holds) or the attempts run out."""
        policy = retry_policy(step)
        delay = policy.delay
        for attempt in range(1, policy.attempts + 1):
            actx.started = time.monotonic()
            actx.cancel.clear()
            result = self._call(call, step.timeout, actx)
            self.redactor.add(*result.secrets)
            reason = self._attempt_problem(step, result)
            if reason is None:
                return result, attempt
            if attempt == policy.attempts:
                return ActionResult(result.output, False, reason, result.secrets), attempt
            self.record("step.retried", {"step": step.id, "attempt": attempt, "reason": reason,
                                         "delay": round(delay, 3)}, sync=False)
            self.world.wait(delay)
            delay = min(delay * policy.backoff, policy.max_delay)
        raise AssertionError("unreachable: Retry.attempts is at least 1")

    def _attempt_problem(self, step: Step, result: ActionResult) -> str | None:
        if not result.ok:
            return result.message or "the action reported failure"
        if step.until is not None and not templates.evaluate(step.until, self.context(result.output)):
            return f"`until` not yet true: {step.until}"
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

    def _conclude(self, step: Step, result: ActionResult, attempts: int, seconds: float) -> None:
        output = dict(result.output)
        if result.ok and step.expect is not None:
            try:
                holds = templates.evaluate(step.expect, self.context(output))
            except TemplateError as exc:
                holds, result = False, ActionResult(output, False, "expect could not be evaluated: "
                                                    + self._located(step, exc, "expect"))
            if not holds and result.ok:
                result = ActionResult(output, False, f"expect did not hold: {step.expect}")
        if result.ok:
            self.record("step.succeeded", {"step": step.id, "output": output, "message": result.message,
                                           "duration_ms": round(seconds * 1000, 3),
                                           "attempts": attempts})
            return
        self._fail(step, result.message, output, seconds, attempts)

    def _fail(self, step: Step, error: str, output: dict[str, Any], seconds: float, attempts: int = 1) -> None:
        if str(self.state.steps[step.id].status) == "pending":
            self.record("step.started", {"step": step.id, "title": self._title(step), "action": step.action,
                                         "effect": "read", "args": {}}, sync=False)
        continued = step.on_failure == "continue"
        self.record("step.failed", {"step": step.id, "title": self._title(step), "error": error, "output": output,
                                    "attempts": attempts,
                                    "duration_ms": round(seconds * 1000, 3), "continued": continued})
        if continued:
            return
        if step.on_failure == "rollback":
            records = self._rollback(step)
            undone = left_undone(records)
            if undone:
                raise _Stop(ROLLBACK_INCOMPLETE, f"step '{step.id}' failed: {error}; rollback incomplete: "
                                                 f"{', '.join(undone)} not undone (refused or failed): check "
                                                 "them by hand")
            raise _Stop(ROLLED_BACK, f"step '{step.id}' failed: {error}; completed steps were rolled back")
        raise _Stop("failed", f"step '{step.id}' failed: {error}")

    # --- rollback --------------------------------------------------------------------------------------

    def _rollback(self, failed: Step) -> list[dict[str, Any]]:
        """Undo completed steps newest first; the records say how each undo ended."""
        steps = {s.id: s for s in self.loaded.runbook.steps}
        todo = [sid for sid in reversed(self.state.completed_with_effect()) if steps[sid].rollback is not None]
        self.record("rollback.begun", {"after": failed.id, "steps": todo})
        return [self._rollback_one(steps[sid]) for sid in todo]

    def _rollback_one(self, step: Step) -> dict[str, Any]:
        """Undo one step; returns the record that ends it (rollback.succeeded, .failed or .skipped)."""
        rb = step.rollback
        assert rb is not None  # guarded by the caller
        title = self._rendered_text(rb.title) if rb.title else f"undo {self._title(step)}"
        try:
            action, params = self._prepare(rb.action, rb.with_, self.context())
            effect = action.effect_of(rb.with_)
            args = self.redactor(params.model_dump(mode="json", by_alias=True, exclude_none=True))
            self.record("rollback.started", {"step": step.id, "action": rb.action, "args": args, "title": title})
            actx = self._action_context(step.id, step.timeout)
            if effect is Effect.READ:
                result = self._call(lambda: self.world.run(step.id, action, params, actx), step.timeout, actx)
            else:
                plan = self.world.plan(step.id, action, params, actx)
                if self.mode == "dry-run":
                    return self.record("rollback.skipped", {"step": step.id, "reason": DRY_RUN_SKIP,
                                                            "summary": self.redactor.text(plan.summary)})
                gate_step = step.model_copy(update={"action": rb.action})
                if not self._gate_passes(f"{step.id}.rollback", gate_step, rb.confirm, effect, self._as_written(params),
                                         {"summary": self.redactor.text(plan.summary), "changes": plan.changes},
                                         title=title):
                    return self.record("rollback.skipped", {"step": step.id, "reason": "rollback gate refused"})
                result = self._call(lambda: self.world.apply(step.id, action, params, actx, plan), step.timeout, actx)
        except (BreakglassError, ValueError) as exc:
            result = ActionResult({}, False, self._located(step, exc, "rollback"))
        kind = "rollback.succeeded" if result.ok else "rollback.failed"
        error = "" if result.ok else result.message
        return self.record(kind, {"step": step.id, "output": dict(result.output), "error": error})


DRY_RUN_SKIP = "dry-run"  # a dry-run changed nothing, so a rollback it only planned leaves nothing undone


def left_undone(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Steps whose undo failed or was refused at its gate, from a rollback's records."""
    return [str(rec.get("step")) for rec in records
            if rec.get("type") == "rollback.failed"
            or (rec.get("type") == "rollback.skipped" and rec.get("reason") != DRY_RUN_SKIP)]


def rollback_outcome(records: Iterable[Mapping[str, Any]]) -> str:
    """How a rollback ended: ``rolled_back`` only when every undo happened; otherwise
    ``rollback_incomplete``, which is never reported as rolled back."""
    return ROLLBACK_INCOMPLETE if left_undone(records) else ROLLED_BACK


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
