"""``mail.auth_records`` and ``mail.spf_check``: the DNS side of "our mail is being rejected".

After a move to a new host or relay, mail breaks in DNS before it breaks anywhere else: an MX pointing at a
name that no longer resolves, an SPF record one include over the 10-lookup limit (RFC 7208 4.6.4), a DMARC
policy (RFC 7489) that now rejects, a DKIM selector (RFC 6376) that was not copied, a PTR that does not
confirm forward. ``mail.auth_records`` reads all of it in one step; ``mail.spf_check`` answers "would this IP
pass SPF for this sender" with RFC 7208 ``check_host()`` and the term that decided.

Every question goes through the shared ``clients.dns.Resolver`` (dnspython is imported only when one is
asked); a question no server answered is reported as an error in its part of the report, not raised.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from pydantic import AliasChoices, Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params
from actions.clients.dns import DnsFailure, Resolver
from actions.clients.spf import (
    LOOKUP_LIMIT,
    VOID_LIMIT,
    SpfError,
    check_host,
    is_spf,
    parse_record,
)

NAMESERVERS = "resolvers 'ip[:port]' ('[v6]:port'), one or a list, asked in order; default: the system's"


class MailAuthRecordsParams(Params):
    domain: str = Field(description="mail domain to inspect, e.g. example.com")
    dkim_selectors: list[str] = Field(
        default=[], description="DKIM selectors to look up (<selector>._domainkey.<domain>)"
    )
    sending_ip: str | None = Field(
        default=None, description="outbound IP whose PTR and forward-confirmed reverse DNS to check"
    )
    nameservers: str | list[str] | None = Field(
        default=None, validation_alias=AliasChoices("nameservers", "resolver"), description=NAMESERVERS
    )
    timeout: float = Field(default=5.0, gt=0, description="seconds per DNS query")


class MailSpfCheckParams(Params):
    ip: str = Field(description="IP address of the sending host (the new relay, the MTA)")
    mail_from: str = Field(default="", description="MAIL FROM (envelope sender); empty = null sender")
    helo: str = Field(description="HELO/EHLO name the sending host announces")
    nameservers: str | list[str] | None = Field(
        default=None, validation_alias=AliasChoices("nameservers", "resolver"), description=NAMESERVERS
    )
    timeout: float = Field(default=5.0, gt=0, description="seconds per DNS query")


def tags(text: str) -> dict[str, str]:
    """tag=value; lists as DMARC (RFC 7489 6.4), DKIM (RFC 6376 3.6.1), MTA-STS and TLS-RPT use them."""
    pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def txt_strings(dns: Resolver, name: str) -> tuple[list[str], str | None]:
    """TXT texts at ``name`` and an error message when the lookup itself failed."""
    try:
        return [t.decode("utf-8", "replace") for t in dns.txt(name)], None
    except DnsFailure as exc:
        return [], str(exc)


# ---- MX ---------------------------------------------------------------------------------------------------


def mx_report(dns: Resolver, domain: str) -> dict[str, Any]:
    try:
        records = sorted(dns.records(domain, "MX"), key=lambda r: r.preference)
    except DnsFailure as exc:
        return {"status": "error", "error": str(exc), "records": []}
    rows = [_mx_row(dns, r.preference, r.exchange.to_text(omit_final_dot=True)) for r in records]
    if len(rows) == 1 and rows[0]["exchange"] in ("", "."):
        return {"status": "null_mx", "records": rows}  # RFC 7505: the domain accepts no mail
    if not rows:
        return {"status": "missing", "records": []}
    return {"status": "ok" if all(r["resolves"] for r in rows) else "unresolvable", "records": rows}


def _mx_row(dns: Resolver, preference: int, exchange: str) -> dict[str, Any]:
    addresses: list[str] = []
    error = None
    if exchange:
        for version in (4, 6):
            try:
                addresses += dns.addresses(exchange, version)
            except DnsFailure as exc:
                error = str(exc)
    return {
        "preference": preference,
        "exchange": exchange,
        "addresses": addresses,
        "resolves": bool(addresses),
        "error": error,
    }


# ---- SPF --------------------------------------------------------------------------------------------------


def spf_report(dns: Resolver, domain: str) -> dict[str, Any]:
    texts, error = txt_strings(dns, domain)
    records = [t for t in texts if is_spf(t.encode("latin-1", "replace"))]
    report: dict[str, Any] = {
        "record": records[0] if len(records) == 1 else None,
        "records_found": len(records),
        "lookup_limit": LOOKUP_LIMIT,
        "void_limit": VOID_LIMIT,
        "flags": [],
    }
    if error:
        return {**report, "status": "error", "error": error}
    if not records:
        return {**report, "status": "missing", "flags": ["missing: no v=spf1 record, receivers see SPF none"]}
    if len(records) > 1:
        return {
            **report,
            "status": "multiple",
            "flags": ["multiple v=spf1 records: every receiver returns permerror (RFC 7208 4.5)"],
        }
    counter = LookupCounter(dns)
    try:
        counter.walk(domain, records[0], depth=0)
    except SpfError as exc:  # PermError: a broken include
        return {**report, "status": exc.result, "error": str(exc), "lookups": counter.lookups}
    except DnsFailure as exc:  # an include that does not answer: what receivers see as temperror
        return {**report, "status": "temperror", "error": str(exc), "lookups": counter.lookups}
    flags = counter.flags + _all_flags(records[0])
    if counter.lookups > LOOKUP_LIMIT:
        flags.append(f"{counter.lookups} DNS lookups, over the limit of {LOOKUP_LIMIT}: permerror (RFC 7208 4.6.4)")
    if counter.voids > VOID_LIMIT:
        flags.append(f"{counter.voids} void lookups, over the limit of {VOID_LIMIT}: permerror (RFC 7208 4.6.4)")
    status = "permerror" if counter.lookups > LOOKUP_LIMIT or counter.voids > VOID_LIMIT else "ok"
    return {
        **report,
        "status": status,
        "lookups": counter.lookups,
        "void_lookups": counter.voids,
        "includes": counter.includes,
        "flags": flags,
    }


def _all_flags(record: str) -> list[str]:
    words = [w.lower() for w in record.split()[1:]]
    if "+all" in words or "all" in words:
        return ["+all: every host on the internet passes SPF for this domain"]
    if not any(w.lstrip("+-~?") == "all" for w in words) and not any(w.startswith("redirect=") for w in words):
        return ["no 'all' and no redirect: unmatched senders get neutral"]
    return []


class LookupCounter:
    """Counts the DNS lookups a full evaluation could cost, following include/redirect (RFC 7208 4.6.4)."""

    def __init__(self, dns: Resolver) -> None:
        self.dns = dns
        self.lookups = 0
        self.voids = 0
        self.includes: list[str] = []
        self.flags: list[str] = []

    def walk(self, domain: str, text: str, depth: int) -> None:
        record = parse_record(text)
        self.lookups += record.dns_terms
        terms = [*record.directives, *([record.redirect] if record.redirect else [])]
        for term in terms:
            if term.spec is None or "%" in term.spec:
                continue  # macros depend on the sender; a static count cannot expand them
            if term.kind in ("include", "redirect"):
                self._follow(term.spec, depth)
            elif term.kind in ("a", "mx", "exists"):
                self._probe(term.spec, "MX" if term.kind == "mx" else "A")

    def _follow(self, target: str, depth: int) -> None:
        self.includes.append(target)
        records = [t for t in self.dns.txt(target) if is_spf(t)]
        if len(records) != 1:
            self.voids += not records
            self.flags.append(f"include/redirect target {target} has {len(records)} SPF records: permerror")
            return
        if depth < LOOKUP_LIMIT:  # loops stop at the limit, like evaluation does
            self.walk(target, records[0].decode("latin-1"), depth + 1)

    def _probe(self, target: str, rdtype: str) -> None:
        if not self.dns.records(target, rdtype) and (rdtype != "A" or not self.dns.records(target, "AAAA")):
            self.voids += 1


# ---- DMARC, DKIM, MTA-STS, TLS-RPT -----------------------------------------------------------------------


def _dmarc_candidates(domain: str) -> list[str]:
    """Where a domain's DMARC policy may live, nearest first: the DNS tree walk of DMARCbis
    (draft-ietf-dmarc-dmarcbis 4.10), which replaced RFC 7489's public-suffix lookup of the organisational
    domain. At most 8 queries: a name of more than 8 labels jumps straight to its last 7. The top-level
    domain itself is never asked (no public-suffix policy is consulted here)."""
    labels = domain.strip(".").split(".")
    names = [".".join(labels)]
    if len(labels) > 8:
        labels = labels[-7:]
        names.append(".".join(labels))
    while len(labels) > 2:
        labels = labels[1:]
        names.append(".".join(labels))
    return names


def dmarc_report(dns: Resolver, domain: str) -> dict[str, Any]:
    for name in _dmarc_candidates(domain):
        texts, error = txt_strings(dns, f"_dmarc.{name}")
        if error:
            return {"status": "error", "error": error, "name": f"_dmarc.{name}"}
        records = [t for t in texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
        if len(records) > 1:
            # RFC 7489 6.6.3: several records means no DMARC policy applies.
            return {"status": "multiple", "records_found": len(records), "name": f"_dmarc.{name}"}
        if records:
            return _dmarc_policy(records[0], name, inherited=name != domain.strip("."))
    return {"status": "missing", "records_found": 0, "searched": [f"_dmarc.{n}" for n in
                                                                   _dmarc_candidates(domain)]}


def _dmarc_policy(record: str, found_at: str, inherited: bool) -> dict[str, Any]:
    policy = tags(record)
    # A policy found above the domain governs it as a subdomain: sp= when set, else p= (RFC 7489 6.6.3).
    applied = (policy.get("sp") or policy.get("p", "")) if inherited else policy.get("p", "")
    flags = []
    if applied.lower() == "none":
        flags.append("p=none: monitoring only, receivers do not act on failures" if not inherited else
                     f"inherits {found_at}'s policy none: monitoring only, receivers do not act on failures")
    if "rua" not in policy:
        flags.append("no rua: nobody receives aggregate reports")
    if policy.get("p", "").lower() not in ("none", "quarantine", "reject"):
        flags.append("missing or invalid p= tag (RFC 7489 6.3)")
    return {
        "status": "ok",
        "record": record,
        "found_at": f"_dmarc.{found_at}",
        "inherited": inherited,
        "policy": policy.get("p"),
        "subdomain_policy": policy.get("sp"),
        "applied_policy": applied or None,
        "pct": policy.get("pct", "100"),
        "rua": [u.strip() for u in policy.get("rua", "").split(",") if u.strip()],
        "adkim": policy.get("adkim", "r"),
        "aspf": policy.get("aspf", "r"),
        "flags": flags,
    }


def dkim_report(dns: Resolver, domain: str, selector: str) -> dict[str, Any]:
    name = f"{selector}._domainkey.{domain}"
    texts, error = txt_strings(dns, name)
    if error:
        return {"selector": selector, "name": name, "status": "error", "error": error}
    if not texts:
        return {"selector": selector, "name": name, "status": "missing"}
    record = "".join(texts)
    key = tags(record)
    public = key.get("p", "").replace(" ", "")
    if not public:
        # RFC 6376 3.6.1: an empty p= means the key was revoked.
        return {"selector": selector, "name": name, "status": "revoked", "record": record}
    return {
        "selector": selector,
        "name": name,
        "status": "ok",
        "record": record,
        "key_type": key.get("k", "rsa"),
        "key_bits": _key_bits(public),
        "testing": "y" in key.get("t", ""),
    }


def _key_bits(public_b64: str) -> int | None:
    """RSA modulus size, or None when the key does not parse (receivers reject < 1024, RFC 8301)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        key = load_der_public_key(base64.b64decode(public_b64))
    except Exception:  # broken base64 or DER, or cryptography absent: size unknown
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def policy_txt_report(dns: Resolver, name: str, version: str) -> dict[str, Any]:
    """MTA-STS (RFC 8461 3.1) and TLS-RPT (RFC 8460 3) announce themselves in one TXT record."""
    texts, error = txt_strings(dns, name)
    records = [t for t in texts if t.replace(" ", "").lower().startswith(f"v={version.lower()}")]
    if error:
        return {"name": name, "present": False, "error": error}
    return {
        "name": name,
        "present": len(records) == 1,
        "records_found": len(records),
        "record": records[0] if len(records) == 1 else None,
        "fields": tags(records[0]) if len(records) == 1 else {},
    }


