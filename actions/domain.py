"""``domain.status``: what a registry says about a domain, in incident terms.

The registry's RDAP answer (RFC 9083) is the authority for statuses and expiry; the registrar's answer, found
through the registry's ``related`` link, is where ICANN's RDAP profile puts the abuse contact. WHOIS
(RFC 3912) is a fallback for TLDs without RDAP, marked low-reliability. Every failure is a finding with a
``status``; nothing here lets an httpx exception reach the engine.

The lookup machinery (``lookup``, ``prepare``, ``make_client``) is shared with
``domain.expiry_audit`` in ``domain_audit``, which runs many lookups over one client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params
from actions.clients import epp_status, fanout, rdap, whois

if TYPE_CHECKING:
    import httpx

AUTHORITATIVE = ("ok", "not_found")  # the registry answered; anything else means we do not know


class LookupParams(Params):
    """Where and how to look domains up: shared by domain.status and domain.expiry_audit."""

    rdap_url: str | None = Field(
        None,
        description="RDAP base URL to ask instead of the bootstrap's "
        "(e.g. https://rdap.verisign.com/com/v1/)",
    )
    bootstrap_url: str = Field(
        rdap.IANA_DNS_BOOTSTRAP,
        description="where refresh_bootstrap fetches the IANA DNS bootstrap file (RFC 9224)",
    )
    refresh_bootstrap: bool = Field(
        False,
        description="fetch the bootstrap file now and cache it under "
        "$BREAKGLASS_HOME/cache; otherwise the cached or shipped copy is used",
    )
    whois_server: str | None = Field(
        None,
        description="WHOIS server (host or host:port) for the port-43 "
        "fallback; default: breakglass's map for TLDs without RDAP",
    )
    whois_fallback: bool = Field(True, description="ask WHOIS when the TLD has no RDAP service")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds per HTTP request or WHOIS query")
    retries: int = Field(2, ge=0, le=10, description="retries after a 5xx, a timeout or a 429")
    backoff: float = Field(0.5, ge=0, le=60, description="first retry delay in seconds, doubled each retry")
    max_retry_after: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="longest 429 Retry-After to wait for; a longer one is reported as rate_limited",
    )
    warn_days: int = Field(30, ge=0, description="expiry closer than this many days is a finding")
    now: datetime | None = Field(None, description="the clock for days_until_expiry (default: now, UTC)")


class DomainStatusParams(LookupParams):
    domain: str = Field(description="the registered domain to look up, e.g. example.com")
    follow_referral: bool = Field(
        True,
        description="also ask the registrar's RDAP server named by the "
        "registry's related link (where the abuse contact lives)",
    )


@dataclass(frozen=True)
class Lookup:
    """Everything one domain lookup needs besides the HTTP client and the per-server gate."""

    policy: rdap.FetchPolicy
    bootstrap: rdap.Bootstrap | None
    rdap_url: str | None
    follow_referral: bool
    whois_server: str | None
    whois_fallback: bool
    now: datetime
    warn_days: int


async def lookup(name: str, how: Lookup, client: httpx.AsyncClient, gate: rdap.ServerGate) -> dict[str, Any]:
    """One domain, end to end: bootstrap → registry → registrar referral, or WHOIS when there is no RDAP."""
    try:
        domain = name.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        return failure(name, "invalid", f"'{name}' is not a valid domain name ({exc})")
    bases = (how.rdap_url,) if how.rdap_url else how.bootstrap.base_urls(domain) if how.bootstrap else ()
    if not bases:
        return await _whois_or_give_up(domain, how)
    fetched = await rdap.fetch_rdap(client, rdap.domain_url(bases[0], domain), how.policy, gate)
    if fetched.status != "ok" or fetched.body is None:
        return failure(domain, fetched.status, _explain(fetched), rdap_url=fetched.url)
    record = rdap.parse_domain(fetched.body)
    notes: list[str] = []
    registrar_url = record.pop("referral")
    if how.follow_referral and registrar_url:
        await _follow(record, registrar_url, client, gate, how.policy, notes)
    output = summarize(domain, record, "rdap", how.now, how.warn_days, notes)
    output.update(rdap_url=fetched.url, registrar_rdap_url=registrar_url)
    return output


async def _follow(
    record: dict[str, Any],
    url: str,
    client: httpx.AsyncClient,
    gate: rdap.ServerGate,
    policy: rdap.FetchPolicy,
    notes: list[str],
) -> None:
    """Fill registrar details from the registrar's answer; the registry keeps the last word on statuses."""
    fetched = await rdap.fetch_rdap(client, url, policy, gate)
    if fetched.status != "ok" or fetched.body is None:
        notes.append(f"registrar RDAP {url} gave {fetched.status} ({_explain(fetched)}); registry data shown")
        return
    theirs = rdap.parse_domain(fetched.body)["registrar"]
    mine = record["registrar"]
    record["registrar"] = {key: mine.get(key) or theirs.get(key) for key in mine}


