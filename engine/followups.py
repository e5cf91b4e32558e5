"""What is still open when a run ends: checklist items nobody ticked, deadlines actions found, the next command.

Computed once, by the runner, from the steps' outputs as the run state holds them (so a resumed run counts
what was done before the resume), and recorded in ``run.finished`` as ``open``: the terminal prints it from
that record and the report reads it from the log. An incident is rarely over when the last step is: a legal
deadline found at step 3, a renewal date, an unticked "auto-renew on" must still be in front of someone at
the end.

Every command named here is one the CLI has (tests/cli/test_followup_commands.py parses each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from actions.base import OPEN_ITEMS
from engine.events import RESUMABLE

UNCHECKED = "unchecked"  # a manual step's checklist item not ticked (or assumed by --yes, which ticks nothing)
DUE = "due"  # something an action left for after the run, with a date when it has one
NEXT = "next"  # a command to run next


def open_items(step_ids: Sequence[str], steps: Mapping[str, Mapping[str, Any]], run_id: str,
               status: str) -> list[dict[str, Any]]:
    """Open items in step order, then the next commands; each {kind, step, text, due}."""
    found: list[dict[str, Any]] = []
    for sid, output in (pair for s in step_ids for pair in _outputs(s, steps.get(s) or {})):
        checklist = output.get("checklist")
        if isinstance(checklist, Mapping):
            # Only a literal true is a tick, as in the report: an item answered no or never reached is open.
            found += [{"kind": UNCHECKED, "step": sid, "text": str(item), "due": None}
                      for item, ticked in checklist.items() if ticked is not True]
        for item in output.get(OPEN_ITEMS) or ():
            if isinstance(item, Mapping) and item.get("text"):
                due = item.get("due")
                found.append({"kind": DUE, "step": sid, "text": str(item["text"]),
                              "due": str(due) if due else None})
    found += [{"kind": NEXT, "step": "", "text": command, "due": None, "why": why}
              for why, command in next_commands(run_id, status)]
    return found


def _outputs(sid: str, view: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The step's output, then each loop item's as ``sid[key]``: a renewal date found by the third item of a
    loop over hosts is as open as one a plain step found."""
    items = view.get("items") or ()
    entries = list(items.values()) if isinstance(items, Mapping) else list(items)
    pairs = [(sid, view.get("output"))] + [(f"{sid}[{e.get('key')}]", e.get("output")) for e in entries
                                           if isinstance(e, Mapping)]
    return [(name, output) for name, output in pairs if isinstance(output, Mapping)]


def next_commands(run_id: str, status: str) -> list[tuple[str, str]]:
    """(why, command) to type next: go on with an unfinished run, then write the report for the record."""
    commands = [("resume", f"breakglass resume {run_id}")] if status in RESUMABLE else []
    return [*commands, ("report", f"breakglass report {run_id}")]