# ---- reverse DNS -------------------------------------------------------------------------------------------


def reverse_report(dns: Resolver, ip: str) -> dict[str, Any]:
    """PTR of the sending IP and forward confirmation: many receivers reject mail without FCrDNS."""
    address = ipaddress.ip_address(ip)
    try:
        names = [r.target.to_text(omit_final_dot=True) for r in dns.records(address.reverse_pointer, "PTR")]
    except DnsFailure as exc:
        return {"ip": ip, "status": "error", "error": str(exc), "ptr": []}
    rows = []
    for name in names:
        try:
            forward = dns.addresses(name, address.version)
        except DnsFailure:
            forward = []
        confirmed = ip in {str(ipaddress.ip_address(a)) for a in forward}
        rows.append({"name": name, "addresses": forward, "confirmed": confirmed})
    status = "missing" if not rows else "ok" if any(r["confirmed"] for r in rows) else "not_confirmed"
    return {"ip": ip, "status": status, "ptr": rows, "fcrdns": status == "ok"}


def problems(report: dict[str, Any]) -> list[str]:
    """Advice lines an on-call engineer acts on, in the order mail breaks."""
    found = []
    if report["mx"]["status"] not in ("ok", "null_mx"):
        found.append(f"MX: {report['mx']['status']}")
    found += [f"SPF: {flag}" for flag in report["spf"].get("flags", [])]
    if report["spf"]["status"] not in ("ok", "missing", "multiple"):
        found.append(f"SPF: {report['spf']['status']} {report['spf'].get('error', '')}".strip())
    found += [f"DMARC: {flag}" for flag in report["dmarc"].get("flags", [])]
    if report["dmarc"]["status"] != "ok":
        found.append(f"DMARC: {report['dmarc']['status']}")
    found += [f"DKIM {d['selector']}: {d['status']}" for d in report["dkim"] if d["status"] != "ok"]
    if report.get("reverse") and report["reverse"]["status"] != "ok":
        found.append(f"PTR/FCrDNS for {report['reverse']['ip']}: {report['reverse']['status']}")
    return found