async def _whois_or_give_up(domain: str, how: Lookup) -> dict[str, Any]:
    server = whois.server_for(domain, how.whois_server) if how.whois_fallback else None
    if server is None:
        return failure(
            domain,
            "no_rdap_service",
            f"no RDAP service for '{domain}' in the bootstrap file and no "
            "WHOIS server known: pass rdap_url or whois_server, or refresh_bootstrap",
        )
    host, port = server
    try:
        text = await whois.query(host, port, domain, how.policy.timeout)
    except TimeoutError:
        return failure(
            domain,
            "timeout",
            f"WHOIS server {host}:{port} did not answer within {how.policy.timeout}s",
            source="whois",
        )
    except (OSError, UnicodeError) as exc:
        return failure(domain, "unreachable", f"WHOIS server {host}:{port}: {exc}", source="whois")
    parsed = whois.parse(text)
    if not parsed.pop("found"):
        return failure(
            domain, "not_found", f"WHOIS server {host}:{port} has no record of '{domain}'", source="whois"
        )
    record = whois.to_record(domain, parsed)
    note = (
        f"from WHOIS ({host}:{port}), not RDAP: free text without a standard schema, so fields may be "
        "missing or misread; check with the registry before acting on it"
    )
    output = summarize(domain, record, "whois", how.now, how.warn_days, [note])
    output["reliability"] = "low"
    return output


def summarize(
    domain: str, record: dict[str, Any], source: str, now: datetime, warn_days: int, notes: list[str]
) -> dict[str, Any]:
    """The plain-data output of one successful lookup, findings included."""
    statuses = [epp_status.describe(s, record.get("scheme", "epp")) for s in record["statuses"]]
    expires = parse_date(record.get("expires"))
    days = (expires - now).days if expires else None
    output = {
        "domain": domain,
        "status": "ok",
        "source": source,
        "reliability": "high" if source == "rdap" else "low",
        "statuses": statuses,
        "resolves": all(s["resolves"] for s in statuses),
        "nameservers": record["nameservers"],
        "registrar": record["registrar"],
        "registered": _iso(record.get("registered")),
        "expires": _iso(record.get("expires")),
        "last_changed": _iso(record.get("last_changed")),
        "days_until_expiry": days,
        "dnssec": {"delegation_signed": record.get("delegation_signed")},
        "locks": epp_status.locks({s["epp"] for s in statuses if s["epp"]}),
        "registrant": record.get("registrant"),
    }
    output["unknown"] = unknown_fields(output)
    output["findings"] = findings(output, warn_days) + notes
    return output


# What an answer may leave out, said in the operator's words; the keys are the output's field names.
UNKNOWN = {
    "statuses": "registration status",
    "expires": "expiry date",
    "registrar": "registrar",
}


def unknown_fields(output: dict[str, Any]) -> list[str]:
    """The output fields the answer did not give (or gave unreadably): said, never shown as None."""
    missing = {
        "statuses": not output["statuses"],
        "expires": output["days_until_expiry"] is None,
        "registrar": not output["registrar"].get("name"),
    }  # no nameservers is an answer (nothing delegated, as for a Suspended .jp domain), not an unknown
    return [field for field, absent in missing.items() if absent]


