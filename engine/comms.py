"""Telling customers during an incident: the runbook's `comms:` templates, the stages, the update cadence.

Status-page practice (Atlassian Statuspage, PagerDuty): an incident goes investigating → identified →
monitoring → resolved, and every update promises the next one at a time. A runbook writes its messages once,
under `comms.templates` (status_page, customer_notice; en and ja); a `comms.post` step names the kind and the
stage, and this module fills the kind's templates into the step's arguments *before* the step is checked or
run, so they are rendered exactly like any argument: once, in the sandbox, over inputs and steps (never over
what the world returned rendered again). The runner reminds the operator when `cadence` passed without an
update (``due``), and records it (``comms.due``); the report lists every update and reminder.

Pure functions only: the model, the loader and the runner import this module (actions/comms.py words
the message itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

ACTION = "comms.post"
KINDS = ("status_page", "customer_notice")
LANGS = ("en", "ja")
STAGES = ("investigating", "identified", "monitoring", "resolved")
# The arguments the engine fills from `comms:`; a runbook does not write them.
FILLED = ("templates", "cadence_minutes")


def cadence_minutes(cadence: Any) -> int | None:
    """``"30m"`` → 30, ``"1h"`` → 60; None for anything else (the model reports it)."""
    if not isinstance(cadence, str) or len(cadence) < 2 or cadence[-1] not in "mh" or not cadence[:-1].isdigit():
        return None
    return int(cadence[:-1]) * (60 if cadence[-1] == "h" else 1)


def with_comms(data: Any) -> Any:
    """The runbook's raw data with each `comms.post` step's `templates` and `cadence_minutes` filled from
    `comms:` (its kind's en and ja text). Anything malformed is returned as it is, for validation to report."""
    if not isinstance(data, dict) or not isinstance(data.get("comms"), dict) or not isinstance(
            data.get("steps"), list):
        return data
    comms = data["comms"]
    texts = comms.get("templates") if isinstance(comms.get("templates"), dict) else {}
    minutes = cadence_minutes(comms.get("cadence"))
    return {**data, "steps": [_filled(raw, texts, minutes) for raw in data["steps"]]}


def _filled(raw: Any, texts: Mapping[str, Any], minutes: int | None) -> Any:
    if not isinstance(raw, dict) or raw.get("action") != ACTION or not isinstance(raw.get("with", {}), dict):
        return raw
    args = dict(raw.get("with") or {})
    kind = args.get("kind")
    if isinstance(kind, str) and isinstance(texts.get(kind), dict) and "templates" not in args:
        args["templates"] = dict(texts[kind])
    if minutes is not None and "cadence_minutes" not in args:
        args["cadence_minutes"] = minutes
    return {**raw, "with": args}


def problems(data: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """(data path, message) for each `comms.post` step the runbook's `comms:` cannot serve."""
    found: list[tuple[tuple[Any, ...], str]] = []
    comms = data.get("comms")
    given = comms.get("templates") if isinstance(comms, dict) else None
    texts: Mapping[str, Any] = given if isinstance(given, dict) else {}
    steps = data.get("steps")
    for i, raw in enumerate(steps if isinstance(steps, list) else []):  # anything else: the model says so
        if not isinstance(raw, dict) or raw.get("action") != ACTION:
            continue
        written = raw.get("with")
        args: dict[str, Any] = written if isinstance(written, dict) else {}
        kind = args.get("kind")
        if not isinstance(comms, dict):
            found.append((("steps", i, "action"), "comms.post needs the runbook's top-level `comms:` (cadence and "
                                                  "templates)"))
        elif isinstance(kind, str) and kind in KINDS and not isinstance(texts.get(kind), dict):
            found.append((("steps", i, "with", "kind"), f"`comms.templates` has no {kind} text"))
        elif not isinstance(kind, str) or kind not in KINDS:
            found.append((("steps", i, "with", "kind"), f"kind must be written out: {' or '.join(KINDS)}"))
        for name in FILLED:
            if name in args:
                found.append((("steps", i, "with", name), f"'{name}' comes from the runbook's `comms:`; do not "
                                                          "write it"))
    return found


# --- the reminder ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    """Where a run stands with its customers: when the last update went out (or the run started), when the
    next one is owed (what that update promised; None once `resolved` promised none), and the due time the
    operator was last reminded of. All on the run's clock (epoch seconds)."""

    last: float
    due: float | None
    reminded: float | None = None

    def reminder(self, now: float) -> Owed | None:
        """The state after reminding, when a reminder is due now and was not given for this due time."""
        # Compared in whole seconds: the log holds a due time as ISO 8601 without fractions.
        if self.due is None or now < self.due or (self.reminded is not None and int(self.due) == int(self.reminded)):
            return None
        return replace(self, reminded=self.due)


def at_start(started: float, cadence_s: int) -> Owed:
    """A run owes its first update ``cadence`` after it starts."""
    return Owed(started, started + cadence_s)


def after_post(when: float, output: Mapping[str, Any], cadence_s: int, reminded: float | None = None) -> Owed:
    """After a ``comms.post`` went out at ``when``: the next update is owed when it promised (its
    ``next_update``), none after ``resolved``."""
    if output.get("stage") == "resolved":
        return Owed(when, None, reminded)
    promised = output.get("next_update")
    return Owed(when, epoch(promised) if isinstance(promised, str) else when + cadence_s, reminded)


def from_records(records: Iterable[Mapping[str, Any]], cadence_s: int) -> Owed:
    """What a run owes its customers, read from its log: a resumed run (a hand-over) keeps the promise the last
    update made, and is reminded of a due time only once, whoever drives it."""
    owed: Owed | None = None
    posts: set[str] = set()
    for rec in records:
        kind = rec.get("type")
        if kind == "run.started":
            owed = at_start(epoch(str(rec["ts"])), cadence_s)
        elif kind == "step.started" and rec.get("action") == ACTION:
            posts.add(str(rec.get("step")))
        elif kind == "step.succeeded" and str(rec.get("step")) in posts and owed is not None:
            output = rec.get("output")
            owed = after_post(epoch(str(rec["ts"])), output if isinstance(output, dict) else {}, cadence_s,
                              owed.reminded)
        elif kind == "comms.due" and owed is not None and isinstance(rec.get("due"), str):
            owed = replace(owed, reminded=epoch(rec["due"]))
    if owed is None:
        raise ValueError("a run's records begin with run.started")
    return owed


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(iso_time: str) -> float:
    """``2026-11-30T06:40:00Z`` (or ``...+00:00``, with fractions) → epoch seconds."""
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()
