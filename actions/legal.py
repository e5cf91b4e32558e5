"""``legal.deadlines``: when a personal-data breach must be reported, counted from the time it was discovered.

The rules are data (``RULES``), each with its legal basis, so the deadline a report shows can be checked
against the text it comes from:

- Japan, APPI (個人情報保護法) Art. 26 and the PPC's Enforcement Rules Art. 7-8: a preliminary report (速報)
  to the Personal Information Protection Commission "promptly" (the PPC's General Guidelines 3-5-3-3: about
  3-5 days from learning of it), a final report (確報) within 30 days, 60 when the leak may come from an act
  with wrongful intent (unauthorised access, a malicious insider: Rule 7(iii)); the people affected are told
  promptly (Art. 26(2)). Day counts start the day after discovery (Civil Code Art. 140) and end at midnight
  Japan time.
- EU/EEA, GDPR Art. 33(1): the supervisory authority within 72 hours of becoming aware, counted in hours;
  Art. 34: the data subjects without undue delay when the risk to them is high.

This action computes; it decides nothing about whether to report (that is the DPO's and the lawyer's call,
which is why the runbook names them from the team file). Which regimes apply comes from the team file
(``legal: {regimes: [appi, gdpr]}``, given to actions as ``ctx.settings["legal_regimes"]``) or from the
``regimes`` argument. Without either it fails: an empty list of deadlines would read as "nothing is due".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal

from pydantic import Field

from actions.base import OPEN_ITEMS, Action, ActionContext, ActionResult, Effect, Output, Params
from engine.errors import ActionError

JST = timezone(timedelta(hours=9), "JST")
Regime = Literal["appi", "gdpr"]


@dataclass(frozen=True)
class Rule:
    """One duty to notify: whom, by when, and where the law says so."""

    regime: str
    duty: str
    to: str
    basis: str
    days: int | None = None  # calendar days after the day of discovery, ending at midnight in ``zone``
    hours: int | None = None  # hours from the moment of discovery
    guidance: str = ""  # how the regulator reads "promptly", when the law gives no number
    only_if_malicious: bool | None = None  # None: always; True/False: only when wrongful intent is (not) suspected


RULES: tuple[Rule, ...] = (
    Rule("appi", "preliminary report (速報)", "Personal Information Protection Commission (PPC)",
         "APPI Art. 26(1); Enforcement Rules Art. 8(1)", days=5,
         guidance="promptly: the PPC's guidelines read this as about 3-5 days"),
    Rule("appi", "final report (確報)", "Personal Information Protection Commission (PPC)",
         "APPI Art. 26(1); Enforcement Rules Art. 8(2)", days=30, only_if_malicious=False),
    Rule("appi", "final report (確報), wrongful intent suspected", "Personal Information Protection Commission (PPC)",
         "APPI Art. 26(1); Enforcement Rules Art. 7(iii), 8(2)", days=60, only_if_malicious=True),
    Rule("appi", "notice to the people affected (本人通知)", "people whose data leaked",
         "APPI Art. 26(2); Enforcement Rules Art. 10", guidance="promptly, as the situation allows"),
    Rule("gdpr", "notification of the breach", "lead supervisory authority",
         "GDPR Art. 33(1)", hours=72),
    Rule("gdpr", "communication to the data subjects", "data subjects",
         "GDPR Art. 34(1)", guidance="without undue delay, when the risk to them is high"),
)


class LegalDeadlinesParams(Params):
    discovered_at: datetime = Field(
        description="When the organisation learned of the breach (ISO 8601 with a zone, e.g. "
        "2024-11-20T09:30:00+09:00); every deadline counts from here."
    )
    regimes: list[Regime] | None = Field(
        None, description="Regimes that apply (appi, gdpr); default: the team file's legal.regimes."
    )
    malicious: bool = Field(
        False,
        description="Wrongful intent suspected (unauthorised access, malware, a malicious insider): APPI's "
        "final report is then due in 60 days instead of 30.",
    )
    now: datetime | None = Field(None, description="The clock for time_left (default: now).")


@dataclass(frozen=True)
class Deadline:
    regime: str
    duty: str
    to: str
    basis: str
    due: datetime | None
    guidance: str

    def to_dict(self, now: datetime) -> dict[str, Any]:
        left = (self.due - now).total_seconds() / 3600 if self.due else None
        return {
            "regime": self.regime,
            "duty": self.duty,
            "to": self.to,
            "basis": self.basis,
            "due": self.due.isoformat() if self.due else None,
            "guidance": self.guidance,
            "hours_left": round(left, 1) if left is not None else None,
        }


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ActionError(f"discovered_at {value.isoformat()} has no time zone: add one (Z, +09:00) so the "
                          "deadlines are not off by hours")
    return value


def deadlines(discovered: datetime, regimes: list[str], malicious: bool) -> list[Deadline]:
    """Every deadline of the given regimes, earliest first (those without a fixed date last)."""
    found = []
    for rule in RULES:
        if rule.regime not in regimes:
            continue
        if rule.only_if_malicious is not None and rule.only_if_malicious != malicious:
            continue
        due = None
        if rule.hours is not None:
            due = discovered + timedelta(hours=rule.hours)
        elif rule.days is not None:
            # Civil Code Art. 140: the day of discovery is not counted; the period ends at the end of its last day.
            day = discovered.astimezone(JST).date() + timedelta(days=rule.days)
            due = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=JST)
        found.append(Deadline(rule.regime, rule.duty, rule.to, rule.basis, due, rule.guidance))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(found, key=lambda d: d.due or far)


class LegalDeadlinesOutput(Output):
    discovered_at: str = Field(description="When the breach was discovered (ISO 8601).")
    regimes: list[str] = Field(description="The regimes the deadlines are for.")
    regimes_from: str = Field(description="Where the regimes came from: argument or team file.")
    deadlines: list[dict[str, Any]] = Field(
        description="Each duty: regime, duty, to, basis, due (ISO 8601 or null), guidance, hours_left."
    )
    open_items: list[dict[str, Any]] = Field(description="The deadlines as items still open at the end of the run.")
    summary: str = Field(description="The deadlines, one per line, for a note or a message.")


class LegalDeadlines(Action[LegalDeadlinesParams]):
    """Breach notification deadlines (APPI, GDPR) from the time of discovery."""

    name: ClassVar[str] = "legal.deadlines"
    summary: ClassVar[str] = "Personal-data breach notification deadlines (APPI, GDPR) from the time of discovery"
    effect: ClassVar[Effect] = Effect.READ
    Output = LegalDeadlinesOutput

    def run(self, params: LegalDeadlinesParams, ctx: ActionContext) -> ActionResult:
        discovered = _aware(params.discovered_at)
        configured = [str(r) for r in ctx.settings.get("legal_regimes") or ()]
        regimes: list[str] = [str(r) for r in params.regimes] if params.regimes is not None else configured
        if not regimes:
            raise ActionError("no notification regime applies: set legal: {regimes: [appi, gdpr]} in the team file "
                              "($BREAKGLASS_TEAM) or pass regimes:; ask the DPO which laws cover this data")
        now = params.now or ctx.settings.get("now") or datetime.now(UTC)
        if isinstance(now, str):
            now = datetime.fromisoformat(now)
        found = [d.to_dict(now) for d in deadlines(discovered, regimes, params.malicious)]
        lines = [_line(d) for d in found]
        output = {
            "discovered_at": discovered.isoformat(),
            "regimes": regimes,
            "regimes_from": "argument" if params.regimes is not None else "team file",
            "deadlines": found,
            OPEN_ITEMS: [{"text": line, "due": d["due"]} for line, d in zip(lines, found, strict=True)],
            "summary": "\n".join(lines),
        }
        first = next((d for d in found if d["due"]), None)
        message = f"{len(found)} duties; first due {first['due']} ({first['duty']})" if first else f"{len(found)} duties"
        return ActionResult(output=output, ok=True, message=message)


def _line(d: dict[str, Any]) -> str:
    when = f"due {d['due']}" if d["due"] else d["guidance"]
    extra = f" ({d['guidance']})" if d["due"] and d["guidance"] else ""
    return f"{d['regime'].upper()} {d['duty']} to the {d['to']}: {when}{extra} [{d['basis']}]"
