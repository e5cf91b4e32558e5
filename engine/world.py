"""The world a run acts on. Live runs call actions for real; drills swap in a simulated world (engine.drill).

Keeping this one seam is what makes a dry-run and a drill walk exactly the same engine path as a live run.
The runner says when a call undoes a step (``rollback``): a simulated world answers an undo from what the
scenario says about undoing, and need not guess it from the call.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from actions.base import Action, ActionContext, ActionResult, Params, Plan


class World(Protocol):
    def run(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, *,
            rollback: bool = False) -> ActionResult: ...
    def plan(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, *,
             rollback: bool = False) -> Plan: ...
    def apply(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, plan: Plan, *,
              rollback: bool = False) -> ActionResult: ...
    def wait(self, seconds: float) -> None: ...
    def answers_at(self, gate_id: str) -> list[dict[str, Any]] | None: ...
    def now(self) -> float: ...


class LiveWorld:
    """The real world: every call goes to the action."""

    def run(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, *,
            rollback: bool = False) -> ActionResult:
        return action.run(params, ctx)

    def plan(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, *,
             rollback: bool = False) -> Plan:
        return action.plan(params, ctx)

    def apply(self, step_id: str, action: Action[Any], params: Params, ctx: ActionContext, plan: Plan, *,
              rollback: bool = False) -> ActionResult:
        return action.apply(params, ctx, plan)

    def wait(self, seconds: float) -> None:
        """The pause between retries; Ctrl-C interrupts it."""
        time.sleep(seconds)

    def answers_at(self, gate_id: str) -> list[dict[str, Any]] | None:
        """Other people's answers at a four-eyes gate, when a scenario scripts them; None: real people answer,
        with signatures, through the run store."""
        return None

    def now(self) -> float:
        """The run's clock (epoch seconds): what a customer update promises and its reminders read."""
        return time.time()
