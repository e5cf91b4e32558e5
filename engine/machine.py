"""The run as a plain state machine: audit records in, state out; no I/O.

The transition table is data, so tests can walk it whole. The runner feeds every record it writes into
``RunState.apply``; ``resume`` and reports rebuild a run by replaying its log through the same function, so
what the engine believed during the run and what the log proves afterwards cannot drift apart.

Step lifecycle::

    pending ──step.started──▶ running ──step.applying──▶ applying ──▶ succeeded | failed
       │                        │ ├──step.succeeded/failed──▶ succeeded | failed
       │                        │ ├──step.planned (dry-run)──▶ planned
       │                        │ ├──step.skipped (gate: skip)──▶ skipped
       │                        │ └──step.refused (gate: abort)──▶ refused
       └──step.skipped (when)──▶ skipped
    succeeded ──rollback.succeeded──▶ rolled_back      succeeded ──rollback.failed──▶ rollback_failed

A step left in ``running`` when a log ends never acted on the world and is simply run again; one left in
``applying`` may or may not have, and is *in doubt*: the operator decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from breakglass.engine.errors import AuditError


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    APPLYING = "applying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    PLANNED = "planned"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    REFUSED = "refused"  # its gate said no and the run stopped there; a resume asks again


S = StepStatus

# (status now, event) → status next. Anything not here is an impossible log.
STEP_TRANSITIONS: dict[tuple[StepStatus, str], StepStatus] = {
    (S.PENDING, "step.started"): S.RUNNING,
    (S.PENDING, "step.skipped"): S.SKIPPED,
    (S.RUNNING, "step.started"): S.RUNNING,  # a resumed run starts a never-applied step again
    (S.RUNNING, "step.retried"): S.RUNNING,
    (S.RUNNING, "step.planned"): S.RUNNING,  # live: the plan precedes the gate; dry-run: see apply()
    (S.RUNNING, "step.applying"): S.APPLYING,
    (S.RUNNING, "step.succeeded"): S.SUCCEEDED,
    (S.RUNNING, "step.failed"): S.FAILED,
    (S.RUNNING, "step.skipped"): S.SKIPPED,
    (S.RUNNING, "step.interrupted"): S.RUNNING,
    (S.APPLYING, "step.retried"): S.APPLYING,
    (S.APPLYING, "step.succeeded"): S.SUCCEEDED,
    (S.APPLYING, "step.failed"): S.FAILED,
    (S.APPLYING, "step.interrupted"): S.APPLYING,
    (S.APPLYING, "step.in_doubt"): S.APPLYING,
    (S.APPLYING, "step.started"): S.RUNNING,  # the operator chose to run an in-doubt step again
    (S.FAILED, "step.started"): S.RUNNING,  # resume of an aborted run tries the failed step again
    (S.RUNNING, "step.refused"): S.REFUSED,
    (S.REFUSED, "step.started"): S.RUNNING,  # resume of a refused run asks the gate again
    (S.SUCCEEDED, "rollback.succeeded"): S.ROLLED_BACK,
    (S.SUCCEEDED, "rollback.failed"): S.ROLLBACK_FAILED,
    (S.SUCCEEDED, "rollback.started"): S.SUCCEEDED,
    (S.SUCCEEDED, "rollback.skipped"): S.SUCCEEDED,
}

# Records that change no step's status.
RUN_EVENTS = frozenset({
    "run.started", "run.resumed", "run.inputs_changed", "run.finished", "gate.asked", "gate.approved",
    "gate.denied", "note", "rollback.begun", "drill.graded",
})

DONE = frozenset({S.SUCCEEDED, S.SKIPPED, S.PLANNED, S.ROLLED_BACK, S.ROLLBACK_FAILED})


@dataclass
class StepState:
    status: StepStatus = S.PENDING
    output: dict[str, Any] = field(default_factory=dict)
    ok: bool = False
    effect: str = "read"
    attempts: int = 0
    continued: bool = False  # failed, but on_failure: continue let the run go on
    plan: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE or (self.status is S.FAILED and self.continued)

    def as_context(self) -> dict[str, Any]:
        return {"output": self.output, "ok": self.ok, "status": str(self.status)}


@dataclass
class RunState:
    """Everything the engine knows about a run, derived from its records alone."""

    step_ids: list[str]
    mode: str = "live"
    run_id: str = ""
    status: str = "created"
    steps: dict[str, StepState] = field(default_factory=dict)
    last_seq: int = 0
    # Each step's template view, refreshed when that step changes: rebuilding all of them for every step
    # made a run quadratic in its length (1,000 steps: ~2.6 ms of overhead per step).
    _views: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for sid in self.step_ids:
            self.steps.setdefault(sid, StepState())
        self._views = {sid: st.as_context() for sid, st in self.steps.items()}

    def apply(self, rec: dict[str, Any]) -> None:
        """Feed one record; raise AuditError if the log describes something impossible."""
        kind = rec["type"]
        self.last_seq = int(rec.get("seq", self.last_seq))
        if kind in RUN_EVENTS:
            self._run_event(kind, rec)
            return
        sid = rec.get("step")
        if sid not in self.steps:
            raise AuditError(f"record {self.last_seq}: '{kind}' names unknown step '{sid}'")
        st = self.steps[sid]
        nxt = STEP_TRANSITIONS.get((st.status, kind))
        if nxt is None:
            raise AuditError(f"record {self.last_seq}: step '{sid}' cannot go from {st.status} on '{kind}'")
        self._step_event(st, kind, rec, nxt)
        self._views[sid] = st.as_context()

    def _run_event(self, kind: str, rec: dict[str, Any]) -> None:
        if kind == "run.started":
            self.mode = str(rec.get("mode", "live"))
            self.run_id = str(rec.get("run", ""))
            self.status = "running"
        elif kind == "run.resumed":
            self.status = "running"
        elif kind == "run.finished":
            self.status = str(rec.get("status", "finished"))

    def _step_event(self, st: StepState, kind: str, rec: dict[str, Any], nxt: StepStatus) -> None:
        if kind == "step.started":
            st.effect = str(rec.get("effect", st.effect))
            st.attempts = 0
            st.continued = False
        elif kind == "step.retried":
            st.attempts = int(rec.get("attempt", st.attempts))
        elif kind == "step.planned":
            st.plan = {"summary": rec.get("summary"), "changes": rec.get("changes", [])}
            if rec.get("final"):  # a dry-run stops after the plan
                nxt = S.PLANNED
                st.ok = True
                st.output = {"planned": True, "plan": st.plan}
        elif kind in ("step.succeeded", "step.failed"):
            st.output = dict(rec.get("output") or {})
            st.ok = kind == "step.succeeded"
            st.attempts = int(rec.get("attempts", st.attempts))
            st.continued = bool(rec.get("continued", False))
        elif kind == "step.skipped":
            st.ok = False
        st.status = nxt

    # --- questions the runner and resume ask -------------------------------------------------------

    def next_index(self) -> int:
        """Index of the first step not done, or len(steps) when all are."""
        for i, sid in enumerate(self.step_ids):
            if not self.steps[sid].done:
                return i
        return len(self.step_ids)

    def in_doubt(self) -> list[str]:
        return [sid for sid in self.step_ids if self.steps[sid].status is S.APPLYING]

    def context(self) -> dict[str, dict[str, Any]]:
        return dict(self._views)

    def completed_with_effect(self) -> list[str]:
        """Steps that succeeded, in order: the candidates for rollback."""
        return [sid for sid in self.step_ids if self.steps[sid].status is S.SUCCEEDED]


def replay(step_ids: list[str], records: list[dict[str, Any]]) -> RunState:
    state = RunState(step_ids)
    for rec in records:
        state.apply(rec)
    return state
