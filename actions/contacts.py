"""``contacts.check``: is everyone a runbook would tell us to call in the team file, with a way to reach them?

Found before an incident, a missing card acquirer or a DPO without a phone number is a line in a readiness
report; found at step 9 of a skimmed checkout it is a search through old mails. The team file reaches actions
as ``ctx.settings["team_contacts"]`` with the roles it may hold (``team_roles``), as the legal regimes do:
actions never read engine configuration.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Output, Params
from engine.errors import ActionError

# At 3 a.m. a name without a phone number or an address reaches nobody.
REACHABLE_BY = ("phone", "email", "url")


class ContactsCheckParams(Params):
    roles: list[str] | None = Field(
        None, description="Roles that must be in the team file; default: every role a runbook may name."
    )


class ContactsCheckOutput(Output):
    team_file: str = Field(description="The team file read; empty when there is none.")
    roles: list[str] = Field(description="The roles checked.")
    present: list[str] = Field(description="Roles with a name and a phone, e-mail or URL.")
    missing: list[str] = Field(description="Roles the team file does not list.")
    unreachable: list[str] = Field(description="Roles listed without a name or without any phone, e-mail or URL.")
    open_items: list[dict[str, Any]] = Field(description="One item per role to fill in, for the end of the run.")


class ContactsCheck(Action[ContactsCheckParams]):
    name = "contacts.check"
    summary = "Check the team file lists a reachable contact for every role the runbooks name (read-only)"
    Output = ContactsCheckOutput

    def run(self, params: ContactsCheckParams, ctx: ActionContext) -> ActionResult:
        known = [str(r) for r in ctx.settings.get("team_roles") or ()]
        roles = list(params.roles) if params.roles is not None else known
        unknown = [r for r in roles if known and r not in known]
        if unknown:
            raise ActionError(f"unknown role(s) {', '.join(unknown)}; roles: {', '.join(known)}")
        contacts = ctx.settings.get("team_contacts") or {}
        where = str(ctx.settings.get("team_file") or "") or "the team file ($BREAKGLASS_TEAM)"
        missing = [r for r in roles if r not in contacts]
        unreachable = [r for r in roles if r in contacts and not _reachable(contacts[r])]
        items = [{"text": f"add contact '{r}' to {where}", "due": None} for r in missing]
        items += [{"text": f"give contact '{r}' in {where} a name and a phone, e-mail or URL", "due": None}
                  for r in unreachable]
        output = {"team_file": str(ctx.settings.get("team_file") or ""), "roles": roles,
                  "present": [r for r in roles if r not in missing and r not in unreachable],
                  "missing": missing, "unreachable": unreachable, "open_items": items}
        if items:
            gaps = ", ".join([*(f"{r} missing" for r in missing), *(f"{r} unreachable" for r in unreachable)])
            return ActionResult(output, False, f"{len(items)} of {len(roles)} role(s) not ready: {gaps}")
        return ActionResult(output, True, f"all {len(roles)} role(s) reachable")


def _reachable(card: Any) -> bool:
    if not isinstance(card, dict):
        return False
    return bool(str(card.get("name") or "").strip()) and any(str(card.get(f) or "").strip() for f in REACHABLE_BY)
