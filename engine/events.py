"""The audit record types, the step and run statuses, and a run's outcome: each said here once.

Every record a run writes is one ``RecordType``; each type names the fields its records always carry (the
writer adds ``seq``, ``ts``, ``run``, ``mode``, ``prev`` and ``hash`` to all of them). The engine, the drill,
the store, the report and the terminal refer to these members, never to the strings: a record type that
does not exist cannot be written, and a scenario cannot name a status a step cannot reach.

``outcome`` is the one place that works out how a run ended (or is about to end) from its records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from engine.errors import AuditError


class RecordType(StrEnum):
    """What an audit record says happened. ``fields``: the keys its data always has."""

    fields: frozenset[str]

    def __new__(cls, value: str, *fields: str) -> RecordType:
        member = str.__new__(cls, value)
        member._value_ = value
        member.fields = frozenset(fields)
        return member

    RUN_STARTED = "run.started", "runbook", "inputs", "secret_inputs", "operator", "host", "pid", "version"
    RUN_RESUMED = "run.resumed", "previous_status", "at_step", "operator"
    RUN_INPUTS_CHANGED = "run.inputs_changed", "changes", "by"
    RUN_FINISHED = "run.finished", "status", "reason", "counts", "open"  # open: engine/followups.py
    STEP_STARTED = "step.started", "step", "title", "action", "effect", "args"
    STEP_PLANNED = "step.planned", "step", "summary", "changes", "final", "refused", "gated"
    STEP_APPLYING = "step.applying", "step"
    STEP_RETRIED = "step.retried", "step", "attempt", "reason", "delay"
    STEP_SUCCEEDED = "step.succeeded", "step", "output", "message", "attempts"
    STEP_FAILED = "step.failed", "step", "title", "error", "output", "attempts", "duration_ms", "continued"
    STEP_SKIPPED = "step.skipped", "step", "reason"
    # A `for_each` step's items, fixed when it first runs: a resume goes on over these, never a new render.
    LOOP_EXPANDED = "loop.expanded", "step", "keys", "items", "mapping"
    STEP_REFUSED = "step.refused", "step", "by", "how"
    STEP_INTERRUPTED = "step.interrupted", "step"
    STEP_IN_DOUBT = "step.in_doubt", "step", "decision", "by"
    GATE_ASKED = "gate.asked", "step", "gate", "message", "shown", "digest", "type_to_confirm"
    GATE_APPROVED = "gate.approved", "step", "gate", "digest", "approved", "by", "how", "answer"
    GATE_DENIED = "gate.denied", "step", "gate", "digest", "approved", "by", "how", "answer"
    # Other people at a gate: what an approver signed (appended by `breakglass approve`/`deny`), and what the
    # driving process made of it (counted, or rejected with the reason).
    APPROVAL_SIGNED = "approval.signed", "step", "gate", "by", "decision", "payload", "signature"
    APPROVAL_COUNTED = "approval.counted", "step", "gate", "by", "fingerprint", "record", "missing"
    APPROVAL_REJECTED = "approval.rejected", "step", "gate", "by", "record", "reason"
    # A four-eyes gate told its approvers it is open (`confirm.announce`): which action, and how it went.
    GATE_ANNOUNCED = "gate.announced", "step", "gate", "action", "ok", "message"
    # Re-planned after every answer was in, the plan was not the one approved (the DNS record moved): the
    # approvals are void (they signed the old digest) and the gate opens again with the new plan.
    GATE_VOIDED = "gate.voided", "step", "gate", "digest", "approved", "by", "how", "now", "plan"
    # The driving operator's signature over the run's final chain head (`run --sign`).
    HEAD_SIGNED = "head.signed", "head", "by", "fingerprint", "payload", "signature"
    ROLLBACK_BEGUN = "rollback.begun", "after", "steps"
    ROLLBACK_STARTED = "rollback.started", "step", "title", "action", "effect", "args"
    ROLLBACK_RETRIED = "rollback.retried", "step", "attempt", "reason", "delay"
    ROLLBACK_SUCCEEDED = "rollback.succeeded", "step", "output", "message", "attempts"
    ROLLBACK_FAILED = "rollback.failed", "step", "title", "error", "output", "attempts", "duration_ms"
    ROLLBACK_SKIPPED = "rollback.skipped", "step", "reason"
    NOTE = "note", "text", "by"
    # The runbook's `comms.cadence` passed since the last customer update (or the run's start) without one:
    # the operator was reminded (engine/comms.py). ``due`` and ``last`` are ISO 8601 UTC.
    COMMS_DUE = "comms.due", "due", "last", "cadence_s"
    DRILL_GRADED = "drill.graded", "scenario", "score", "total", "deviations", "outcome_expected", "outcome"

    def missing(self, data: Mapping[str, Any]) -> list[str]:
        """The fields ``data`` lacks for a record of this type (a bug in the engine, never the operator's)."""
        return sorted(self.fields - data.keys())


T = RecordType

# Records about the whole run: they never move a step.
RUN_RECORDS = frozenset({T.RUN_STARTED, T.RUN_RESUMED, T.RUN_INPUTS_CHANGED, T.RUN_FINISHED, T.GATE_ASKED,
                         T.GATE_APPROVED, T.GATE_DENIED, T.NOTE, T.ROLLBACK_BEGUN, T.DRILL_GRADED,
                         T.APPROVAL_SIGNED, T.APPROVAL_COUNTED, T.APPROVAL_REJECTED, T.GATE_VOIDED, T.GATE_ANNOUNCED,
                         T.HEAD_SIGNED, T.COMMS_DUE})
STARTS = frozenset({T.RUN_STARTED, T.RUN_RESUMED})  # where one drive of a run begins
DECISIONS = frozenset({T.GATE_APPROVED, T.GATE_DENIED, T.GATE_VOIDED})  # each closes one opening of a gate


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


class RunStatus(StrEnum):
    """How a run ended (the ``status`` of ``run.finished``), or where it is when it has not."""

    CREATED = "created"  # no record yet
    RUNNING = "running"  # a process is driving it now
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    ROLLED_BACK = "rolled_back"
    # The world is half changed and someone must look before anything else: never called rolled back.
    ROLLBACK_INCOMPLETE = "rollback_incomplete"
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C, a signal, or a crash (no run.finished at all)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]


