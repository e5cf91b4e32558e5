"""notify.webhook: tell people what the run is doing, through a Slack-compatible or generic JSON webhook.

Its effect is NOTIFY: a dry-run shows the plan (the exact payload) and sends nothing; a live run sends it.
Webhook URLs carry their credential in the path (Slack's ``/services/T…/B…/secret``), so the URL's path
and query are treated as secrets: plans and outputs show ``https://hooks.example.com/***``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params, Plan
from actions.clients.redact_headers import redact_headers, redact_url, scrub

if TYPE_CHECKING:
    import ssl


class NotifyWebhookParams(Params):
    url: str = Field(description="Webhook URL; its path and query are treated as a secret.")
    text: str = Field(description="The message (templated by the runbook from inputs and step outputs).")
    format: Literal["slack", "json"] = Field(
        "slack",
        description='slack: {"text": ...} with the run shown in a footer line; '
        "json: {text, run_id, runbook_id, step_id, operator, mode}.",
    )
    extra: dict[str, Any] = Field(
        default={}, description='More payload fields (e.g. {"channel": "#incident"}).'
    )
    include_run_info: bool = Field(True, description="Add run id, runbook, step, operator and mode.")
    headers: dict[str, str] = Field(
        default={}, description="Extra request headers; credentials redacted."
    )
    verify_tls: bool = Field(True, description="Verify the webhook's TLS certificate.")
    ca_file: str | None = Field(
        None, description="PEM file of CA certificates to trust instead of the system ones."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds allowed for the post.")


def run_info(ctx: ActionContext) -> dict[str, str]:
    return {
        "run_id": ctx.run_id,
        "runbook_id": ctx.runbook_id,
        "step_id": ctx.step_id,
        "operator": ctx.operator,
        "mode": ctx.mode,
    }


def payload(p: NotifyWebhookParams, ctx: ActionContext) -> dict[str, Any]:
    """The JSON body; the message text is never overridden by ``extra``."""
    info = run_info(ctx) if p.include_run_info else {}
    if p.format == "json":
        return {**p.extra, "text": p.text, **info}
    text = p.text
    if info:
        footer = f"runbook {info['runbook_id'] or '-'} · run {info['run_id']} · step {info['step_id']}"
        text += f"\n_{footer} · {info['mode']} · by {info['operator']}_"
    return {**p.extra, "text": text}


def _secrets(p: NotifyWebhookParams) -> tuple[str, tuple[str, ...]]:
    shown_url, url_secrets = redact_url(p.url, path_is_secret=True)
    return shown_url, url_secrets + redact_headers(p.headers)[1]


def _ssl_context(p: NotifyWebhookParams) -> ssl.SSLContext | bool:
    if not p.verify_tls:
        return False
    import ssl

    return ssl.create_default_context(cafile=p.ca_file) if p.ca_file else True


class NotifyWebhookOutput(Output):
    url: str = Field(description="The webhook URL (its secret parts masked).")
    status: int | None = Field(description="The HTTP status the webhook answered; null when it did not.")
    sent: bool = Field(description="True when the request was sent.")
    latency_ms: int = Field(description="How long the webhook took to answer.")
    response_excerpt: str = Field(description="The start of the answer's body.")


class NotifyWebhook(Action[NotifyWebhookParams]):
    """Post a message to a webhook; shown but not sent in a dry-run."""

    name = "notify.webhook"
    text_params = frozenset({"text"})
    summary = "Post a message to a Slack-compatible or JSON webhook (shown, not sent, in a dry-run)"
    effect = Effect.NOTIFY
    Output = NotifyWebhookOutput

    def secrets_for(self, params: NotifyWebhookParams) -> tuple[str, ...]:
        """Secret values in these arguments, known before plan or gate (for the engine's redactor)."""
        return _secrets(params)[1]

    def plan(self, params: NotifyWebhookParams, ctx: ActionContext) -> Plan:
        shown_url, secrets = _secrets(params)
        body = payload(params, ctx)
        return Plan(
            summary=f"post to {shown_url}: {params.text}",
            changes=[{"url": shown_url, "format": params.format, "payload": scrub(body, secrets)}],
            state={"payload": body},
        )

    def apply(self, params: NotifyWebhookParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        import httpx

        shown_url, secrets = _secrets(params)
        body = plan.state.get("payload") or payload(params, ctx)
        started = time.monotonic()
        try:
            with httpx.Client(verify=_ssl_context(params), timeout=ctx.remaining(params.timeout)) as client:
                response = client.post(params.url, json=body, headers=params.headers)
        except httpx.HTTPError as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", secrets)
            return ActionResult(
                output={"url": shown_url, "status": None, "sent": False},
                ok=False,
                message=f"webhook {shown_url} not reached: {reason}",
                secrets=secrets,
            )
        output = {
            "url": shown_url,
            "status": response.status_code,
            "sent": True,
            "latency_ms": round((time.monotonic() - started) * 1000),
            "response_excerpt": scrub(response.text[:500], secrets),
        }
        ok = response.is_success
        verdict = "delivered" if ok else f"refused with HTTP {response.status_code}"
        return ActionResult(output=output, ok=ok, message=f"webhook {shown_url}: {verdict}", secrets=secrets)