class MailAuthRecordsOutput(Output):
    domain: str = Field(description="The mail domain checked.")
    mx: dict[str, Any] = Field(description="{status, records}: ok, null_mx, missing, unresolvable or error.")
    spf: dict[str, Any] = Field(description="The SPF record, its status, lookups against the limit of 10, flags.")
    dmarc: dict[str, Any] = Field(description="The DMARC record, where found, its policy and flags.")
    dkim: list[dict[str, Any]] = Field(description="Each selector's key: status, key type and bits.")
    mta_sts: dict[str, Any] = Field(description="The _mta-sts TXT record: present, fields.")
    tls_rpt: dict[str, Any] = Field(description="The _smtp._tls TXT record: present, fields.")
    reverse: dict[str, Any] | None = Field(description="PTR and forward-confirmed reverse DNS of sending_ip.")
    problems: list[str] = Field(description="What is wrong, one line each; empty when the records look sane.")


class MailAuthRecords(Action[MailAuthRecordsParams]):
    name = "mail.auth_records"
    summary = "Read MX, SPF (lookup count), DMARC, DKIM, PTR/FCrDNS, MTA-STS and TLS-RPT records of a domain"
    effect = Effect.READ
    Output = MailAuthRecordsOutput

    def run(self, params: MailAuthRecordsParams, ctx: ActionContext) -> ActionResult:
        dns = Resolver.of(params.nameservers, timeout=params.timeout)
        domain = params.domain.rstrip(".").lower()
        report: dict[str, Any] = {
            "domain": domain,
            "mx": mx_report(dns, domain),
            "spf": spf_report(dns, domain),
            "dmarc": dmarc_report(dns, domain),
            "dkim": [dkim_report(dns, domain, s) for s in params.dkim_selectors],
            "mta_sts": policy_txt_report(dns, f"_mta-sts.{domain}", "STSv1"),
            "tls_rpt": policy_txt_report(dns, f"_smtp._tls.{domain}", "TLSRPTv1"),
            "reverse": reverse_report(dns, params.sending_ip) if params.sending_ip else None,
        }
        report["problems"] = problems(report)
        message = "; ".join(report["problems"]) or "MX, SPF, DMARC and DKIM records look sane"
        return ActionResult(report, message=message + params.deprecation_note())


