"""A run's audit log → a post-incident report, as plain data (rendered by ``engine.report_render``).

Everything here comes from the log alone: if it is not in the log, it did not happen. Values were redacted
when they entered the log, so the report cannot reveal a secret the log does not hold. A log whose hash
chain does not verify still gets a report, with the problems at the top; lines that cannot be read at all
are left out and named there.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from engine import comms
from engine.audit import Verdict
from engine.calls import SEP as CALL_SEP
from engine.errors import AuditError
from engine.events import DECISIONS, RecordType, RunStatus, outcome
from engine.handover import handover_row
from engine.machine import RunState
from engine.redact import MASK

# The data model lives in report_model; its names are re-exported so ``engine.report`` stays the one import.
from engine.report_model import Chain as Chain
from engine.report_model import Event as Event
from engine.report_model import GateRow as GateRow
from engine.report_model import Report as Report
from engine.report_model import StepRow as StepRow
from engine.report_model import fmt_seconds as fmt_seconds
from engine.report_model import fmt_ts as fmt_ts
from engine.store import RunStore

RUNBOOK_AUTHOR = "the runbook"  # who a note from the runbook's own text (log.note) is credited to
DETAIL_KEYS = ("title", "summary", "reason", "error", "message", "status", "text", "how", "choice", "decision",
               "at_step")
T = RecordType
STEP_END = (T.STEP_SUCCEEDED, T.STEP_FAILED, T.STEP_SKIPPED, T.STEP_INTERRUPTED)


# --- reading -------------------------------------------------------------------------------------------


def from_store(store: RunStore, run_id: str) -> Report:
    """The report of a run (an id, a unique prefix or 'last'): every record that can be read, and whether the
    chain verifies; lines that cannot be read are named, not fatal (the report renders what it can)."""
    run_id = store.resolve(run_id)
    records, unreadable = store.read_lenient(run_id)
    return checked(run_id, records, unreadable, store.verify(run_id), store.is_driven(run_id))


def checked(run_id: str, records: list[dict[str, Any]], unreadable: list[str], verdict: Verdict,
            alive: bool) -> Report:
    """The report of records read leniently (``unreadable`` names the lines that were not) and their chain's
    verdict."""
    chain = Chain(verdict.ok, verdict.head, verdict.records, list(dict.fromkeys(verdict.problems + unreadable)))
    return build(run_id, records, chain, alive)


# --- building ------------------------------------------------------------------------------------------


def _epoch(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (ValueError, TypeError, AttributeError):
        return None


def _seconds(first: str | float | None, ts: str) -> float:
    """Seconds from ``first`` (a timestamp, or its epoch value when called in a loop) to ``ts``."""
    start = _epoch(first) if isinstance(first, str) else first
    end = _epoch(ts)
    return 0.0 if start is None or end is None else round(end - start, 3)


def _detail(rec: dict[str, Any]) -> str:
    kind = rec["type"]
    parts = []
    for key in DETAIL_KEYS:
        value = rec.get(key)
        if value is not None and value != "" and value != [] and value != {}:
            if not (key == "choice" and kind == T.GATE_APPROVED):
                parts.append(f"{key}: {value}")
    if kind == T.RUN_STARTED:
        parts.insert(0, f"runbook: {(rec.get('runbook') or {}).get('id', '?')}")
    elif kind == T.ROLLBACK_BEGUN:
        parts.insert(
            0,
            f"after {rec.get('after')}, undoing: {', '.join(map(str, rec.get('steps') or [])) or 'nothing'}",
        )
    elif kind == T.DRILL_GRADED:
        parts.insert(0, f"score {rec.get('score')}/{rec.get('total')}, outcome {rec.get('outcome')}")
    return "; ".join(parts)


def _declared_steps(started: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, StepRow]:
    """Steps in runbook order (from the runbook text the log holds), then any others the log names."""
    rows: dict[str, StepRow] = {}
    for sid, title, action in _runbook_steps(str((started.get("runbook") or {}).get("text") or "")):
        rows.setdefault(sid, StepRow(sid, title, action))
    declared = len(rows)
    for rec in records:
        named = rec.get("step")
        if named and rec["type"].startswith(("step.", "rollback.")) and str(named) not in rows:
            rows[str(named)] = StepRow(str(named))
    if len(rows) == declared or not any(CALL_SEP in sid for sid in list(rows)[declared:]):
        return rows
    # A called runbook's steps (`<call>.<step>`, engine.calls) are read under their call, in log order.
    position = {sid: n for n, sid in enumerate(rows)}
    return {sid: rows[sid] for sid in sorted(rows, key=lambda sid: _under_call(sid, position))}


def _under_call(sid: str, position: dict[str, int]) -> tuple[int, ...]:
    parts = sid.split(CALL_SEP)
    return tuple(position.get(CALL_SEP.join(parts[:n]), position[sid]) for n in range(1, len(parts) + 1))


@functools.lru_cache(maxsize=16)
def _runbook_steps(text: str) -> tuple[tuple[str, str, str], ...]:
    """(id, title, action) of every step, read from the YAML event stream: building Python objects for a
    runbook of thousands of steps would cost more than the whole report. Cached: the live page
    (engine.web) rebuilds a run's report on every change, and its runbook text never changes."""
    import yaml

    out: list[tuple[str, str, str]] = []
    stack: list[dict[str, Any]] = []
    try:
        for ev in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append(_frame(ev, stack[-1] if stack else None))
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                if frame["role"] == "step" and "id" in frame["item"] and not frame.get("group"):
                    item = frame["item"]
                    out.append((item["id"], item.get("title", ""), item.get("action", "")))
                _value_done(stack)
            elif isinstance(ev, (yaml.ScalarEvent, yaml.AliasEvent)) and stack:
                top = stack[-1]
                if top["map"] and top["expect_key"]:
                    top["key"], top["expect_key"] = str(getattr(ev, "value", "")), False
                    continue
                if top["role"] == "step":
                    top["item"][top["key"]] = str(getattr(ev, "value", ""))
                _value_done(stack)
    except yaml.YAMLError:
        return ()
    return tuple(out)


