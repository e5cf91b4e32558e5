"""The rollback a step runs: the one it writes, or the one its action builds for ``rollback: auto``.

An action that can undo itself (``Action.undo``) says how from what its step recorded: ``dns.update`` puts
back the RRset and TTL it saved in ``previous``. The undo it builds is an ordinary ``Rollback`` of the same
action, so it takes the same path as any other (gated, audited, verified), and ``show`` displays it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.model import AUTO, Rollback, Step

if TYPE_CHECKING:
    from actions.registry import Registry


def rollback_of(step: Step, registry: Registry, step_id: str | None = None) -> Rollback | None:
    """The rollback of ``step``, None when it has none. ``step_id``: the id its templates know it by (inside a
    called runbook, its own id, not the namespaced one the log uses). A ``for_each`` step's rollback undoes
    one item: it renders with that item's ``item`` and ``item_key``, and ``auto`` reads the item's own output
    (``steps.<id>.items[item_key].output``)."""
    if step.rollback != AUTO:
        return step.rollback if isinstance(step.rollback, Rollback) else None
    recorded = f"steps.{step_id or step.id}" + (".items[item_key]" if step.for_each is not None else "")
    args = registry.get(step.action).undo(step.with_, f"{recorded}.output")
    if args is None:  # refused at validation; a runbook built without the loader gets no undo rather than a wrong one
        return None
    return Rollback.model_validate({"action": step.action, "with": args})


def undoable(registry: Registry) -> list[str]:
    """The actions ``rollback: auto`` works with, for advice."""
    from actions.base import can_undo

    return [name for name in registry.names() if can_undo(registry.get(name))]
