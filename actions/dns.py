"""Read-only DNS actions: ``dns.lookup``, ``dns.authoritative`` and ``dns.propagation``.

Every rcode is an outcome, not an exception: NXDOMAIN, SERVFAIL and NOERROR-without-data (NODATA) are
distinct ``status`` values, and a server that does not answer is a finding (TIMEOUT/ERROR) in the output.
Fan-out (every authoritative server, every resolver) runs concurrently through ``clients.fanout``; every query
goes through ``clients.dns``. The servers to ask are the ``nameservers`` argument in every action (``server``
and ``servers`` are its deprecated old names).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import AliasChoices, Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params
from actions.clients import fanout, tld
from actions.clients.address import Address
from actions.clients.dns import (
    QueryOutcome,
    RecordType,
    Resolver,
    nameserver_texts,
    parse_nameservers,
    parse_rdata,
    parse_server,
    query,
    query_async,
    resolve_host,
    system_nameservers,
)
from engine.errors import ActionError

# Well-known anycast resolvers of four operators, two addresses each: a sensible default for real use.
# Tests must always pass their own ``servers``.
PUBLIC_RESOLVERS = [
    "1.1.1.1",
    "1.0.0.1",  # Cloudflare
    "8.8.8.8",
    "8.8.4.4",  # Google
    "9.9.9.9",
    "149.112.112.112",  # Quad9
    "208.67.222.222",
    "208.67.220.220",  # OpenDNS
]


class _QueryParams(Params):
    timeout: float = Field(2.0, gt=0, description="Seconds to wait for each attempt before retrying.")
    retries: int = Field(2, ge=0, le=10, description="Extra attempts after a timeout (UDP loses packets).")
    tcp: bool = Field(
        False, description="Always use TCP (UDP answers that come back truncated use TCP anyway)."
    )


class DnsLookupParams(_QueryParams):
    name: str = Field(description="The name to look up, e.g. www.example.com.")
    type: RecordType = Field("A", description="The record type to ask for.")
    nameservers: str | list[str] | None = Field(
        None,
        validation_alias=AliasChoices("nameservers", "server"),
        description='Resolvers or servers to ask in order until one answers, "ip", "ip:port" or "[ipv6]:port" '
        "(one or a list); none = the system's resolvers.",
    )


class DnsAuthoritativeParams(_QueryParams):
    zone: str = Field(description="The zone whose authoritative servers are compared, e.g. example.com.")
    name: str | None = Field(None, description="The name to compare across servers; default: the zone apex.")
    type: RecordType = Field("SOA", description="The record type to compare across servers.")
    nameservers: str | list[str] | None = Field(
        None, description='Servers to ask ("ip[:port]" or hostnames, one or a list); default: the zone\'s NS set.'
    )
    parent: str | None = Field(
        None,
        description='Server ("ip[:port]") to ask for the NS set and its addresses; none = system resolver '
        "(or the TLD's servers with via_tld).",
    )
    via_tld: bool = Field(
        False,
        description="Without parent: ask the zone's TLD servers (IANA root zone data shipped with breakglass) "
        "for the delegation, not a caching resolver.",
    )
    port: int = Field(
        53, gt=0, lt=65536, description="Port of the authoritative servers found via NS records."
    )
    concurrency: int = Field(16, ge=1, le=256, description="How many servers are asked at the same time.")


class DnsPropagationParams(_QueryParams):
    name: str = Field(description="The name whose new value should be visible everywhere.")
    type: RecordType = Field("A", description="The record type to check.")
    expected: str | list[str] = Field(
        description="The value(s) every server should return, in zone-file form."
    )
    nameservers: str | list[str] = Field(
        default_factory=lambda: list(PUBLIC_RESOLVERS),
        validation_alias=AliasChoices("nameservers", "servers"),
        description='Resolvers or servers to ask ("ip[:port]", one or a list); default: well-known public '
        "resolvers.",
    )
    match: Literal["exact", "contains"] = Field(
        "exact", description="exact: the answer is exactly the expected set; contains: it includes all of it."
    )
    concurrency: int = Field(32, ge=1, le=256, description="How many servers are asked at the same time.")
    retries: int = Field(1, ge=0, le=10, description="Extra attempts after a timeout (UDP loses packets).")


def _deadline(ctx: ActionContext, worst_case: float) -> float:
    return time.monotonic() + ctx.remaining(worst_case)


# -- dns.lookup ---------------------------------------------------------------------------------------------


class DnsAnswerOutput(Output):
    server: str = Field(description="The resolver or server asked.")
    name: str = Field(description="The name asked for.")
    type: str = Field(description="The record type asked for.")
    status: str = Field(description="NOERROR, NXDOMAIN, SERVFAIL, REFUSED, TIMEOUT or ERROR.")
    answers: list[str] = Field(description="The records answered, as text.")
    ttl: int | None = Field(description="TTL of the answer, in seconds.")
    latency_ms: float = Field(description="How long the answer took.")
    authoritative: bool = Field(description="True when the server answered with authority (AA bit).")
    transport: str = Field(description="udp or tcp.")
    attempts: int = Field(description="Queries sent, retries included.")
    error: str = Field("", description="What went wrong, when no answer came.")


class DnsLookup(Action[DnsLookupParams]):
    name = "dns.lookup"
    summary = "Look up one name and type at a resolver or server: answers, TTL, rcode, latency."
    effect = Effect.READ
    Output = DnsAnswerOutput

    def run(self, params: DnsLookupParams, ctx: ActionContext) -> ActionResult:
        resolver = Resolver.of(params.nameservers, timeout=params.timeout, retries=params.retries, tcp=params.tcp)
        outcome = resolver.ask(params.name, params.type, _deadline(ctx, resolver.budget()))
        message = _describe(outcome) + params.deprecation_note()
        return ActionResult(output=outcome.to_dict(), ok=outcome.responded, message=message)


def _describe(outcome: QueryOutcome) -> str:
    where = f"{outcome.name} {outcome.type} at {outcome.server}"
    if not outcome.responded:
        return f"{where}: {outcome.status} after {outcome.attempts} attempt(s) ({outcome.error})"
    shown = ", ".join(outcome.answers[:5]) + (" …" if len(outcome.answers) > 5 else "")
    detail = f" {shown} (ttl {outcome.ttl})" if outcome.answers else ""
    return f"{where}: {outcome.status}{detail} in {outcome.latency_ms} ms"


# -- dns.authoritative --------------------------------------------------------------------------------------


def serial_newer(a: int, b: int) -> bool:
    """Whether serial ``a`` is newer than ``b`` under sequence-space arithmetic (RFC 1982 section 3.2)."""
    return (a < b and b - a > 2**31) or (a > b and a - b < 2**31)


class DnsAuthoritativeOutput(Output):
    zone: str = Field(description="The zone checked.")
    name: str = Field(description="The name asked for.")
    type: str = Field(description="The record type asked for.")
    source: str = Field(description="Where the list of authoritative servers came from.")
    nameservers: list[dict[str, Any]] = Field(description="Each server's answer: nameserver, server, status, "
                                              "answers, serial, finding, problem.")
    consistent: bool = Field(description="True when every server answered the same records and serial.")
    answering: list[str] = Field(description="Servers that answered.")
    not_answering: list[str] = Field(description="Servers that did not answer.")
    lame: list[str] = Field(description="Servers that answered without authority.")
    serials: list[int] = Field(description="The SOA serials seen.")
    latest_serial: int | None = Field(description="The newest serial seen.")
    lagging: list[str] = Field(description="Servers behind the newest serial.")
    answer_sets: list[dict[str, Any]] = Field(description="Each distinct answer and the servers giving it.")
    delegation_ttl: int | None = Field(None, description="TTL of the NS set as the parent (TLD) served it: how "
                                       "long resolvers may keep the old delegation; null with `nameservers:`.")


class DnsAuthoritative(Action[DnsAuthoritativeParams]):
    name = "dns.authoritative"
    summary = "Ask every authoritative server of a zone directly; report agreement, serial lag, lame servers."
    effect = Effect.READ
    Output = DnsAuthoritativeOutput

    def run(self, params: DnsAuthoritativeParams, ctx: ActionContext) -> ActionResult:
        deadline = _deadline(ctx, params.timeout * (params.retries + 1) * 4)
        source, targets, delegation_ttl = self._targets(params, deadline, ctx)
        if not targets:
            raise ActionError(
                f"found no authoritative servers for {params.zone} via {source}; pass `nameservers:`"
            )
        name = params.name or params.zone
        rows = _mark_lagging(fanout.run(lambda: self._ask_all(params, name, targets, deadline)))
        output = {
            "zone": params.zone,
            "name": name,
            "type": params.type,
            "source": source,
            "nameservers": rows,
            **_agreement(rows),
            "delegation_ttl": delegation_ttl,
        }
        return ActionResult(output=output, ok=bool(output["answering"]), message=_summarise(output))

    @staticmethod
    def _tld_sources(zone: str, ctx: ActionContext) -> list[Address]:
        found = tld.servers_for(zone, ctx.settings.get("tld_servers"))
        if found is None:
            raise ActionError(
                f"breakglass's root zone table has no servers for the TLD of {zone}: pass `parent:` "
                "(one of the TLD's servers, e.g. from `dig NS <tld>`)"
            )
        return parse_nameservers(found[1])

    def _targets(
        self, params: DnsAuthoritativeParams, deadline: float, ctx: ActionContext
    ) -> tuple[str, list[tuple[str, str]], int | None]:
        """(where the list came from, [(label, "ip:port")] for every server to ask, the NS set's TTL there)."""
        texts = nameserver_texts(params.nameservers)
        if texts:
            return "nameservers", [
                (text, str(addr))
                for text, server in zip(texts, parse_nameservers(texts, params.port), strict=True)
                for addr in resolve_host(server) or [server]  # an unresolvable name shows up as an ERROR row
            ], None
        if params.parent:
            sources = parse_nameservers(params.parent)
        elif params.via_tld:
            sources = self._tld_sources(params.zone, ctx)
        else:
            sources = system_nameservers()
        for source in sources:
            found = _ns_addresses(source, params, deadline)
            if found is not None:
                targets, ttl = found
                return f"NS via {source}", targets, ttl
        return "NS lookup (no answer)", [], None

    async def _ask_all(
        self, params: DnsAuthoritativeParams, name: str, targets: list[tuple[str, str]], deadline: float
    ) -> list[dict[str, Any]]:
        def job(label: str, address: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            return lambda: _ask_one(params, name, label, address, deadline)

        return await fanout.gather_bounded([job(label, addr) for label, addr in targets], params.concurrency)


def _ns_addresses(
    source: Address, params: DnsAuthoritativeParams, deadline: float
) -> tuple[list[tuple[str, str]], int | None] | None:
    """The zone's NS names with their addresses (glue first, else asked at ``source``) and the NS set's TTL
    there; None if no answer."""
    import dns.rdatatype

    opts: dict[str, Any] = {"timeout": params.timeout, "retries": params.retries, "deadline": deadline}
    outcome = query(source, params.zone, "NS", **opts)
    if outcome.message is None:
        return None
    reply = outcome.message
    # A parent answers with a referral: the NS set is in the authority section (RFC 1034 4.3.2).
    ns_sets = [rrset for section in (reply.answer, reply.authority) for rrset in section
               if rrset.rdtype == dns.rdatatype.NS]
    ns_names = [str(rd.target) for rrset in ns_sets for rd in rrset]
    glue: dict[str, list[str]] = {}
    for rrset in reply.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(str(rrset.name), []).extend(rd.address for rd in rrset)
    found: list[tuple[str, str]] = []
    for ns in dict.fromkeys(ns_names):
        addresses = glue.get(ns) or [a for t in ("A", "AAAA") for a in query(source, ns, t, **opts).answers]
        # An NS name without an address is kept as a row so it is reported, not silently dropped.
        found.extend((ns, str(Address(a, params.port))) for a in addresses or [ns])
    # The parent's TTL is what a resolver caches the delegation for (172800 s at .com): the old nameservers
    # can be asked that long after a registrar fixes them (RFC 1034 4.3.2, RFC 2181 5.4.1).
    return found, min((rrset.ttl for rrset in ns_sets), default=None)


async def _ask_one(
    params: DnsAuthoritativeParams, name: str, label: str, address: str, deadline: float
) -> dict[str, Any]:
    """Ask one server for the zone's SOA and for name/type, without recursion (we want its own data)."""
    import asyncio  # lazily: listing actions imports this module

    server = parse_server(address, params.port)
    opts: dict[str, Any] = {
        "timeout": params.timeout,
        "retries": params.retries,
        "tcp": params.tcp,
        "recursion": False,
        "deadline": deadline,
    }
    soa, answer = await asyncio.gather(
        query_async(server, params.zone, "SOA", **opts), query_async(server, name, params.type, **opts)
    )
    serial = int(soa.rdatas()[0].serial) if soa.status == "NOERROR" and soa.authoritative else None
    finding, problem = _finding(soa, answer)
    row = {
        "nameserver": label,
        **answer.to_dict(),
        "server": address,
        "serial": serial,
        "finding": finding,
        "problem": problem,
    }
    row["answers"] = sorted(row["answers"])
    return row


def _finding(soa: QueryOutcome, answer: QueryOutcome) -> tuple[str, str | None]:
    """(finding, what is wrong with this server) from its own two answers: not answering | lame | ok.
    The fourth finding, lagging, needs every server's serial: ``_mark_lagging`` sets it."""
    for outcome in (soa, answer):
        if not outcome.responded:
            why = f" ({outcome.error})" if outcome.error else ""
            attempts = f"{outcome.status} after {outcome.attempts} attempt(s){why}"
            return "not answering", f"{outcome.type} query: {attempts}"
    if soa.status != "NOERROR" or not soa.authoritative:
        # RFC 1912 2.8: a lame server is listed for the zone but does not serve it authoritatively.
        got = "without the authoritative (AA) flag" if soa.status == "NOERROR" else f"with {soa.status}"
        return "lame", f"answers the zone's SOA {got}: it does not serve {soa.name} (lame delegation)"
    return "ok", None


def newest_serial(serials: Sequence[int]) -> int | None:
    """The newest of ``serials`` under RFC 1982 arithmetic, None for none."""
    latest = None
    for serial in serials:
        latest = serial if latest is None or serial_newer(serial, latest) else latest
    return latest


def _mark_lagging(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose authoritative serial is behind the newest any server answered, marked as lagging."""
    latest = newest_serial([r["serial"] for r in rows if r["finding"] == "ok"])
    for r in rows:
        if r["finding"] == "ok" and r["serial"] != latest:
            r["finding"] = "lagging"
            r["problem"] = f"serial {r['serial']} is behind the newest serial {latest}: not yet updated"
    return rows


def _agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in rows if r["finding"] in ("ok", "lagging")]  # answered authoritatively
    serials = sorted({r["serial"] for r in good})
    latest = newest_serial(serials)
    sets: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for r in good:
        sets.setdefault((r["status"], tuple(r["answers"])), []).append(r["server"])
    return {
        "consistent": len(good) == len(rows) and len(serials) == 1 and len(sets) == 1,
        "answering": [r["server"] for r in rows if r["finding"] != "not answering"],
        "not_answering": [r["server"] for r in rows if r["finding"] == "not answering"],
        "lame": [r["server"] for r in rows if r["finding"] == "lame"],
        "serials": serials,
        "latest_serial": latest,
        "lagging": [r["server"] for r in rows if r["finding"] == "lagging"],
        "answer_sets": [{"status": s, "answers": list(a), "servers": who} for (s, a), who in sets.items()],
    }


def _summarise(out: dict[str, Any]) -> str:
    total = len(out["nameservers"])
    if out["consistent"]:
        return f"{out['zone']}: all {total} servers agree (serial {out['latest_serial']})"
    parts = [f"{out['zone']}: {total} servers, {len(out['answer_sets'])} distinct answer(s)"]
    for key in ("lagging", "not_answering", "lame"):
        if out[key]:
            parts.append(f"{key.replace('_', ' ')}: {', '.join(out[key])}")
    if len(out["serials"]) > 1:
        parts.append(f"serials {out['serials']}")
    return "; ".join(parts)


# -- dns.propagation ----------------------------------------------------------------------------------------


class DnsPropagationOutput(Output):
    name: str = Field(description="The name asked for.")
    type: str = Field(description="The record type asked for.")
    expected: list[str] = Field(description="The values expected.")
    match: str = Field(description="How answers were compared with the expected values.")
    servers: list[dict[str, Any]] = Field(description="Each resolver's answer (as dns.lookup's) and its match.")
    matching: int = Field(description="Resolvers whose answer matched.")
    total: int = Field(description="Resolvers asked.")
    percent: float = Field(description="Share of resolvers that matched, 0 to 100.")
    all_match: bool = Field(description="True when every resolver matched.")
    not_answering: list[str] = Field(description="Resolvers that timed out or failed.")
    elapsed_ms: float = Field(description="How long the whole check took.")


class DnsPropagation(Action[DnsPropagationParams]):
    name = "dns.propagation"
    summary = "Ask many resolvers at once whether a name returns the expected value; report a percentage."
    effect = Effect.READ
    Output = DnsPropagationOutput

    def run(self, params: DnsPropagationParams, ctx: ActionContext) -> ActionResult:
        expected_texts = [params.expected] if isinstance(params.expected, str) else list(params.expected)
        expected = self._expected(params.type, expected_texts)
        servers = parse_nameservers(params.nameservers)
        rounds = -(-len(servers) // params.concurrency)
        deadline = _deadline(ctx, params.timeout * (params.retries + 1) * rounds)
        started = time.monotonic()
        outcomes = fanout.run(lambda: self._ask_all(params, servers, deadline))
        rows = [{**o.to_dict(), "match": _matches(o, expected, params.match)} for o in outcomes]
        matching = sum(r["match"] for r in rows)
        percent = round(100.0 * matching / len(rows), 1) if rows else 0.0
        output = {
            "name": params.name,
            "type": params.type,
            "expected": expected_texts,
            "match": params.match,
            "servers": rows,
            "matching": matching,
            "total": len(rows),
            "percent": percent,
            "all_match": bool(rows) and matching == len(rows),
            "not_answering": [r["server"] for r in rows if r["status"] in ("TIMEOUT", "ERROR")],
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        }
        shown = ", ".join(expected_texts)
        message = f"{params.name} {params.type}: {matching}/{len(rows)} servers ({percent}%) return {shown}"
        return ActionResult(output=output, ok=True, message=message + params.deprecation_note())

    @staticmethod
    def _expected(rdtype: str, texts: list[str]) -> set[Any]:
        try:
            return {parse_rdata(rdtype, text) for text in texts}
        except Exception as exc:  # dnspython raises several syntax errors; all mean the same to the author
            raise ActionError(f"expected value {texts!r} is not a valid {rdtype} record: {exc}") from None

    @staticmethod
    async def _ask_all(
        params: DnsPropagationParams, servers: list[Address], deadline: float
    ) -> list[QueryOutcome]:
        def job(server: Address) -> Callable[[], Awaitable[QueryOutcome]]:
            return lambda: query_async(
                server,
                params.name,
                params.type,
                timeout=params.timeout,
                retries=params.retries,
                tcp=params.tcp,
                deadline=deadline,
            )

        return await fanout.gather_bounded([job(s) for s in servers], params.concurrency)


def _matches(outcome: QueryOutcome, expected: set[Any], how: str) -> bool:
    """Compare as rdata, not text, so 2001:db8::1 equals 2001:0db8:0::1 and name case does not matter."""
    got = set(outcome.rdatas())
    return got == expected if how == "exact" else expected <= got