def _frame(ev: Any, parent: dict[str, Any] | None) -> dict[str, Any]:
    import yaml

    is_map = isinstance(ev, yaml.MappingStartEvent)
    role = "root" if parent is None else ""
    if parent is not None and parent["role"] == "root" and parent["key"] == "steps" and not is_map:
        role = "steps"
    elif parent is not None and parent["role"] == "step" and parent["key"] == "parallel" and not is_map:
        role = "steps"  # a group's steps are the report's rows, in place of the group
        parent["group"] = True
    elif parent is not None and parent["role"] == "steps" and is_map:
        role = "step"
    return {"map": is_map, "expect_key": True, "key": None, "role": role, "item": {}}


def _value_done(stack: list[dict[str, Any]]) -> None:
    if stack and stack[-1]["map"]:
        stack[-1]["expect_key"] = True


def build(run_id: str, records: list[dict[str, Any]], chain: Chain, alive: bool = False) -> Report:
    """The report's data from the run's records, in log order."""
    started = next((r for r in records if r["type"] == T.RUN_STARTED), records[0] if records else {})
    first = records[0]["ts"] if records else ""
    origin = _epoch(first)
    last = records[-1]["ts"] if records else ""
    steps = _declared_steps(started, records)
    state = _replay(list(steps), records, chain)
    gates: list[GateRow] = []
    events: list[Event] = []
    notes: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    rollback: list[dict[str, Any]] = []
    in_doubt: list[dict[str, Any]] = []
    inputs_changed: list[dict[str, Any]] = []
    handovers: list[dict[str, str]] = []
    updates: list[dict[str, Any]] = []
    reminders: list[dict[str, Any]] = []
    operators: list[str] = []
    driver = ""  # who drives the run from here: its starter, then whoever resumed it
    for rec in records:
        kind, at = rec["type"], _seconds(origin, rec["ts"])
        by = str(rec.get("by") or rec.get("operator") or rec.get("marked_by") or "")
        if kind in (T.RUN_STARTED, T.RUN_RESUMED):
            driver = str(rec.get("operator") or "")
        if by and by not in operators:
            operators.append(by)
        events.append(
            Event(
                int(rec.get("seq", 0)),
                str(rec["ts"]),
                at,
                kind,
                str(rec.get("gate") or rec.get("step") or ""),
                by,
                _detail(rec),
            )
        )
        if kind.startswith("step.") and rec.get("step") in steps:
            _on_step(steps[str(rec["step"])], rec, at, notes, driver)
            if kind == T.STEP_SUCCEEDED and steps[str(rec["step"])].action == comms.ACTION:
                updates.append(_update(rec))
            decided = _in_doubt_decision(rec)
            if decided is not None:
                in_doubt.append(decided)
        elif kind == T.GATE_ASKED:
            asked = rec.get("others")
            others: dict[str, Any] = asked if isinstance(asked, dict) else {}
            gates.append(GateRow(str(rec.get("gate", "")), str(rec.get("step", "")), at,
                                 needed=int(others.get("needed") or 0),
                                 approvers=[str(a) for a in others.get("approvers") or []],
                                 digest=str(rec.get("digest", "")) if others else ""))
        elif kind in DECISIONS:
            _on_decision(gates, steps, rec, at)
        elif kind in (T.APPROVAL_COUNTED, T.APPROVAL_REJECTED):
            _on_approval(gates, rec)
        elif kind == T.RUN_INPUTS_CHANGED:
            inputs_changed += [{"name": str(name), "old": change.get("old"), "new": change.get("new"), "by": by,
                                "ts": rec["ts"]} for name, change in (rec.get("changes") or {}).items()
                               if isinstance(change, dict)]
        elif kind == T.RUN_RESUMED and (handed := handover_row(rec)) is not None:
            handovers.append(handed)
        elif kind == T.COMMS_DUE:
            reminders.append({"ts": rec["ts"], "due": str(rec.get("due", "")), "last": str(rec.get("last", ""))})
        elif kind == T.NOTE:
            notes.append({"ts": rec["ts"], "by": by, "text": str(rec.get("text", "")), "step": ""})
        elif kind.startswith("rollback."):
            rollback.append(
                {"ts": rec["ts"], "type": kind, "step": str(rec.get("step", "")), "detail": _detail(rec)}
            )
        if kind in (T.STEP_FAILED, T.ROLLBACK_FAILED, T.GATE_DENIED):
            failures.append(
                {
                    "ts": rec["ts"],
                    "type": kind,
                    "subject": str(rec.get("gate") or rec.get("step")),
                    "error": str(rec.get("error") or f"refused by {by} ({rec.get('how')})"),
                    "continued": bool(rec.get("continued", False)),
                }
            )
    for sid, st in state.steps.items():
        if sid in steps:
            steps[sid].status = str(st.status)
    finish = _finish(records)
    status = _status(records, finish, alive)
    secret = set(started.get("secret_inputs") or [])
    graded = next((r for r in reversed(records) if r["type"] == T.DRILL_GRADED), None)
    return Report(
        run_id=run_id,
        runbook=_runbook_meta(started),
        mode=str(started.get("mode", "?")),
        status=status,
        finished=finish is not None,
        reason=str((finish or {}).get("reason", "")),
        open_items=[dict(i) for i in (finish or {}).get("open") or [] if isinstance(i, dict)],
        chain=chain,
        operators=operators,
        inputs={k: MASK if k in secret else v for k, v in (started.get("inputs") or {}).items()},
        first_ts=first,
        last_ts=last,
        total_s=_seconds(first, last),
        events=events,
        steps=list(steps.values()),
        gates=gates,
        notes=notes,
        failures=failures,
        rollback=rollback,
        time_to_diagnose_s=_diagnosed(records, first),
        time_to_mitigate_s=_mitigated(records, first),
        at_step="" if finish else _at_step(state),
        counts=_counts(steps.values()),
        drill=_drill(started, graded),
        lang=_language(started),
        in_doubt=in_doubt,
        inputs_changed=inputs_changed,
        handovers=handovers,
        updates=updates,
        reminders=reminders,
    )


