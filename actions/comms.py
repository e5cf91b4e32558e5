"""comms.post: one customer update (status page or customer notice), in English and Japanese, recorded.

The text comes from the runbook's `comms:` templates (engine/comms.py fills them into ``templates`` before the
step is checked; they are rendered like any argument, once, in the sandbox). The action puts the stage in
front and the promise of the next update after it, shows it, and returns it as its output, so the exact words
customers read are in the audit log and the report. With ``url`` it also posts them to a webhook (a
status-page integration or the chat channel that relays them); without one the operator posts them by hand.
Its effect is NOTIFY: gated like ``notify.webhook`` in a live run, shown and not sent in a dry-run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params, Plan
from actions.clients.redact_headers import redact_url, scrub

Lang = Literal["en", "ja"]
# What each stage is called on a status page (Atlassian Statuspage's words), and where the promise of the next
# update goes. Japanese customers read Japan time; the English text says UTC.
LABELS = {
    "en": {"investigating": "Investigating", "identified": "Identified", "monitoring": "Monitoring",
           "resolved": "Resolved"},
    "ja": {"investigating": "調査中", "identified": "原因特定", "monitoring": "経過観察", "resolved": "解決"},
}
JST = timezone(timedelta(hours=9), "JST")


class CommsPostParams(Params):
    kind: Literal["status_page", "customer_notice"] = Field(
        description="Which of the runbook's `comms.templates` to send (written out, never a template).")
    stage: Literal["investigating", "identified", "monitoring", "resolved"] = Field(
        description="Where the incident stands, shown first: investigating, identified, monitoring, resolved.")
    languages: list[Lang] = Field(default_factory=lambda: list[Lang](["en", "ja"]),
                                  description="The languages to send (default both).")
    templates: dict[str, str] = Field(
        default={},
        description="Filled by the engine from the runbook's `comms.templates.<kind>` (en, ja): not written.")
    cadence_minutes: int | None = Field(
        None, description="Filled from `comms.cadence`: when the next update is promised.")
    url: str | None = Field(None, description="Webhook to post the text to (path and query treated as secret); "
                                              "none: the text is shown and recorded for the operator to post.")
    verify_tls: bool = Field(True, description="Verify the webhook's TLS certificate.")
    ca_file: str | None = Field(None, description="PEM file of CA certificates to trust instead of the system's.")
    timeout: float = Field(10.0, gt=0, description="Seconds allowed for the post.")


class CommsPostOutput(Output):
    kind: str = Field(description="status_page or customer_notice.")
    stage: str = Field(description="investigating, identified, monitoring or resolved.")
    texts: dict[str, str] = Field(description="The exact text per language, as customers read it.")
    next_update: str | None = Field(description="When the next update is promised (ISO 8601 UTC); null once resolved.")
    posted: bool = Field(description="True when the webhook accepted it; false when the operator posts it.")
    url: str | None = Field(description="The webhook (its secret parts masked), if any.")
    status: int | None = Field(description="The webhook's HTTP status, if it answered.")


def next_update(now: float, minutes: int | None, stage: str) -> datetime | None:
    """When the next update is promised: none once resolved, or without a cadence."""
    if stage == "resolved" or not minutes:
        return None
    return datetime.fromtimestamp(now, UTC) + timedelta(minutes=minutes)


def compose(lang: str, stage: str, body: str, promised: datetime | None) -> str:
    """The text customers read: the stage, the body, and when they hear from us next."""
    label = LABELS[lang][stage]
    if lang == "ja":
        head = f"【{label}】"
        tail = (f"\n次回の更新は {promised.astimezone(JST):%m月%d日 %H:%M} (日本時間) までにお知らせします。"
                if promised else "")
    else:
        head = f"[{label}]"
        tail = f"\nNext update by {promised:%Y-%m-%d %H:%M} UTC." if promised else ""
    return f"{head} {body.strip()}{tail}"


def _texts(p: CommsPostParams, now: float) -> tuple[dict[str, str], str | None]:
    promised = next_update(now, p.cadence_minutes, p.stage)
    texts = {str(lang): compose(lang, p.stage, p.templates.get(lang, ""), promised) for lang in p.languages}
    return texts, (promised.strftime("%Y-%m-%dT%H:%M:%SZ") if promised else None)


def _now(ctx: ActionContext) -> float:
    # The run's clock: a drill's is simulated (engine.world), so the promise matches its reminders.
    value = ctx.settings.get("run_clock")
    return float(value) if isinstance(value, (int, float)) else time.time()


class CommsPost(Action[CommsPostParams]):
    """Send one customer update from the runbook's `comms:` templates; shown, not sent, in a dry-run."""

    name = "comms.post"
    summary = "Render a status-page or customer update (en, ja) from `comms:`, record it, optionally post it"
    effect = Effect.NOTIFY
    Output = CommsPostOutput
    # The gate shows the finished texts (the plan), not the bodies and the cadence they are made from.
    shown_by_plan = frozenset({"templates", "cadence_minutes"})

    def secrets_for(self, params: CommsPostParams) -> tuple[str, ...]:
        return redact_url(params.url, path_is_secret=True)[1] if params.url else ()

    def plan(self, params: CommsPostParams, ctx: ActionContext) -> Plan:
        texts, promised = _texts(params, _now(ctx))
        where = redact_url(params.url, path_is_secret=True)[0] if params.url else "the operator (by hand)"
        missing = [lang for lang in params.languages if not params.templates.get(lang, "").strip()]
        # Each language's text under its name, its lines indented under the first: what customers will read.
        shown = [f"{lang}: " + text.replace("\n", "\n" + " " * (len(lang) + 2)) for lang, text in texts.items()]
        return Plan(
            summary=f"{params.kind} ({params.stage}) to {where}:\n" + "\n".join(shown),
            # The texts are the summary already: the change names what is sent, not the words a second time.
            changes=[{"kind": params.kind, "stage": params.stage, "languages": list(texts), "next_update": promised}],
            state={"texts": texts, "next_update": promised},
            refused=f"no {', '.join(missing)} text for {params.kind}" if missing else None,
        )

    def apply(self, params: CommsPostParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        texts = dict(plan.state.get("texts") or _texts(params, _now(ctx))[0])
        promised = plan.state.get("next_update")
        output: dict[str, object] = {"kind": params.kind, "stage": params.stage, "texts": texts,
                                     "next_update": promised, "posted": False, "url": None, "status": None}
        due = f"; next update due {promised[11:16]} UTC" if isinstance(promised, str) else ""
        if not params.url:
            return ActionResult(output, True, f"{params.kind} ({params.stage}) recorded: post it now{due}")
        import httpx

        shown, secrets = redact_url(params.url, path_is_secret=True)
        output["url"] = shown
        body = {"kind": params.kind, "stage": params.stage, "texts": texts, "next_update": promised,
                "text": "\n\n".join(texts.values()), "run_id": ctx.run_id, "runbook_id": ctx.runbook_id}
        verify: object = False if not params.verify_tls else (params.ca_file or True)
        try:
            with httpx.Client(verify=verify, timeout=ctx.remaining(params.timeout)) as client:  # type: ignore[arg-type]
                response = client.post(params.url, json=body)
        except httpx.HTTPError as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", secrets)
            return ActionResult(output, False, f"{params.kind} not posted to {shown}: {reason}", secrets=secrets)
        output["status"], output["posted"] = response.status_code, response.is_success
        verdict = "posted" if response.is_success else f"refused with HTTP {response.status_code}"
        return ActionResult(output, response.is_success, f"{params.kind} ({params.stage}) {verdict} to {shown}{due}",
                            secrets=secrets)
