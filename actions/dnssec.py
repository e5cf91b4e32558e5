"""``dns.dnssec``: is the zone's chain of trust whole? DS at the parent against the DNSKEYs the zone's servers
publish, the RRSIG windows, and a validating resolver's SERVFAIL-versus-CD symptom. Read-only; the DNSSEC
work is in ``clients.dnssec``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params
from actions.clients import dnssec
from actions.clients.dns import parse_nameservers, parse_server, resolve_host
from engine.errors import ActionError

MEANING = {
    dnssec.RESOLVER_FAILS: "the validating resolver answers SERVFAIL and answers with CD: validation fails",
    dnssec.SERVER_UNREACHABLE: "an authoritative server did not answer",
    dnssec.NO_DNSKEY: "the zone's servers publish no DNSKEY",
    dnssec.DS_MATCHES_NO_KEY: "the DS at the parent matches no DNSKEY the servers publish (stale DS?)",
    dnssec.DS_ALGORITHM_MISSING: "a DS names an algorithm no DNSKEY has (algorithm rollover?)",
    dnssec.SIGNATURE_EXPIRED: "signatures have EXPIRED (the signer stopped?)",
    dnssec.SIGNATURE_NOT_YET_VALID: "signatures are not valid yet (clock of the signer?)",
    dnssec.SIGNATURE_BOGUS: "signatures do not verify with the published keys",
    dnssec.UNSIGNED: "records are served without signatures",
    dnssec.SERVERS_DISAGREE: "the servers publish different DNSKEY sets",
    dnssec.SIGNATURE_EXPIRES_SOON: f"signatures end within {dnssec.SOON_DAYS} days",
}
# Not failures by themselves. A DS of an algorithm the zone no longer signs with, next to one that matches, is a
# rollover left half done: validators take the path that works (RFC 6840 5.11). Alone, the DS matches no key,
# and that problem is reported too.
WARNINGS = {dnssec.SIGNATURE_EXPIRES_SOON, dnssec.DS_ALGORITHM_MISSING}


class DnsDnssecParams(Params):
    zone: str = Field(description="The signed zone, e.g. example.com.")
    nameservers: str | list[str] = Field(
        description='The zone\'s authoritative servers, "ip[:port]" or a hostname (one or a list).')
    parent: str | list[str] | None = Field(
        None, description='A server of the parent zone to read the DS from, "ip[:port]"; default: the resolver '
        "(with CD).")
    ds: list[str] | None = Field(
        None, description='The DS records as the registrar holds them ("tag alg digest_type digest"); '
        "default: read from the parent.")
    resolver: str | None = Field(
        None, description='A validating resolver, "ip[:port]", asked with and without CD; none = skip that check.')
    port: int = Field(53, gt=0, lt=65536, description="Port of servers written without one.")
    names: list[str] = Field([], description="More names whose A record signatures are checked, e.g. www.example.com.")
    now: datetime | None = Field(None, description="Validate as of this time (ISO 8601); default: now. For tests.")
    timeout: float = Field(2.0, gt=0, description="Seconds to wait for each attempt.")
    retries: int = Field(1, ge=0, le=10, description="Extra attempts after a timeout.")


class DnsDnssecOutput(Output):
    zone: str = Field(description="The zone checked.")
    checked_at: str = Field(description="The validation time.")
    secure: bool = Field(description="True when nothing below breaks validation.")
    problems: list[str] = Field(description="Codes: " + ", ".join(MEANING) + ".")
    findings: list[str] = Field(description="The problems in words.")
    servers: list[dict[str, Any]] = Field(description="Each authoritative server: status, key_tags.")
    dnskeys: list[dict[str, Any]] = Field(description="Each DNSKEY: key_tag, algorithm, role (KSK/ZSK), ds.")
    dnskey_ttl: int | None = Field(description="TTL of the DNSKEY RRset.")
    ds_source: str = Field(description="parent, given, resolver or none.")
    ds: list[dict[str, Any]] = Field(description="Each DS: record, key_tag, algorithm, digest_type, matches_key.")
    ds_ttl: int | None = Field(description="TTL of the DS at the parent: how long resolvers may keep a stale one.")
    signatures: list[dict[str, Any]] = Field(
        description="Each RRSIG: name, type, key_tag, inception, expiration, days_left, status.")
    resolver: dict[str, Any] | None = Field(
        description="server, status, cd_status, authenticated (AD), validation_failure; null without resolver.")
    suggested_ds: list[str] = Field(description="The DS of each published KSK (SHA-256), to give the registrar.")
    soa_ttl: int | None = Field(description="TTL of the SOA.")
    negative_ttl: int | None = Field(description="How long resolvers cache a 'no such name' (RFC 2308).")


class DnsDnssec(Action[DnsDnssecParams]):
    name = "dns.dnssec"
    summary = "DNSSEC chain of a zone: DS vs DNSKEY, RRSIG expiry, and a resolver's SERVFAIL vs CD."
    effect = Effect.READ
    Output = DnsDnssecOutput

    def run(self, params: DnsDnssecParams, ctx: ActionContext) -> ActionResult:
        # hostnames (ns1.example.net) are resolved once, here, with the system resolver, like dns.lookup's
        servers = [a for s in parse_nameservers(params.nameservers, params.port) for a in resolve_host(s) or [s]]
        parent = [a for s in parse_nameservers(params.parent or [], params.port) for a in resolve_host(s) or [s]]
        try:
            resolver = parse_server(params.resolver, params.port) if params.resolver else None
        except ValueError as exc:
            raise ActionError(f"resolver: {exc}") from None
        if not servers:
            raise ActionError("no authoritative server to ask: pass `nameservers:`")
        question = dnssec.Question(params.zone, servers, parent, params.ds or (), resolver, params.names,
                                   params.timeout, params.retries, params.now)
        try:
            out = dnssec.inspect(question)
        except ValueError as exc:  # a DS given in a form dnspython cannot read
            raise ActionError(f"ds: {exc}") from None
        broken = [p for p in out["problems"] if p not in WARNINGS]
        out["secure"] = not broken
        out["findings"] = [MEANING[p] for p in out["problems"]]
        summary = "; ".join(out["findings"]) or f"chain of trust whole ({len(out['dnskeys'])} keys, DS matches)"
        return ActionResult(out, ok=not broken, message=f"{out['zone']}: {summary}")