def _update(rec: dict[str, Any]) -> dict[str, Any]:
    """One customer update as the report lists it: when, which, and the exact words."""
    given, written = rec.get("output"), None
    out: dict[str, Any] = given if isinstance(given, dict) else {}
    written = out.get("texts")
    texts: dict[str, Any] = written if isinstance(written, dict) else {}
    return {"ts": rec["ts"], "step": str(rec.get("step", "")), "kind": str(out.get("kind", "")),
            "stage": str(out.get("stage", "")), "texts": {str(k): str(v) for k, v in texts.items()},
            "posted": bool(out.get("posted")), "next_update": out.get("next_update")}


def _replay(ids: list[str], records: list[dict[str, Any]], chain: Chain) -> RunState:
    """Step statuses through the engine's own state machine; an impossible record is named, then skipped."""
    state = RunState(ids)
    for rec in records:
        try:
            state.apply(rec)
        except AuditError as exc:
            chain.problems.append(f"{exc} (the record is shown in the timeline but ignored for step status)")
            chain.ok = False
    return state


def _on_step(row: StepRow, rec: dict[str, Any], at: float, notes: list[dict[str, Any]], driver: str) -> None:
    kind = rec["type"]
    if kind == T.STEP_STARTED:
        row.title = str(rec.get("title") or row.title)
        row.action = str(rec.get("action") or row.action)
        row.effect = str(rec.get("effect") or row.effect)
        row.start_s, row.end_s, row.duration_s, row.error = at, None, None, ""
    elif kind == T.STEP_PLANNED:
        row.summary = str(rec.get("summary") or "")
        if rec.get("final"):
            row.end_s = at
            row.duration_s = round(at - (row.start_s if row.start_s is not None else at), 3)
    elif kind == T.STEP_SKIPPED:
        row.title = str(rec.get("title") or row.title)
        row.start_s = at if row.start_s is None else row.start_s
        row.end_s = at
    elif kind in STEP_END:
        row.end_s = at
        ms = rec.get("duration_ms")
        span = at - (row.start_s if row.start_s is not None else at)
        row.duration_s = round(min(float(ms) / 1000, span) if isinstance(ms, (int, float)) else span, 3)
        row.attempts = int(rec.get("attempts") or row.attempts)
        row.error = str(rec.get("error") or "")
        output = rec.get("output")
        if isinstance(output, dict):
            typed = _take_output(row, output)
            text = output.get("note")
            if kind in (T.STEP_SUCCEEDED, T.STEP_FAILED) and isinstance(text, str) and text.strip():
                # A note typed at the step's prompt is by whoever drove the run then (a resume may have handed
                # it to someone else); any other (log.note) was written by the runbook's author.
                by = driver if typed else RUNBOOK_AUTHOR
                notes.append({"ts": rec["ts"], "by": by, "text": text, "step": row.id})


