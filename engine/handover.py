"""Hand-over: a run driven from one machine goes on from another (``breakglass resume``), after its driver
stopped, died, or had its lease broken on purpose (``--take-over``). Who handed over to whom, and when, goes
into the ``run.resumed`` record, and from there into the report.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from engine.events import RecordType
from engine.gates import Terminal, answer_word
from engine.i18n import _
from engine.text import visible_line


def last_driver(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Who drove the run last: the operator and host of its latest run.started or run.resumed."""
    for rec in reversed(records):
        if rec.get("type") in (RecordType.RUN_STARTED, RecordType.RUN_RESUMED):
            return {"operator": str(rec.get("operator", "?")), "host": str(rec.get("host", "?")),
                    "since": str(rec.get("ts", ""))}
    return {"operator": "?", "host": "?", "since": ""}


def resumed_fields(records: Sequence[dict[str, Any]], operator: str, took_over: dict[str, str] | None
                   ) -> dict[str, Any]:
    """What ``run.resumed`` says about the hand-over: this host, and who drove before when that was someone
    else or another machine."""
    host = socket.gethostname()
    fields: dict[str, Any] = {"host": host}
    before = last_driver(records)
    if (before["operator"], before["host"]) != (operator, host):
        fields["handed_over_from"] = before
    if took_over is not None:
        fields["took_over"] = took_over
    return fields


def take_over_confirmation(terminal: Terminal, run_id: str, operator: str) -> tuple[Callable[[str], bool],
                                                                                    dict[str, str]]:
    """The gate of ``--take-over``: asked at a terminal; without one, the flag itself is the decision, as
    ``--approve`` is for a step. The second value fills in as the question is decided, for the record."""
    decided: dict[str, str] = {}

    def confirm(holder: str) -> bool:
        decided.update({"from": holder, "by": operator})
        if not terminal.interactive:
            decided["how"] = "flag"
            return True
        terminal.say(_("Run {run} is driven by {holder}. Taking over ends that driver's database session: if it "
                       "still lives, its next record is refused and it stops before acting.").format(
                           run=run_id, holder=visible_line(holder)))
        answer = answer_word(terminal.ask(_("Take over this run? [yes/no]: ")) or "")
        decided["how"] = "tty"
        return answer == "yes"

    return confirm, decided


def handover_row(rec: dict[str, Any]) -> dict[str, str] | None:
    """A report's line for a ``run.resumed`` that changed hands: from, to, when, how (None: same driver)."""
    before, took = rec.get("handed_over_from"), rec.get("took_over")
    if not isinstance(before, dict) and not isinstance(took, dict):
        return None
    before = before if isinstance(before, dict) else {}
    how = "resumed after the driver stopped"
    if isinstance(took, dict):
        how = f"took over a stuck lease ({'asked at the terminal' if took.get('how') == 'tty' else '--take-over'})"
    return {"from": f"{before.get('operator', '?')} on {before.get('host', '?')}",
            "to": f"{rec.get('operator', '?')} on {rec.get('host', '?')}", "ts": str(rec.get("ts", "")), "how": how}
