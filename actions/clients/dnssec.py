"""DNSSEC of one zone, checked the way a validating resolver walks it (RFC 4033-4035): the DS at the parent
must name a DNSKEY the zone's servers publish (key tag, algorithm and digest), that key must sign the DNSKEY
RRset, and every RRSIG must be inside its validity window (RFC 4034 3.1.5) and verify.

The three outages this module is written for:
- *expired signatures*: the signer stopped (a cron job, a full disk, an HSM) and RRSIGs ran past their end;
- *a stale DS after a nameserver move*: the new provider signs with its own keys, the registrar still
  publishes the DS of the old provider's key, and every validating resolver answers SERVFAIL;
- *an algorithm rollover* done in the wrong order: the DS names an algorithm the zone no longer signs with.

The symptom check asks a validating resolver the same question twice, with and without CD (checking
disabled, RFC 4035 3.2.2): SERVFAIL without and an answer with CD means the data is there and fails
validation, i.e. a DNSSEC problem and not a dead server. dnspython's ``dns.dnssec`` (which needs
``cryptography``) does the key tags, digests and signature checks; it is imported inside functions.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from actions.clients import fanout
from actions.clients.address import Address
from actions.clients.dns import QueryOutcome, query_async

SOON_DAYS = 3  # signatures that end sooner than this are a warning: the signer may have stopped already

# problem codes, in the order an operator should read them
RESOLVER_FAILS = "resolver_servfail_cd_works"
NO_DNSKEY = "no_dnskey"
DS_MATCHES_NO_KEY = "ds_matches_no_dnskey"
DS_ALGORITHM_MISSING = "ds_algorithm_not_signing"
SIGNATURE_EXPIRED = "signature_expired"
SIGNATURE_NOT_YET_VALID = "signature_not_yet_valid"
SIGNATURE_BOGUS = "signature_bogus"
UNSIGNED = "unsigned"
SERVERS_DISAGREE = "servers_disagree"
SERVER_UNREACHABLE = "server_unreachable"
SIGNATURE_EXPIRES_SOON = "signature_expires_soon"


@dataclass(frozen=True)
class Question:
    """The servers and how to ask them; ``now`` is the validation time (tests pass one)."""

    zone: str
    nameservers: Sequence[Address]
    parent: Sequence[Address] = ()
    ds_given: Sequence[str] = ()
    resolver: Address | None = None
    names: Sequence[str] = ()
    timeout: float = 2.0
    retries: int = 1
    now: datetime | None = None


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


async def _ask(server: Address, name: str, rdtype: str, q: Question, *, recursion: bool = False,
               cd: bool = False) -> QueryOutcome:
    return await query_async(server, name, rdtype, timeout=q.timeout, retries=q.retries, tcp=False,
                             recursion=recursion, dnssec=True, checking_disabled=cd)


def _rrsets(outcome: QueryOutcome, rdtype: str) -> tuple[Any, Any]:
    """The RRset of ``rdtype`` and the RRSIGs covering it, from the answer section (None when absent)."""
    import dns.rdatatype

    if outcome.message is None:
        return None, None
    wanted = dns.rdatatype.from_text(rdtype)
    data = next((r for r in outcome.message.answer if r.rdtype == wanted), None)
    sigs = next((r for r in outcome.message.answer
                 if r.rdtype == dns.rdatatype.RRSIG and r.covers == wanted), None)
    return data, sigs


def describe_key(zone: str, key: Any) -> dict[str, Any]:
    """One DNSKEY: tag, algorithm, KSK/ZSK (the SEP flag, RFC 4034 2.1.1), and the DS to submit for a KSK:
    SHA-256 (RFC 4509), as SHA-1 DS records are deprecated (RFC 8624)."""
    import dns.dnssec
    import dns.name

    sep = bool(key.flags & 0x0001)
    out: dict[str, Any] = {
        "key_tag": dns.dnssec.key_id(key),
        "algorithm": int(key.algorithm),
        "algorithm_name": dns.dnssec.algorithm_to_text(key.algorithm),
        "flags": int(key.flags),
        "role": "KSK" if sep else "ZSK",
    }
    if sep:
        ds = dns.dnssec.make_ds(dns.name.from_text(_fqdn(zone)), key, "SHA256")
        out["ds"] = f"{_fqdn(zone)} IN DS {ds.to_text()}"
        out["public_key"] = base64.b64encode(key.key).decode()
    return out


def _ds_rows(zone: str, ds_records: list[Any], keys: list[Any]) -> list[dict[str, Any]]:
    """Each DS with the DNSKEY it names, if any: same tag, algorithm and digest (RFC 4034 5.2)."""
    import dns.dnssec
    import dns.dnssectypes
    import dns.exception
    import dns.name

    origin = dns.name.from_text(_fqdn(zone))
    rows = []
    for ds in ds_records:
        match = None
        for key in keys:
            if dns.dnssec.key_id(key) != ds.key_tag or key.algorithm != ds.algorithm:
                continue
            try:
                if dns.dnssec.make_ds(origin, key, dns.dnssectypes.DSDigest.make(ds.digest_type)) == ds:
                    match = key
            except (dns.exception.DNSException, ValueError):  # a digest type dnspython does not know
                continue
        rows.append({"record": f"{_fqdn(zone)} IN DS {ds.to_text()}", "key_tag": ds.key_tag,
                     "algorithm": int(ds.algorithm), "digest_type": int(ds.digest_type),
                     "matches_key": match is not None})
    return rows


def _signatures(name: str, rdtype: str, data: Any, sigs: Any, dnskeys: Any, zone: str,
                now: datetime) -> list[dict[str, Any]]:
    """Each RRSIG over ``data``: its window, its key, and whether it verifies at ``now``."""
    import dns.dnssec
    import dns.exception
    import dns.name
    import dns.rrset

    rows = []
    stamp = now.timestamp()
    for sig in sigs or []:
        row = {"name": name, "type": rdtype, "key_tag": sig.key_tag, "algorithm": int(sig.algorithm),
               "inception": _iso(sig.inception), "expiration": _iso(sig.expiration),
               "days_left": int((sig.expiration - stamp) / 86400)}
        if sig.expiration < stamp:
            row["status"] = "expired"
        elif sig.inception > stamp:
            row["status"] = "not_yet_valid"
        else:
            one = dns.rrset.from_rdata(sigs.name, sigs.ttl, sig)
            try:
                dns.dnssec.validate(data, one, {dns.name.from_text(_fqdn(zone)): dnskeys}, now=stamp)
                row["status"] = "valid"
            except dns.exception.DNSException as exc:  # ValidationFailure, or an algorithm we cannot check
                row["status"] = "bogus" if dnskeys is not None else "no_key"
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


async def _resolver_symptom(q: Question) -> dict[str, Any] | None:
    import dns.flags

    if q.resolver is None:
        return None
    plain = await _ask(q.resolver, _fqdn(q.zone), "SOA", q, recursion=True)
    unchecked = await _ask(q.resolver, _fqdn(q.zone), "SOA", q, recursion=True, cd=True)
    ad = bool(plain.message is not None and plain.message.flags & dns.flags.AD)
    return {
        "server": plain.server,
        "status": plain.status,
        "cd_status": unchecked.status,
        "authenticated": ad,  # the AD bit: the resolver validated the answer (RFC 4035 3.2.3)
        "validation_failure": plain.status == "SERVFAIL" and unchecked.status == "NOERROR",
    }


async def _inspect(q: Question) -> dict[str, Any]:
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    now = q.now or datetime.now(UTC)
    zone = _fqdn(q.zone)
    problems: list[str] = []

    answers = await fanout.gather_bounded([partial(_ask, s, zone, "DNSKEY", q) for s in q.nameservers], 16)
    servers, keysets = [], []
    for asked, outcome in zip(q.nameservers, answers, strict=True):
        data, _ = _rrsets(outcome, "DNSKEY")
        tags = sorted(describe_key(zone, k)["key_tag"] for k in data or [])
        servers.append({"server": str(asked), "status": outcome.status, "key_tags": tags})
        if data is not None:
            keysets.append((asked, data))
    if any(not o.responded for o in answers):
        problems.append(SERVER_UNREACHABLE)
    if len({tuple(s["key_tags"]) for s in servers if s["status"] in ("NOERROR", "NODATA")}) > 1:
        problems.append(SERVERS_DISAGREE)

    server: Address | None = keysets[0][0] if keysets else (q.nameservers[0] if q.nameservers else None)
    dnskeys = keysets[0][1] if keysets else None
    keys = list(dnskeys or [])
    if not keys:
        problems.append(NO_DNSKEY)

    # the DS: what the parent serves, what the operator says the registrar holds, or the resolver's view
    ds_source, ds_records, ds_ttl = "none", [], None
    if q.ds_given:
        import dns.rdata

        ds_source = "given"
        ds_records = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, t) for t in q.ds_given]
    else:
        askable = [(p, False) for p in q.parent] or ([(q.resolver, True)] if q.resolver else [])
        for where, recursive in askable:
            outcome = await _ask(where, zone, "DS", q, recursion=recursive, cd=recursive)
            if outcome.responded:
                data, _ = _rrsets(outcome, "DS")
                ds_source = "parent" if not recursive else "resolver"
                ds_records, ds_ttl = list(data or []), (data.ttl if data is not None else None)
                break
    ds_rows = _ds_rows(zone, ds_records, keys)
    if ds_rows and keys and not any(r["matches_key"] for r in ds_rows):
        problems.append(DS_MATCHES_NO_KEY)
    key_algorithms = {int(k.algorithm) for k in keys}
    if keys and any(r["algorithm"] not in key_algorithms for r in ds_rows):
        problems.append(DS_ALGORITHM_MISSING)

    # the signatures over the DNSKEY RRset, the SOA and the names asked for, at the first server that answered
    signatures: list[dict[str, Any]] = []
    soa_info: dict[str, Any] = {}
    if server is not None:
        targets = [(zone, "DNSKEY"), (zone, "SOA")] + [(_fqdn(n), "A") for n in q.names]
        outcomes = await fanout.gather_bounded([partial(_ask, server, n, t, q) for n, t in targets], 8)
        for (name, rdtype), outcome in zip(targets, outcomes, strict=True):
            data, sigs = _rrsets(outcome, rdtype)
            if data is None:
                continue
            if sigs is None:
                signatures.append({"name": name, "type": rdtype, "status": "unsigned"})
                continue
            signatures += _signatures(name, rdtype, data, sigs, dnskeys, zone, now)
            if rdtype == "SOA":
                soa = data[0]
                soa_info = {"soa_ttl": data.ttl, "negative_ttl": min(data.ttl, int(soa.minimum))}
    for status, code in (("expired", SIGNATURE_EXPIRED), ("not_yet_valid", SIGNATURE_NOT_YET_VALID),
                         ("bogus", SIGNATURE_BOGUS), ("no_key", SIGNATURE_BOGUS), ("unsigned", UNSIGNED)):
        if any(s.get("status") == status for s in signatures) and code not in problems:
            problems.append(code)
    if any(s.get("status") == "valid" and s["days_left"] < SOON_DAYS for s in signatures):
        problems.append(SIGNATURE_EXPIRES_SOON)

    resolver = await _resolver_symptom(q)
    if resolver and resolver["validation_failure"]:
        problems.insert(0, RESOLVER_FAILS)

    described = [describe_key(zone, k) for k in keys]
    return {
        "zone": zone,
        "checked_at": now.isoformat(),
        "servers": servers,
        "dnskeys": described,
        "dnskey_ttl": dnskeys.ttl if dnskeys is not None else None,
        "ds_source": ds_source,
        "ds": ds_rows,
        "ds_ttl": ds_ttl,
        "signatures": signatures,
        "resolver": resolver,
        "problems": _ordered(problems),
        "suggested_ds": [k["ds"] for k in described if "ds" in k],
        **({"soa_ttl": None, "negative_ttl": None} | soa_info),
    }


ORDER = [RESOLVER_FAILS, SERVER_UNREACHABLE, NO_DNSKEY, DS_MATCHES_NO_KEY, DS_ALGORITHM_MISSING, SIGNATURE_EXPIRED,
         SIGNATURE_NOT_YET_VALID, SIGNATURE_BOGUS, UNSIGNED, SERVERS_DISAGREE, SIGNATURE_EXPIRES_SOON]


def _ordered(problems: list[str]) -> list[str]:
    return sorted(dict.fromkeys(problems), key=ORDER.index)


def inspect(question: Question) -> dict[str, Any]:
    """Everything above for one zone, from synchronous code."""
    return fanout.run(lambda: _inspect(question))
