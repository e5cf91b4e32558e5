"""``manual``: work the operator does outside the tool (call the registrar, post on the status page).

The instructions and checklist are shown; the operator ticks each item and may add a note; the answers are
the step's output and land in the audit log and the report. Without an operator at a terminal the step
fails, except in a dry-run or drill run with ``--yes``, where it is assumed done and marked so.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, OperatorTerminal, Output, Params


class ManualParams(Params):
    instructions: str = Field("", description="What to do, in markdown (templates allowed).")
    checklist: list[str] = Field(default=[], description="Items the operator confirms one by one.")
    ask: list[str] = Field(default=[], description="Questions whose typed answers become the output "
                           "(e.g. 'Registrar ticket number').")
    required: bool = Field(True, description="Fail the step if any checklist item is answered no.")


class ManualOutput(Output):
    completed: bool = Field(description="True when every checklist item was confirmed.")
    assumed: bool = Field(False, description="True when no operator was asked (--yes in a dry-run or drill).")
    checklist: dict[str, bool] = Field(description="Each checklist item and whether the operator confirmed it.")
    answers: dict[str, str] = Field(description="Each question of `ask` and the operator's typed answer.")
    note: str = Field("", description="A note the operator added.")


class Manual(Action[ManualParams]):
    name = "manual"
    text_params = frozenset({"instructions", "checklist", "ask"})
    summary = "Instructions and a checklist the operator completes; the answers are the output."
    Output = ManualOutput

    def run(self, params: ManualParams, ctx: ActionContext) -> ActionResult:
        terminal = ctx.terminal
        if terminal is None or not terminal.interactive:
            if ctx.settings.get("assume_yes"):
                return ActionResult(self._assumed(params), True, "assumed done (--yes, no operator at a terminal)")
            return ActionResult({"completed": False}, False,
                                "a manual step needs an operator at a terminal (fail closed)")
        return self._ask(params, terminal)

    @staticmethod
    def _assumed(params: ManualParams) -> dict[str, Any]:
        return {"completed": True, "assumed": True, "checklist": {item: True for item in params.checklist},
                "answers": {q: "" for q in params.ask}}

    def _ask(self, params: ManualParams, terminal: OperatorTerminal) -> ActionResult:
        terminal.say("")
        for line in params.instructions.strip().splitlines():
            terminal.say(f"  {line}")
        ticks: dict[str, bool] = {}
        for item in params.checklist:
            done = terminal.tick(item)
            if done is None:
                return ActionResult({"completed": False, "checklist": ticks}, False, "end of input")
            ticks[item] = done
        answers: dict[str, str] = {}
        for question in params.ask:
            answers[question] = (terminal.ask(f"  {question}: ") or "").strip()
        note = terminal.note()
        missing = [item for item, done in ticks.items() if not done]
        output = {"completed": not missing, "checklist": ticks, "answers": answers, "note": note}
        if missing and params.required:
            return ActionResult(output, False, f"not done: {'; '.join(missing)}")
        return ActionResult(output, True, note)
