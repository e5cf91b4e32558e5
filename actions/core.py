"""Small built-in actions: ``wait.sleep``, ``assert``, ``log.note``, ``followup.add``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Output, Params


class WaitSleepParams(Params):
    seconds: float = Field(ge=0, le=86_400, description="How long to wait.")
    reason: str = Field("", description="Why, for the operator and the report (e.g. 'let the TTL expire').")


class WaitSleepOutput(Output):
    slept: float = Field(description="Seconds asked for.")
    cancelled: bool = Field(description="True when the wait was cut short (Ctrl-C, step timeout).")


class WaitSleep(Action[WaitSleepParams]):
    name = "wait.sleep"
    summary = "Wait a number of seconds (e.g. for a TTL to expire); Ctrl-C stops the wait."
    Output = WaitSleepOutput

    def run(self, params: WaitSleepParams, ctx: ActionContext) -> ActionResult:
        cancelled = ctx.cancel.wait(params.seconds)
        return ActionResult({"slept": params.seconds, "cancelled": cancelled}, not cancelled,
                            params.reason or f"waited {params.seconds:g}s")


class AssertParams(Params):
    that: Any = Field(description="A condition (template) or a list of them; every one must be true.")
    message: str = Field("", description="What it means when the check fails.")


def _true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "off", "0", "none", "null")
    return bool(value)


class AssertOutput(Output):
    results: list[bool] = Field(description="Each condition's truth, in order.")
    holds: bool = Field(description="True when every condition holds.")


class Assert(Action[AssertParams]):
    name = "assert"
    summary = "A read-only check over templates: fails the step unless every condition holds."
    Output = AssertOutput

    def run(self, params: AssertParams, ctx: ActionContext) -> ActionResult:
        conditions = params.that if isinstance(params.that, list) else [params.that]
        results = [_true(c) for c in conditions]
        failed = [i for i, ok in enumerate(results) if not ok]
        message = params.message or f"condition {failed[0] + 1} of {len(results)} is false" if failed else ""
        return ActionResult({"results": results, "holds": not failed}, not failed, message)


class LogNoteParams(Params):
    text: str = Field(description="The note, recorded in the audit log and the report.")


class LogNoteOutput(Output):
    note: str = Field(description="The note as recorded.")


class LogNote(Action[LogNoteParams]):
    name = "log.note"
    text_params = frozenset({"text"})
    summary = "Record a note in the audit log (for the post-incident report)."
    Output = LogNoteOutput

    def run(self, params: LogNoteParams, ctx: ActionContext) -> ActionResult:
        return ActionResult({"note": params.text}, True, params.text)


class FollowupAddParams(Params):
    text: str = Field(description="What is left to do after the run, one item a line; blank lines are dropped "
                      "(so `{% if %}` lines can leave an item out).")


class FollowupAddOutput(Output):
    open_items: list[dict[str, Any]] = Field(description="Each line as an open item, for the end of the run.")


class FollowupAdd(Action[FollowupAddParams]):
    name = "followup.add"
    text_params = frozenset({"text"})
    summary = "Leave items open for after the run: listed at its end and in the report, one a line of text."
    Output = FollowupAddOutput

    def run(self, params: FollowupAddParams, ctx: ActionContext) -> ActionResult:
        lines = [line.strip().removeprefix("- ").strip() for line in params.text.splitlines()]
        items = [{"text": line, "due": None} for line in lines if line]
        return ActionResult({"open_items": items}, True, f"{len(items)} open item(s)" if items else "nothing open")
