"""``domain.expiry_audit``: expiry and risky statuses of many domains at once, most urgent first.

Each domain goes through the same RDAP/WHOIS ``lookup`` as ``domain.status`` (in ``domain``); what is added
here is the fan-out (``clients.fanout``, over one shared client, throttled per RDAP server by
``rdap.ServerGate``) and the reduction of each answer to one compact, sortable row.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from pydantic import Field

from actions.base import OPEN_ITEMS, Action, ActionContext, ActionResult, Effect, Output
from actions.clients import fanout, rdap
from actions.domain import AUTHORITATIVE, LookupParams, lookup, make_client, prepare


class ExpiryAuditParams(LookupParams):
    domains: list[str] = Field(min_length=1, description="registered domains to check")
    concurrency: int = Field(20, ge=1, le=500, description="lookups in flight at once, in total")
    per_server: int = Field(4, ge=1, le=100, description="requests in flight at once per RDAP server")
    per_server_interval: float = Field(
        0.0,
        ge=0,
        le=60,
        description="minimum seconds between two requests to the same RDAP server (polite rate limit)",
    )
    follow_referral: bool = Field(
        False,
        description="also ask registrars' RDAP servers (doubles requests; "
        "expiry and statuses come from the registry anyway)",
    )


class ExpiryAuditOutput(Output):
    domains: list[dict[str, Any]] = Field(description="One row per domain, most urgent first: domain, status, "
                                          "urgency, risky_statuses, expires, days_until_expiry, registrar...")
    counts: dict[str, int] = Field(description="total, risky, expired, expiring, not_found, errors.")
    findings: list[str] = Field(description="Notes on how the lookups were made.")
    open_items: list[dict[str, Any]] = Field(description="Domains at risk as items still open at the end of the run.")


class DomainExpiryAudit(Action[ExpiryAuditParams]):
    """Many domains at once: expiry and risky statuses, most urgent first."""

    name: ClassVar[str] = "domain.expiry_audit"
    summary: ClassVar[str] = "check expiry and risky statuses of many domains, sorted by urgency"
    effect: ClassVar[Effect] = Effect.READ
    Output = ExpiryAuditOutput

    def run(self, params: ExpiryAuditParams, ctx: ActionContext) -> ActionResult:
        output = fanout.run(lambda: self._run(params, ctx))
        c = output["counts"]
        message = (
            f"{c['total']} domains: {c['risky']} risky, {c['expired']} expired, "
            f"{c['expiring']} expiring within {params.warn_days} days, {c['errors']} lookups failed"
        )
        return ActionResult(output=output, ok=True, message=message)

    async def _run(self, params: ExpiryAuditParams, ctx: ActionContext) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        async with make_client(params, params.concurrency) as client:
            how, notes = await prepare(params, ctx, client, params.follow_referral)
            gate = rdap.ServerGate(params.per_server, params.per_server_interval)

            async def check(name: str) -> None:
                if ctx.cancel.is_set():
                    return
                rows.append(audit_row(await lookup(name, how, client, gate), params.warn_days))
                if len(rows) % 100 == 0:
                    ctx.progress(f"{len(rows)} domains checked")

            names = dict.fromkeys(params.domains)  # a duplicate is looked up once
            await fanout.gather_bounded([partial(check, name) for name in names], params.concurrency)
        rows.sort(key=urgency)
        return {"domains": rows, "counts": counts(rows, params.warn_days), "findings": notes,
                OPEN_ITEMS: renewals(rows)}


def renewals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Registrar deadlines left for after the run: each domain at risk, with its expiry date when known."""
    items = []
    for row in rows:
        if row["urgency"] not in ("critical", "warning"):
            continue
        days, registrar = row["days_until_expiry"], row["registrar"] or "the registrar"
        why = ", ".join(row["risky_statuses"]) or (f"expired {-days} days ago" if days is not None and days < 0
                                                   else f"expires in {days} days")
        items.append({"text": f"{row['domain']}: {why}; renew or restore at {registrar}", "due": row["expires"]})
    return items


def audit_row(output: dict[str, Any], warn_days: int) -> dict[str, Any]:
    """The compact line an audit keeps per domain (the full answer is dropped to keep memory flat)."""
    risky = [s["epp"] for s in output["statuses"] if s["risky"]]
    days = output["days_until_expiry"]
    level = "unknown" if output["status"] not in AUTHORITATIVE else "ok"
    if risky or (days is not None and days < 0):
        level = "critical"
    elif days is not None and days <= warn_days:
        level = "warning"
    registrar = output.get("registrar") or {}
    return {
        "domain": output["domain"],
        "status": output["status"],
        "source": output["source"],
        "urgency": level,
        "risky_statuses": risky,
        "resolves": output["resolves"],
        "expires": output["expires"],
        "days_until_expiry": days,
        "registrar": registrar.get("name"),
        "abuse_email": registrar.get("abuse_email"),
        "findings": output["findings"],
    }


def urgency(row: dict[str, Any]) -> tuple[int, int, float, str]:
    """Risky statuses first, then fewest days to expiry, then failed lookups, then the rest by name."""
    days = row["days_until_expiry"]
    return (
        0 if row["risky_statuses"] else 1,
        1 if days is None else 0,
        float(days) if days is not None else 0.0,
        row["domain"],
    )


def counts(rows: list[dict[str, Any]], warn_days: int) -> dict[str, int]:
    days = [r["days_until_expiry"] for r in rows if r["days_until_expiry"] is not None]
    return {
        "total": len(rows),
        "risky": sum(1 for r in rows if r["risky_statuses"]),
        "expired": sum(1 for d in days if d < 0),
        "expiring": sum(1 for d in days if 0 <= d <= warn_days),
        "not_found": sum(1 for r in rows if r["status"] == "not_found"),
        "errors": sum(1 for r in rows if r["status"] not in AUTHORITATIVE),
    }
