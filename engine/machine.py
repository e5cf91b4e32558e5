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
       ├──step.skipped (when)──▶ skipped
       └──step.failed (its arguments did not render)──▶ failed
    succeeded ──rollback.succeeded──▶ rolled_back      succeeded ──rollback.failed──▶ rollback_failed

A ``for_each`` step is a parent whose items are steps of their own (``check_mx[0]``, ``check_mx[1]``, ...),
each walking the lifecycle above from the ``loop.expanded`` record that names them; the parent stays
``running`` until it records how the whole loop ended::

    running ──loop.expanded──▶ running (its items now exist, pending)

A step left in ``running`` when a log ends never acted on the world and is simply run again; one left in
``applying`` may or may not have, and is *in doubt*: the operator decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.errors import AuditError
from engine.events import RUN_RECORDS, RecordType, RunStatus, StepStatus, Verdict, item_id


class Variant(StrEnum):
    """A record whose fields change what it does to a step: its own entry in the table."""

    DRY_RUN_PLAN = "step.planned final"  # a dry-run stops after the plan: the step ends ``planned``


Transition = RecordType | Variant
S, T = StepStatus, RecordType

# (status now, record) → status next. Anything not here is an impossible log.
STEP_TRANSITIONS: dict[tuple[StepStatus, Transition], StepStatus] = {
    (S.PENDING, T.STEP_STARTED): S.RUNNING,
    (S.PENDING, T.STEP_SKIPPED): S.SKIPPED,
    (S.PENDING, T.STEP_FAILED): S.FAILED,  # failed before it could start: its arguments did not render
    (S.RUNNING, T.STEP_STARTED): S.RUNNING,  # a resumed run starts a never-applied step again
    (S.RUNNING, T.STEP_RETRIED): S.RUNNING,
    (S.RUNNING, T.STEP_PLANNED): S.RUNNING,  # a live run's plan precedes the gate
    (S.RUNNING, T.LOOP_EXPANDED): S.RUNNING,  # a loop's items are fixed; each is a step from here on
    (S.RUNNING, Variant.DRY_RUN_PLAN): S.PLANNED,
    (S.RUNNING, T.STEP_APPLYING): S.APPLYING,
    (S.RUNNING, T.STEP_SUCCEEDED): S.SUCCEEDED,
    (S.RUNNING, T.STEP_FAILED): S.FAILED,
    (S.RUNNING, T.STEP_SKIPPED): S.SKIPPED,
    (S.RUNNING, T.STEP_INTERRUPTED): S.RUNNING,
    (S.RUNNING, T.STEP_REFUSED): S.REFUSED,
    (S.APPLYING, T.STEP_RETRIED): S.APPLYING,
    (S.APPLYING, T.STEP_SUCCEEDED): S.SUCCEEDED,
    (S.APPLYING, T.STEP_FAILED): S.FAILED,
    (S.APPLYING, T.STEP_INTERRUPTED): S.APPLYING,
    (S.APPLYING, T.STEP_IN_DOUBT): S.APPLYING,
    (S.APPLYING, T.STEP_STARTED): S.RUNNING,  # the operator chose to run an in-doubt step again
    (S.FAILED, T.STEP_STARTED): S.RUNNING,  # resume of an aborted run tries the failed step again
    (S.FAILED, T.STEP_FAILED): S.FAILED,  # ... and its arguments still do not render
    (S.REFUSED, T.STEP_STARTED): S.RUNNING,  # resume of a refused run asks the gate again
    (S.REFUSED, T.STEP_FAILED): S.FAILED,
    (S.SUCCEEDED, T.ROLLBACK_STARTED): S.SUCCEEDED,
    (S.SUCCEEDED, T.ROLLBACK_RETRIED): S.SUCCEEDED,
    (S.SUCCEEDED, T.ROLLBACK_SKIPPED): S.SUCCEEDED,
    (S.SUCCEEDED, T.ROLLBACK_SUCCEEDED): S.ROLLED_BACK,
    (S.SUCCEEDED, T.ROLLBACK_FAILED): S.ROLLBACK_FAILED,
}

DONE = frozenset({S.SUCCEEDED, S.SKIPPED, S.PLANNED, S.ROLLED_BACK, S.ROLLBACK_FAILED})


def transition_of(rec: Mapping[str, Any]) -> Transition:
    """The table entry a record is looked up by; ValueError for a type that does not exist."""
    kind = RecordType(rec["type"])
    if kind is T.STEP_PLANNED and rec.get("final"):
        return Variant.DRY_RUN_PLAN
    return kind


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


@dataclass(frozen=True)
class LoopItems:
    """What ``loop.expanded`` fixed for a ``for_each`` step: its items' keys and values, in order."""

    keys: list[Any]
    values: list[Any]
    mapping: bool  # for_each gave a mapping: keys are its keys, and ``item_key`` names them

    def ids(self, step_id: str) -> list[str]:
        return [item_id(step_id, key) for key in self.keys]