EXIT_CODES = {RunStatus.SUCCEEDED: 0, RunStatus.FAILED: 1, RunStatus.ROLLED_BACK: 1, RunStatus.REFUSED: 3,
              RunStatus.ROLLBACK_INCOMPLETE: 7, RunStatus.INTERRUPTED: 130, RunStatus.CREATED: 1,
              RunStatus.RUNNING: 1}
# Every way a finished run can end: what a drill scenario may expect.
OUTCOMES = frozenset(EXIT_CODES) - {RunStatus.CREATED, RunStatus.RUNNING}
# Runs that stopped where a resume goes on (not a finished success, nor a rollback that undid the changes).
RESUMABLE = frozenset({RunStatus.REFUSED, RunStatus.INTERRUPTED, RunStatus.FAILED})

DRY_RUN_SKIP = "dry-run"  # a dry-run changed nothing, so a rollback it only planned leaves nothing undone


def left_undone(rec: Mapping[str, Any]) -> bool:
    """Whether this record ends an undo that did not happen: it failed, or its gate refused it."""
    kind = rec.get("type")
    return kind == T.ROLLBACK_FAILED or (kind == T.ROLLBACK_SKIPPED and rec.get("reason") != DRY_RUN_SKIP)


class Verdict:
    """How the latest drive of a run ends if it ends now, fed one record at a time (``RunState`` holds one).

    In the order things happen: a rollback ends ``rolled_back`` only when every undo happened, else
    ``rollback_incomplete``; a step interrupted, refused at its gate, or left in doubt with nobody deciding
    stops the run so; a failed step that did not say ``continue`` fails it (unless started again); else it
    succeeded. ``run.finished`` is the recorded truth once written.
    """

    def __init__(self) -> None:
        self._begin()

    def _begin(self) -> None:
        self.finished: RunStatus | None = None
        self._stopped: RunStatus | None = None
        self._failing: dict[str, bool] = {}  # step → failed without `continue`

    def apply(self, rec: Mapping[str, Any]) -> None:
        kind = rec.get("type")
        if kind in STARTS:
            self._begin()  # a resume is judged on what it does
        elif kind == T.RUN_FINISHED:
            try:
                self.finished = RunStatus(str(rec.get("status")))
            except ValueError:
                raise AuditError(f"record {rec.get('seq')}: run.finished with unknown status "
                                 f"'{rec.get('status')}'") from None
        elif self._stopped is RunStatus.ROLLED_BACK:
            if left_undone(rec):
                self._stopped = RunStatus.ROLLBACK_INCOMPLETE
        elif self._stopped is not None:
            return
        elif kind == T.ROLLBACK_BEGUN:
            self._stopped = RunStatus.ROLLED_BACK
        elif kind == T.STEP_INTERRUPTED:
            self._stopped = RunStatus.INTERRUPTED
        elif kind == T.STEP_REFUSED or (kind == T.STEP_IN_DOUBT and rec.get("decision") == REFUSE):
            self._stopped = RunStatus.REFUSED
        elif kind == T.STEP_FAILED:
            self._failing[str(rec.get("step"))] = not rec.get("continued")
        elif kind == T.STEP_STARTED:
            self._failing.pop(str(rec.get("step")), None)

    @property
    def status(self) -> RunStatus:
        if self.finished is not None:
            return self.finished
        if self._stopped is not None:
            return self._stopped
        return RunStatus.FAILED if any(self._failing.values()) else RunStatus.SUCCEEDED


