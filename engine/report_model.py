"""The post-incident report as plain data: what ``engine.report`` builds and ``engine.report_render`` shows.

Mutable where the builder fills values in as it walks the log (steps, gates, the chain verdict), frozen where a
row is written once (timeline events). ``Report.to_dict`` is the JSON form. The two ``fmt_`` helpers say
durations and timestamps the way every rendering shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any


@dataclass(frozen=True)
class Event:
    """One audit record as a timeline row."""

    seq: int
    ts: str
    at_s: float  # seconds since the first record
    type: str
    subject: str  # the step or gate it concerns
    by: str
    detail: str


@dataclass
class StepRow:
    id: str
    title: str = ""
    action: str = ""
    effect: str = ""  # read | write | notify, once the step started
    status: str = "pending"
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    attempts: int = 0
    summary: str = ""  # the plan of a mutating step
    error: str = ""
    approved_by: str = ""
    # What the operator typed at a manual step: each checklist item as ticked or not, each question's answer.
    checklist: dict[str, bool] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    assumed: bool = False  # a manual step taken as done by --yes: nobody ticked anything
    # A command's output as the log holds it, shown whole (it was already cut to the action's max_output).
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False


@dataclass
class GateRow:
    gate: str
    step: str
    asked_s: float
    decided_s: float | None = None
    approved: bool | None = None
    by: str = ""
    how: str = ""
    choice: str = ""
    waited_s: float | None = None  # gate.asked → decision, from the record timestamps
    # Other people at a four-eyes gate, as the driving process judged their signatures: who (by), the verdict
    # (verified, scripted in a drill, not_counted) and its detail (the key's fingerprint, or why not).
    approvals: list[dict[str, str]] = field(default_factory=list)
    # What the gate asked of other people when it opened: how many, from whom (names and @groups as the
    # runbook wrote them), over which plan digest. 0: the operator's gate alone.
    needed: int = 0
    approvers: list[str] = field(default_factory=list)
    digest: str = ""

    @property
    def given(self) -> int:
        return sum(1 for a in self.approvals if a.get("verdict") in ("verified", "scripted"))


@dataclass
class Chain:
    ok: bool
    head: str
    records: int
    problems: list[str]


@dataclass
class Report:
    run_id: str
    runbook: dict[str, Any]
    mode: str
    status: str  # the run.finished status, or in_progress / interrupted for a live status view
    finished: bool
    reason: str
    chain: Chain
    operators: list[str]
    inputs: dict[str, Any]
    first_ts: str
    last_ts: str
    total_s: float
    events: list[Event]
    steps: list[StepRow]
    gates: list[GateRow]
    notes: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    rollback: list[dict[str, Any]] = field(default_factory=list)
    time_to_diagnose_s: float | None = None
    time_to_mitigate_s: float | None = None
    at_step: str = ""  # where a run that has not finished stands
    drill: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    inputs_changed: list[dict[str, Any]] = field(default_factory=list)  # accepted on resume: name, old, new, by
    in_doubt: list[dict[str, Any]] = field(default_factory=list)  # what was decided about steps cut off mid-change
    handovers: list[dict[str, str]] = field(default_factory=list)  # the run changed hands: from, to, ts, how
    lang: str = "en"  # the language the report is written in: the run's (run.started says), unless asked
    open_items: list[dict[str, Any]] = field(default_factory=list)  # run.finished's `open` (engine/followups.py)
    # What customers were told (engine/comms.py): each `comms.post` that went out (ts, step, kind, stage, texts,
    # posted, next_update), and each reminder that an update was due (ts, due).
    updates: list[dict[str, Any]] = field(default_factory=list)
    reminders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answered(self) -> list[StepRow]:
        """Steps where the operator ticked items or answered questions (manual steps)."""
        return [s for s in self.steps if s.checklist or s.answers]

    @property
    def command_output(self) -> list[StepRow]:
        """Steps that ran a command and kept what it printed."""
        return [s for s in self.steps if s.stdout or s.stderr]

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies every value, which costs seconds on big logs.
        out = dict(vars(self))
        out["chain"] = dict(vars(self.chain))
        for key in ("events", "steps", "gates"):
            out[key] = [dict(vars(item)) for item in getattr(self, key)]
        return out


def fmt_seconds(value: float | None) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min: durations for people."""
    if value is None:
        return "n/a"
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# Japanese readers read times in Japan's time with the date written out (2026年11月30日 02:15:01 JST); Japan
# keeps no daylight saving time, so a fixed offset says it without a time zone database.
JST = timezone(timedelta(hours=9), "JST")


def _moment(ts: str) -> datetime | None:
    """A record's timestamp as an aware datetime (a zone-less one is UTC); None when it is not one."""
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def fmt_ts(ts: str, lang: str = "en") -> str:
    """An ISO timestamp as a reader of ``lang`` expects it: 2024-05-01 12:00:01Z, or 2024年5月1日 21:00:01 JST."""
    moment = _moment(ts)
    if moment is None:
        return ts
    if lang == "ja":
        local = moment.astimezone(JST)
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S} JST"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso_utc(ts: str) -> str:
    """The machine-readable form of a timestamp (an HTML ``<time datetime>``): UTC, ISO 8601."""
    moment = _moment(ts)
    if moment is None:
        return ts
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