def findings(output: dict[str, Any], warn_days: int) -> list[str]:
    """Plain-language problems, most urgent first."""
    registrar = output["registrar"]
    abuse = ", ".join(v for v in (registrar.get("abuse_email"), registrar.get("abuse_phone")) if v)
    abuse = abuse or f"{registrar.get('name') or 'registrar unknown'}, no abuse contact published"
    found = [text for s in output["statuses"] if (text := epp_status.advice(s, abuse))]
    days = output["days_until_expiry"]
    if days is not None and days < 0:
        found.append(f"domain expired {-days} days ago ({output['expires']}): renew it at the registrar now")
    elif days is not None and days <= warn_days:
        found.append(f"domain expires in {days} days ({output['expires']}): renew it or check auto-renew")
    elif output["expires"] is None:
        found.append("no expiration date published: check it at the registrar")
    elif days is None:
        found.append(f"expiry date '{output['expires']}' is not a date breakglass can read: check it at the registrar")
    unknown = [UNKNOWN[field] for field in output.get("unknown", ()) if field != "expires"]
    if unknown:
        source = "WHOIS" if output["source"] == "whois" else "RDAP"
        found.append(f"unknown ({source} answer does not say): {', '.join(unknown)}; ask the registrar")
    return found


def failure(domain: str, status: str, message: str, source: str = "rdap", **extra: Any) -> dict[str, Any]:
    """The output of a lookup that produced no registration data."""
    return {
        "domain": domain,
        "status": status,
        "source": source,
        "findings": [message],
        "statuses": [],
        "resolves": None,
        "days_until_expiry": None,
        "expires": None,
        "unknown": list(UNKNOWN),
        **extra,
    }


def _explain(fetched: rdap.Fetched) -> str:
    attempts = f" after {fetched.attempts} attempts" if fetched.attempts > 1 else ""
    text = {
        "not_found": f"{fetched.url}: the registry has no such domain (HTTP 404); it may be unregistered "
        "or already purged",
        "rate_limited": f"{fetched.url}: rate limited ({fetched.message}){attempts}; try again later or "
        "lower the audit's per_server",
        "server_error": f"{fetched.url}: server error HTTP {fetched.http_status}{attempts}",
        "timeout": f"{fetched.url}: {fetched.message}{attempts}",
        "malformed": f"{fetched.url}: the answer is not a valid RDAP domain object ({fetched.message})",
    }
    return text.get(fetched.status, f"{fetched.url}: {fetched.message or fetched.status}{attempts}")


def parse_date(value: Any) -> datetime | None:
    """RDAP dates are RFC 3339, but servers drop the zone or use odd fractions; WHOIS adds '2025-06-28'."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1) if "T" not in value and ":" in value else value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = datetime.strptime(text[:11], "%d-%b-%Y")  # noqa: DTZ007 - zone set below
        except ValueError:
            return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _iso(value: Any) -> str | None:
    when = parse_date(value)
    return when.isoformat().replace("+00:00", "Z") if when else (value if isinstance(value, str) else None)


# --- running: one event loop per step, one AsyncClient shared by every lookup in it.


def clock(params: LookupParams, ctx: ActionContext) -> datetime:
    """The ``now`` argument, else ``ctx.settings['now']`` (tests, drills), else the wall clock."""
    value = params.now or ctx.settings.get("now")
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return datetime.now(UTC)


def make_client(params: LookupParams, connections: int) -> httpx.AsyncClient:
    """The one AsyncClient a step's lookups share, with at most ``connections`` open at once."""
    import httpx

    # RFC 7480 section 5.2: RDAP servers redirect to the authoritative server, so redirects are followed.
    return httpx.AsyncClient(
        follow_redirects=True,
        max_redirects=5,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"User-Agent": "breakglass (domain.status; RFC 7480)"},
    )