def _take_output(row: StepRow, output: dict[str, Any]) -> bool:
    """What a person wants to read again from a step's output: answers typed at a manual step (told apart by
    their shape, since the engine names no action) and a command's output. True when an operator typed it."""
    checklist, answers = output.get("checklist"), output.get("answers")
    typed = isinstance(checklist, dict) or isinstance(answers, dict)
    if typed:
        # Only a literal true is a tick: an item answered no, or never reached, stays unticked.
        row.checklist = {str(k): v is True for k, v in (checklist or {}).items()}
        row.answers = {str(k): "" if v is None else str(v) for k, v in (answers or {}).items()}
        row.assumed = output.get("assumed") is True
    row.stdout = output["stdout"] if isinstance(output.get("stdout"), str) else ""
    row.stderr = output["stderr"] if isinstance(output.get("stderr"), str) else ""
    row.output_truncated = bool(output.get("stdout_truncated") or output.get("stderr_truncated"))
    return typed


def _in_doubt_decision(rec: dict[str, Any]) -> dict[str, Any] | None:
    """A step cut off while applying, and what an operator said about it on resume: run it again, or done."""
    if rec["type"] == T.STEP_IN_DOUBT:
        decision, by = str(rec.get("decision") or "rerun"), str(rec.get("by") or "")
    elif rec["type"] == T.STEP_SUCCEEDED and rec.get("marked_by"):
        decision, by = "done", str(rec["marked_by"])
    else:
        return None
    return {"ts": rec["ts"], "step": str(rec.get("step", "")), "decision": decision, "by": by}


def _on_decision(gates: list[GateRow], steps: dict[str, StepRow], rec: dict[str, Any], at: float) -> None:
    gid = str(rec.get("gate", ""))
    row = next((g for g in reversed(gates) if g.gate == gid and g.approved is None), None)
    if row is None:  # a decision without its question: show it anyway
        row = GateRow(gid, str(rec.get("step", "")), at)
        gates.append(row)
    row.approved = rec["type"] == T.GATE_APPROVED
    row.decided_s, row.by, row.how = at, str(rec.get("by", "")), str(rec.get("how", ""))
    row.choice = "" if row.approved else str(rec.get("choice", ""))
    if rec["type"] == T.GATE_VOIDED:
        row.choice = "void: the plan changed before it was applied; asked again"
    row.waited_s = round(at - row.asked_s, 3)
    step = steps.get(row.step)
    if row.approved and step is not None and not gid.endswith(".rollback"):
        step.approved_by = f"{row.by} ({row.how})"