@dataclass
class RunState:
    """Everything the engine knows about a run, derived from its records alone."""

    step_ids: list[str]
    mode: str = "live"
    run_id: str = ""
    status: RunStatus = RunStatus.CREATED
    steps: dict[str, StepState] = field(default_factory=dict)
    last_seq: int = 0
    # How the latest drive ends if it ends now: the outcome the runner records in run.finished.
    verdict: Verdict = field(default_factory=Verdict, repr=False, compare=False)
    # Each step's template view, refreshed when that step changes: rebuilding all of them for every step
    # made a run quadratic in its length (1,000 steps: ~2.6 ms of overhead per step).
    _views: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    loops: dict[str, LoopItems] = field(default_factory=dict)
    # Each loop's `items` in templates (a list, or a mapping by key) and each item's entry there: an item's
    # change updates its own entry in place, so a 1,000-item loop does not rebuild the view per item.
    _item_views: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for sid in self.step_ids:
            self.steps.setdefault(sid, StepState())
        self._views = {sid: st.as_context() for sid, st in self.steps.items()}

    def apply(self, rec: Mapping[str, Any]) -> None:
        """Feed one record; raise AuditError if the log describes something impossible."""
        self.last_seq = int(rec.get("seq", self.last_seq))
        try:
            kind = transition_of(rec)
        except ValueError:
            raise AuditError(f"record {self.last_seq}: unknown record type '{rec['type']}'") from None
        self.verdict.apply(rec)
        if kind in RUN_RECORDS:
            self._run_event(kind, rec)
            return
        sid = rec.get("step")
        if sid not in self.steps:
            raise AuditError(f"record {self.last_seq}: '{rec['type']}' names unknown step '{sid}'")
        st = self.steps[sid]
        nxt = STEP_TRANSITIONS.get((st.status, kind))
        if nxt is None:
            raise AuditError(f"record {self.last_seq}: step '{sid}' cannot go from {st.status} on '{rec['type']}'")
        self._step_event(st, kind, rec)
        st.status = nxt
        if kind is T.LOOP_EXPANDED:
            self._expand(str(sid), rec)
        entry = self._entries.get(str(sid))
        if entry is not None:
            entry.update(st.as_context())
        else:
            self._views[sid] = self._view(str(sid))

    def _view(self, sid: str) -> dict[str, Any]:
        view = self.steps[sid].as_context()
        if sid in self._item_views:
            view["items"] = self._item_views[sid]
        return view

    def _expand(self, sid: str, rec: Mapping[str, Any]) -> None:
        if sid in self.loops:
            raise AuditError(f"record {self.last_seq}: the items of loop '{sid}' were already fixed")
        loop = LoopItems(list(rec.get("keys") or []), list(rec.get("items") or []), bool(rec.get("mapping")))
        if len(loop.keys) != len(loop.values):
            raise AuditError(f"record {self.last_seq}: loop '{sid}' has {len(loop.keys)} keys for "
                             f"{len(loop.values)} items")
        self.loops[sid] = loop
        entries = []
        for iid, key, value in zip(loop.ids(sid), loop.keys, loop.values, strict=True):
            self.steps[iid] = StepState()
            self._entries[iid] = {"key": key, "item": value, **self.steps[iid].as_context()}
            entries.append(self._entries[iid])
        self._item_views[sid] = ({str(k): e for k, e in zip(loop.keys, entries, strict=True)} if loop.mapping
                                 else entries)

    @property
    def outcome(self) -> RunStatus:
        """How the run ends if it ends now (``events.outcome`` of the records fed so far)."""
        return self.verdict.status

    def _run_event(self, kind: Transition, rec: Mapping[str, Any]) -> None:
        if kind is T.RUN_STARTED:
            self.mode = str(rec.get("mode", "live"))
            self.run_id = str(rec.get("run", ""))
            self.status = RunStatus.RUNNING
        elif kind is T.RUN_RESUMED:
            self.status = RunStatus.RUNNING
        elif kind is T.RUN_FINISHED:
            self.status = self.verdict.status

    @staticmethod
    def _step_event(st: StepState, kind: Transition, rec: Mapping[str, Any]) -> None:
        """What a record tells about a step besides its status (that comes from the table alone)."""
        if kind is T.STEP_STARTED:
            st.effect = str(rec.get("effect", st.effect))
            st.attempts = 0
            st.continued = False
        elif kind is T.STEP_RETRIED:
            st.attempts = int(rec.get("attempt", st.attempts))
        elif kind in (T.STEP_PLANNED, Variant.DRY_RUN_PLAN):
            st.plan = {"summary": rec.get("summary"), "changes": rec.get("changes", [])}
            if kind is Variant.DRY_RUN_PLAN:
                st.ok = True
                st.output = {"planned": True, "plan": st.plan}
        elif kind in (T.STEP_SUCCEEDED, T.STEP_FAILED):
            st.output = dict(rec.get("output") or {})
            st.ok = kind is T.STEP_SUCCEEDED
            st.attempts = int(rec.get("attempts", st.attempts))
            st.continued = bool(rec.get("continued", False))
        elif kind is T.STEP_SKIPPED:
            st.ok = False

    # --- questions the runner and resume ask -------------------------------------------------------

    def next_index(self) -> int:
        """Index of the first step not done, or len(steps) when all are."""
        for i, sid in enumerate(self.step_ids):
            if not self.steps[sid].done:
                return i
        return len(self.step_ids)

    def in_doubt(self) -> list[str]:
        """Steps and loop items that began to apply and recorded no end."""
        return [sid for sid, st in self.steps.items() if st.status is S.APPLYING]

    def context(self) -> dict[str, dict[str, Any]]:
        return dict(self._views)

    def completed_with_effect(self) -> list[str]:
        """Steps that succeeded, in order: the candidates for rollback. A loop is its items that succeeded,
        in item order, whether the loop as a whole succeeded or not: each applied item is undone on its own,
        the failed loop's too."""
        done = []
        for sid in self.step_ids:
            loop = self.loops.get(sid)
            if loop is not None:
                done += [iid for iid in loop.ids(sid) if self.steps[iid].status is S.SUCCEEDED]
            elif self.steps[sid].status is S.SUCCEEDED:
                done.append(sid)
        return done


def replay(step_ids: list[str], records: list[dict[str, Any]]) -> RunState:
    """The state a run's log describes: the same as the live run's when it wrote that log."""
    state = RunState(step_ids)
    for rec in records:
        state.apply(rec)
    return state