async def prepare(
    params: LookupParams, ctx: ActionContext, client: httpx.AsyncClient, follow: bool
) -> tuple[Lookup, list[str]]:
    """Bootstrap (refreshed on demand) and settings; a failed refresh falls back to the cached copy."""
    policy = rdap.FetchPolicy(params.timeout, params.retries, params.backoff, params.max_retry_after)
    notes: list[str] = []
    boot: rdap.Bootstrap | None = None
    if params.rdap_url is None:
        if params.refresh_bootstrap:
            try:
                boot = await rdap.refresh_bootstrap(client, params.bootstrap_url, policy)
            except (rdap.BootstrapError, OSError) as exc:
                notes.append(f"bootstrap refresh failed ({exc}); used the cached or shipped copy")
        boot = boot or rdap.load_bootstrap()
    how = Lookup(
        policy,
        boot,
        params.rdap_url,
        follow,
        params.whois_server,
        params.whois_fallback,
        clock(params, ctx),
        params.warn_days,
    )
    return how, notes


class DomainStatusOutput(Output):
    domain: str = Field(description="The domain looked up.")
    status: str = Field(description="ok, not_found, rate_limited, server_error, timeout, malformed, unreachable.")
    source: str = Field(description="rdap or whois.")
    reliability: str = Field(description="high (RDAP) or low (WHOIS free text).")
    statuses: list[dict[str, Any]] = Field(description="EPP statuses with their meaning and risk.")
    resolves: bool | None = Field(description="False when a status keeps the domain out of the DNS.")
    nameservers: list[str] = Field(description="Delegated nameservers.")
    registrar: dict[str, Any] = Field(description="The registrar: name, IANA id, abuse email and phone.")
    registered: str | None = Field(description="Registration date (ISO 8601).")
    expires: str | None = Field(description="Expiry date (ISO 8601).")
    last_changed: str | None = Field(description="Last change (ISO 8601).")
    days_until_expiry: int | None = Field(description="Days until expiry; negative once expired.")
    dnssec: dict[str, Any] = Field(description="{delegation_signed}.")
    locks: dict[str, Any] = Field(description="Which transfer, update and delete locks are set.")
    findings: list[str] = Field(description="What an operator should know, most important first.")
    unknown: list[str] = Field(
        default=[],
        description="Fields the registry's answer did not give: statuses, expires, registrar.",
    )
    registrant: str | None = Field(None, description="The registrant, where the registry publishes it (JPRS).")
    rdap_url: str = Field("", description="The RDAP URL asked, when the lookup failed.")


class DomainStatus(Action[DomainStatusParams]):
    """Registry status, holds, locks, expiry and the registrar's abuse contact for one domain."""

    name: ClassVar[str] = "domain.status"
    summary: ClassVar[str] = "RDAP (or WHOIS) status, holds, expiry and registrar abuse contact of a domain"
    effect: ClassVar[Effect] = Effect.READ
    Output = DomainStatusOutput

    def run(self, params: DomainStatusParams, ctx: ActionContext) -> ActionResult:
        output = fanout.run(lambda: self._run(params, ctx))
        return ActionResult(output=output, ok=output["status"] in AUTHORITATIVE, message=_headline(output))

    async def _run(self, params: DomainStatusParams, ctx: ActionContext) -> dict[str, Any]:
        async with make_client(params, 4) as client:
            how, notes = await prepare(params, ctx, client, params.follow_referral)
            output = await lookup(params.domain, how, client, rdap.ServerGate(per_server=2))
        output["findings"] = output["findings"] + notes
        return output


def _headline(output: dict[str, Any]) -> str:
    if output["status"] != "ok":
        return f"{output['domain']}: {output['status']}: {output['findings'][0]}"
    codes = [s["epp"] or s["value"] for s in output["statuses"]] or ["status unknown"]
    expiry = (
        f"expires in {output['days_until_expiry']} days"
        if output["days_until_expiry"] is not None
        else "expiry unknown"
    )
    registrar = output["registrar"].get("name")
    who = f"registrar {registrar}" if registrar else "registrar unknown"
    return f"{output['domain']}: {', '.join(codes)}; {expiry}; {who}"
