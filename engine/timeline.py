"""A run's audit records as terminal lines, for ``breakglass audit show``.

Records hold text from the world (command output, notes, titles): each line shows its control characters as
text, so a forged escape sequence in a note cannot redraw the operator's screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.events import RecordType
from engine.text import visible_line

DETAIL_KEYS = ("title", "reason", "error", "summary", "message", "status", "text", "by", "how", "choice")


def _detail(rec: dict[str, Any]) -> str:
    parts = []
    for key in DETAIL_KEYS:
        value = rec.get(key)
        if value not in (None, "", [], {}):
            parts.append(f"{key}={visible_line(str(value))}")
    changes = rec.get("changes")
    if rec.get("type") == RecordType.RUN_INPUTS_CHANGED and isinstance(changes, dict):  # an input changed on resume
        parts.append("inputs " + ", ".join(f"{visible_line(str(n))}: {_value(c.get('old'))} → {_value(c.get('new'))}"
                                           for n, c in changes.items() if isinstance(c, dict)))
    return "  ".join(parts)


def _value(value: Any) -> str:
    return "(empty)" if value is None else f"'{visible_line(str(value))}'"


def timeline_lines(records: Iterable[dict[str, Any]]) -> list[str]:
    lines = []
    for rec in records:
        step = visible_line(str(rec.get("step") or rec.get("gate") or ""))
        lines.append(f"{rec['seq']:>5} {rec['ts']}  {rec['type']:<18} {step:<22} {_detail(rec)}".rstrip())
    return lines
