"""``runbook.run``: run another runbook's steps inside this run (the engine carries it out: engine.calls).

Declared here like any action so that validation knows its arguments and ``breakglass actions`` documents
it; the engine drives the called runbook's steps itself, each on the one path every step takes, so this
class never acts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Params, Plan
from engine.errors import ActionError


class RunbookRunParams(Params):
    runbook: str = Field(description="The id of the runbook to run (written out, not a template); looked up next "
                         "to this runbook first, then where `breakglass list` looks.")
    inputs: dict[str, Any] = Field(default={},
                                   description="Its inputs; templates over this runbook's inputs and steps.")


class RunbookRun(Action[RunbookRunParams]):
    name = "runbook.run"
    summary = ("Run another runbook's steps inside this run (one audit log); its `outputs:` become this "
               "step's output. Effect: the strongest of its steps'.")
    # The strongest an invocation can have: the engine takes the called runbook's own (engine.calls).
    effect = Effect.WRITE

    def plan(self, params: RunbookRunParams, ctx: ActionContext) -> Plan:
        raise ActionError("runbook.run is carried out by the engine, step by step")

    def apply(self, params: RunbookRunParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        raise ActionError("runbook.run is carried out by the engine, step by step")
