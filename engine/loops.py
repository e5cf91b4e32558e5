"""``for_each`` steps: what a loop's items are, what its one gate shows, and which loops a runbook may write.

A loop step runs its action once per item of a list or a mapping. Each item is a step of its own in the
audit log (``step[key]``: the index for a list, the key for a mapping) with its own records, status,
retries and outcome; the parent step records the items once (``loop.expanded``) and then how the whole loop
ended. The runner drives it (``Runner._loop``) on the one invoke path; this module holds the loop's facts.

The rules, decided here once:

- ``when`` decides the whole loop, before ``for_each`` renders (``item`` is not defined there).
- A write loop asks its gate **once**, after every item planned, showing every item's plan; with
  ``confirm: {each: true}`` it asks per item instead. A read loop is gated only if it says ``confirm``.
- Items that change the world run one at a time, always: ``concurrency`` above 1 is refused at validation
  for a write or notify action (a gate per item, and the in-doubt question after a crash, need one item
  applying at a time). A read-only loop may run ``concurrency: N`` items at once.
- ``on_failure`` applies per item: ``continue`` lets the other items run (the loop then ends failed, with
  ``continue``); ``abort`` and ``rollback`` start no further item, then act for the whole step.
- ``rollback`` undoes one item: each item that succeeded is its own undo (``step[key]``, audited, gated as
  ``step[key].rollback``), newest first, when this or a later step fails with ``on_failure: rollback``;
  the failed loop's applied items too. It renders with the item's ``item`` and ``item_key``; ``auto`` reads
  the item's own output. Not with ``concurrency`` above 1: items that ran at once have no reverse order.
- Templates after the loop read ``steps.<id>.items``: a list (or, for a mapping, a mapping by key) of
  ``{key, item, output, ok, status}``, the same shape as ``steps.<id>`` plus the item and its key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.errors import ActionError
from engine.machine import LoopItems

LOOP_ROOTS = frozenset({"item", "item_key"})  # what a loop step's templates may read besides the rest
MAX_ITEMS = 100_000  # a runaway template (a whole zone file split by character) stops here, not in memory


def expand(value: Any) -> LoopItems:
    """The items ``for_each`` rendered to; ActionError for anything but a list or a mapping."""
    if isinstance(value, Mapping):
        keys: list[Any] = [str(k) for k in value]
        values = list(value.values())
        mapping = True
    elif isinstance(value, (list, tuple)):
        keys, values, mapping = list(range(len(value))), list(value), False
    else:
        raise ActionError(f"for_each must give a list or a mapping, not {type(value).__name__}"
                          f" ({_short(value)})")
    if len(keys) > MAX_ITEMS:
        raise ActionError(f"for_each gave {len(keys)} items; at most {MAX_ITEMS} are allowed")
    return LoopItems(keys, values, mapping)


def combined_plan(plans: Sequence[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """What the one gate of a write loop shows: each item's plan and changes, named by its key."""
    changes: list[str] = []
    for key, plan in plans:
        changes.append(f"[{key}] {plan.get('summary') or ''}".rstrip())
        changes += [f"[{key}]   {_text(change)}" for change in plan.get("changes") or []]
    return {"summary": f"{len(plans)} item(s), each planned below", "changes": changes}


def check(step: Mapping[str, Any], effect_is_read: bool | None) -> Iterator[tuple[str, str]]:
    """(key, message) for each way the loop keys of one step (parsed, structurally sound) disagree;
    ``effect_is_read`` None: the action is unknown (reported elsewhere)."""
    looped = step.get("for_each") is not None
    concurrency = step.get("concurrency")
    confirm = step.get("confirm")
    each = isinstance(confirm, Mapping) and confirm.get("each") is True
    if not looped:
        if concurrency is not None:
            yield "concurrency", "`concurrency` needs `for_each`: it says how many items run at once"
        if each:
            yield "confirm", "`confirm: {each: true}` needs `for_each`: it asks once per item"
        return
    if concurrency is not None and concurrency > 1:
        if step.get("rollback") is not None and effect_is_read is not False:
            yield "concurrency", (f"`concurrency: {concurrency}` with a `rollback`: items that ran at once have "
                                  "no order to undo them in reverse; remove `concurrency`, or the `rollback`")
        elif effect_is_read is False:
            yield "concurrency", (f"`concurrency: {concurrency}` on a step that changes the world: its items "
                                  "run one at a time (a gate and the in-doubt question need one item "
                                  "applying at a time); remove `concurrency`")
        elif each:
            yield "concurrency", "`confirm: {each: true}` asks per item, one at a time: remove `concurrency`"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