def item_id(step_id: str, key: object) -> str:
    """The id an item of a ``for_each`` step is recorded under: ``step[key]`` (the index, or mapping key)."""
    return f"{step_id}[{key}]"


def parent_of(step_id: str) -> str | None:
    """The loop step an item id belongs to (``check_mx[2]`` → ``check_mx``), else None."""
    base, bracket, rest = step_id.partition("[")
    return base if bracket and rest.endswith("]") else None


REFUSE = "refuse"  # an in-doubt step nobody decided about: the run stops, refused


def outcome(records: Iterable[Mapping[str, Any]], alive: bool | None = None) -> RunStatus:
    """How a run ended, from its records alone: the one place this is worked out.

    The driver of a run asks with ``alive`` None: how the run ends if it ends now. A reader of a stored log
    that has no ``run.finished`` says whether a process holds the run's lock: then the run is ``running``,
    else its process died (kill -9, power) and it is ``interrupted``, awaiting resume.
    """
    verdict = Verdict()
    for rec in records:
        verdict.apply(rec)
    if verdict.finished is None and alive is not None:
        return RunStatus.RUNNING if alive else RunStatus.INTERRUPTED
    return verdict.status


# What every record carries besides its type's own fields (the writer adds them), with their JSON types.
ENVELOPE: dict[str, dict[str, Any]] = {
    "seq": {"type": "integer", "minimum": 1, "description": "1, 2, 3, ... in the run's log"},
    "ts": {"type": "string", "description": "UTC time the record was written, ISO 8601 with a Z"},
    "type": {"type": "string", "description": "what the record says happened"},
    "run": {"type": "string", "description": "the run id"},
    "mode": {"type": "string", "enum": ["live", "dry-run", "drill"]},
    "prev": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "the previous record's hash"},
    "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$",
             "description": "SHA-256 of the record's canonical JSON without this field"},
}
# Fields whose JSON type is the same in every record that has them.
FIELD_TYPES: dict[str, dict[str, Any]] = {
    "step": {"type": "string"}, "gate": {"type": "string"}, "title": {"type": "string"},
    "action": {"type": "string"}, "effect": {"type": "string", "enum": ["read", "notify", "write"]},
    "by": {"type": "string"}, "operator": {"type": "string"}, "digest": {"type": "string"},
    "attempts": {"type": "integer"}, "attempt": {"type": "integer"}, "text": {"type": "string"},
    "status": {"type": "string", "enum": sorted(s.value for s in RunStatus)}, "args": {"type": "object"},
    "changes": {"type": ["array", "object"]}, "duration_ms": {"type": "number"}, "approved": {"type": "boolean"},
}


def json_schema() -> dict[str, Any]:
    """JSON Schema of one audit record as `run --json`, `drill --json`, `watch --json` and `audit show --json`
    print it (one per line), generated from ``RecordType``: the envelope, then per type its own fields.
    Records may carry more fields than their type requires (optional ones); tools should ignore what they
    do not know."""
    variants = []
    for kind in RecordType:
        fields = sorted(kind.fields)
        variants.append({
            "title": kind.value,
            "properties": {"type": {"const": kind.value}, **{f: FIELD_TYPES.get(f, {}) for f in fields}},
            "required": fields,
        })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://breakglass.invalid/schema/record.json",
        "title": "an audit record of a breakglass run",
        "$comment": "Generated from engine/events.py by `breakglass schema --records`.",
        "type": "object",
        "properties": ENVELOPE,
        "required": sorted(ENVELOPE),
        "oneOf": variants,
    }