class MailSpfCheckOutput(Output):
    result: str = Field(description="pass, fail, softfail, neutral, none, permerror or temperror (RFC 7208).")
    mechanism: str | None = Field(None, description="The mechanism that decided.")
    domain: str = Field("", description="The domain whose record decided.")
    explanation: str | None = Field(None, description="The exp= text, on fail.")
    reason: str = Field("", description="Why, in words.")
    lookups: int = Field(0, description="DNS lookups counted against the limit of 10.")
    void_lookups: int = Field(0, description="Lookups that found nothing.")
    chain: list[str] = Field([], description="The records followed (include, redirect).")
    helo: dict[str, Any] = Field({}, description="The HELO identity's own result, when mail_from was given.")


class MailSpfCheck(Action[MailSpfCheckParams]):
    name = "mail.spf_check"
    summary = "Evaluate SPF (RFC 7208 check_host) for a sending IP, MAIL FROM and HELO"
    effect = Effect.READ
    Output = MailSpfCheckOutput

    def run(self, params: MailSpfCheckParams, ctx: ActionContext) -> ActionResult:
        try:
            ipaddress.ip_address(params.ip)
        except ValueError:
            return ActionResult(
                {"result": "none", "reason": f"{params.ip!r} is not an IP address"},
                ok=False,
                message=f"{params.ip!r} is not an IP address",
            )
        dns = Resolver.of(params.nameservers, timeout=params.timeout)
        result = check_host(dns, params.ip, params.mail_from, params.helo)
        output: dict[str, Any] = {
            "result": result.result,
            "mechanism": result.mechanism,
            "domain": result.domain,
            "explanation": result.explanation,
            "reason": result.reason,
            "lookups": result.lookups,
            "void_lookups": result.void_lookups,
            "chain": list(result.chain),
        }
        if params.mail_from:
            # RFC 7208 2.3: the HELO identity is checked on its own too; receivers may act on either.
            helo = check_host(dns, params.ip, "", params.helo)
            output["helo"] = {"result": helo.result, "mechanism": helo.mechanism, "reason": helo.reason}
        decided = f" by {result.mechanism}" if result.mechanism else ""
        message = f"SPF {result.result} for {params.ip} at {result.domain}{decided}"
        return ActionResult(output, message=message + params.deprecation_note())
