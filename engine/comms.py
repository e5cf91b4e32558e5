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

from collections.abc import Mapping
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
    for i, raw in enumerate(data.get("steps") or []):
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


def due(now: float, last: float, cadence_s: int) -> float | None:
    """When an update fell due, if it has: ``cadence_s`` after the last update (or the run's start)."""
    when = last + cadence_s
    return when if now >= when else None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