def _on_approval(gates: list[GateRow], rec: dict[str, Any]) -> None:
    """An approval as the driving process judged it, under the opening of the gate it answered."""
    row = next((g for g in reversed(gates) if g.gate == rec.get("gate")), None)
    if row is None:
        return
    if rec["type"] == T.APPROVAL_COUNTED and rec.get("scripted"):
        verdict, detail = "scripted", ""
    elif rec["type"] == T.APPROVAL_COUNTED:
        verdict, detail = "verified", str(rec.get("fingerprint"))
    else:
        verdict, detail = "not_counted", str(rec.get("reason"))
    row.approvals.append({"by": str(rec.get("by", "")), "verdict": verdict, "detail": detail})


def _finish(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run.finished that closes the latest start or resume, if any."""
    for rec in reversed(records):
        if rec["type"] == T.RUN_FINISHED:
            return dict(rec)
        if rec["type"] in (T.RUN_STARTED, T.RUN_RESUMED):
            return None
    return None


def _status(records: list[dict[str, Any]], finish: dict[str, Any] | None, alive: bool) -> str:
    """How the run ended; a run still driven is shown as a live status view (``in_progress``)."""
    try:
        status = outcome(records, alive=alive)
    except AuditError:  # a run.finished no engine wrote: shown as it stands, the chain says the rest
        return str((finish or {}).get("status"))
    return "in_progress" if status is RunStatus.RUNNING else str(status)


def _runbook_meta(started: dict[str, Any]) -> dict[str, Any]:
    rb = started.get("runbook") or {}
    return {
        "id": str(rb.get("id", "?")),
        "title": str(rb.get("title", "")),
        "path": str(rb.get("path", "")),
        "sha256": str(rb.get("sha256", "")),
        "host": str(started.get("host", "")),
        "version": str(started.get("version", "")),
    }


def _effects(records: list[dict[str, Any]]) -> dict[str, str]:
    return {str(r.get("step")): str(r.get("effect", "read")) for r in records if r["type"] == T.STEP_STARTED}


def _diagnosed(records: list[dict[str, Any]], first: str) -> float | None:
    """Start → the first change planned or put to a gate: the team knew what to do."""
    effects = _effects(records)
    for rec in records:
        if (
            rec["type"] in (T.STEP_PLANNED, T.GATE_ASKED)
            and effects.get(str(rec.get("step")), "read") != "read"
        ):
            return _seconds(first, rec["ts"])
    return None


def _mitigated(records: list[dict[str, Any]], first: str) -> float | None:
    """Start → the last change that succeeded (writes first; notifications when nothing was written)."""
    effects = _effects(records)
    for wanted in (("write",), ("write", "notify")):
        done = [
            r for r in records if r["type"] == T.STEP_SUCCEEDED and effects.get(str(r.get("step"))) in wanted
        ]
        if done:
            return _seconds(first, done[-1]["ts"])
    return None


def _at_step(state: RunState) -> str:
    for sid in reversed(state.step_ids):  # the innermost: a call runs while its runbook's step does
        if str(state.steps[sid].status) in ("running", "applying"):
            return str(sid)
    i = state.next_index()
    return str(state.step_ids[i]) if i < len(state.step_ids) else "(end)"


def _counts(rows: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def _language(started: dict[str, Any]) -> str:
    """The run's language when its log says (and breakglass still speaks it), else the one the reader chose."""
    from engine import i18n

    said = started.get("lang")
    return said if isinstance(said, str) and said in i18n.LANGUAGES else i18n.language()


def _drill(started: dict[str, Any], graded: dict[str, Any] | None) -> dict[str, Any] | None:
    meta = started.get("drill")
    if not meta and graded is None:
        return None
    out: dict[str, Any] = {
        "scenario": str((meta or {}).get("scenario", "")),
        "title": str((meta or {}).get("title", "")),
    }
    if graded is not None:
        for key in (
            "score",
            "total",
            "deviations",
            "decisions",
            "outcome_expected",
            "outcome",
            "simulated_durations",
        ):
            out[key] = graded.get(key)
    return out
