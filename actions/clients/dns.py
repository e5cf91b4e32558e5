"""The DNS client every action uses: server addresses, one query with timeouts, retries and TCP fallback, and a
stub ``Resolver`` over the ``nameservers`` argument (servers tried in order, like a stub resolver).

dnspython is imported inside functions so that importing this module stays cheap: listing actions imports
every action module.

A query never raises for what the world does: NXDOMAIN, SERVFAIL, an empty answer, a timeout or a refused TCP
connection all come back as a ``QueryOutcome`` whose ``status`` says which. Callers that want records, not
outcomes (SPF, MX lookups) use ``Resolver.records``, where a failure is a ``DnsFailure``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from actions.clients import fanout
from actions.clients.address import FORMS, Address, parse_address
from engine.errors import ActionError

DNS_PORT = 53

RecordType = Literal[
    "A",
    "AAAA",
    "CNAME",
    "MX",
    "NS",
    "TXT",
    "SOA",
    "PTR",
    "CAA",
    "SRV",
    "NAPTR",
    "TLSA",
    "DS",
    "HTTPS",
    "SVCB",
]

# Status values beyond rcodes: NODATA is NOERROR with nothing of the asked type (RFC 2308 section 2.2);
# TIMEOUT and ERROR mean no usable response arrived at all.
NODATA = "NODATA"
TIMEOUT = "TIMEOUT"
ERROR = "ERROR"

# An EDNS buffer that avoids IP fragmentation (DNS Flag Day 2020); bigger answers come back truncated and are
# retried over TCP, as RFC 1035 section 4.2.1 and RFC 7766 require.
EDNS_PAYLOAD = 1232


def parse_server(text: str, default_port: int = DNS_PORT) -> Address:
    """A DNS server address; ValueError says what is wrong with it."""
    return parse_address(text, default_port)


def resolve_host(server: Address) -> list[Address]:
    """Turn a hostname into its addresses with the system resolver; IP literals are returned as they are."""
    import socket

    if server.is_ip:
        return [server]
    try:
        infos = socket.getaddrinfo(server.host, server.port, proto=socket.IPPROTO_UDP)
    except OSError:
        return []
    hosts = dict.fromkeys(str(info[4][0]) for info in infos)
    return [Address(h, server.port) for h in hosts]


def system_nameservers() -> list[Address]:
    """The resolvers the system uses (/etc/resolv.conf), in order."""
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return []
    return [Address(str(ns), int(resolver.port)) for ns in resolver.nameservers]


@dataclass(frozen=True)
class QueryOutcome:
    """The result of asking one server one question; ``message`` is the raw reply, kept out of ``to_dict``."""

    server: str
    name: str
    type: str
    status: str  # NOERROR | NODATA | NXDOMAIN | SERVFAIL | REFUSED | other rcode | TIMEOUT | ERROR
    answers: list[str] = field(default_factory=list)
    ttl: int | None = None
    latency_ms: float = 0.0
    authoritative: bool = False
    transport: str = "udp"
    attempts: int = 0
    error: str | None = None
    message: Any = field(default=None, repr=False, compare=False)

    @property
    def responded(self) -> bool:
        return self.status not in (TIMEOUT, ERROR)

    def rdatas(self) -> list[Any]:
        """The answer rdata objects of the asked type (for exact comparisons), [] without a reply."""
        rdtype = _rdtype(self.type)
        return [
            rd
            for rrset in (self.message.answer if self.message else [])
            if rrset.rdtype == rdtype
            for rd in rrset
        ]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "server": self.server,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "answers": self.answers,
            "ttl": self.ttl,
            "latency_ms": self.latency_ms,
            "authoritative": self.authoritative,
            "transport": self.transport,
            "attempts": self.attempts,
        }
        if self.error:
            out["error"] = self.error
        return out


def answer_text(rdata: Any) -> str:
    """An rdata as text; TXT strings are joined and unquoted, as SPF and DMARC read them (RFC 7208 3.3)."""
    import dns.rdatatype

    if rdata.rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    return str(rdata.to_text())


def parse_rdata(rdtype: str, text: str) -> Any:
    """Parse one record value in zone-file form; a TXT value without quotes is taken as one literal string."""
    import dns.name
    import dns.rdata
    import dns.rdataclass

    if rdtype.upper() == "TXT" and not text.lstrip().startswith('"'):
        text = _quote_txt(text)
    return dns.rdata.from_text(
        dns.rdataclass.IN, rdtype.upper(), text, origin=dns.name.root, relativize=False
    )


def _quote_txt(value: str) -> str:
    # A TXT character-string holds at most 255 octets (RFC 1035 3.3.14): long values are split, which SPF and
    # DKIM readers join back (RFC 7208 3.3).
    raw = value.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    escaped = (c.decode("utf-8", "surrogateescape").replace("\\", "\\\\").replace('"', '\\"') for c in chunks)
    return " ".join(f'"{c}"' for c in escaped)


def _rdtype(name: str) -> Any:
    import dns.rdatatype

    return dns.rdatatype.from_text(name)


def make_query(name: str, rdtype: str, *, recursion: bool = True, dnssec: bool = False,
               checking_disabled: bool = False) -> Any:
    """A query with EDNS0; RD cleared when asking an authoritative server directly (RFC 1035 4.1.1); with
    ``dnssec`` the DO bit asks for signatures (RFC 4035 3.2.1), with ``checking_disabled`` the CD bit tells a
    validating resolver to answer even what fails validation (RFC 4035 3.2.2)."""
    import dns.flags
    import dns.message

    msg = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD, want_dnssec=dnssec)
    if not recursion:
        msg.flags &= ~dns.flags.RD
    if checking_disabled:
        msg.flags |= dns.flags.CD
    return msg


def interpret(server: Address, name: str, rdtype: str, reply: Any, **facts: Any) -> QueryOutcome:
    """Turn a reply into an outcome: the rcode, or NODATA when NOERROR carries nothing of the asked type."""
    import dns.flags
    import dns.rcode

    wanted = _rdtype(rdtype)
    rrsets = [r for r in reply.answer if r.rdtype == wanted]
    status = dns.rcode.to_text(reply.rcode())
    if status == "NOERROR" and not rrsets:
        status = NODATA
    return QueryOutcome(
        server=str(server),
        name=name,
        type=rdtype,
        status=status,
        answers=[answer_text(rd) for rrset in rrsets for rd in rrset],
        ttl=min((r.ttl for r in rrsets), default=None),
        authoritative=bool(reply.flags & dns.flags.AA),
        message=reply,
        **facts,
    )


def valid_name(name: str) -> bool:
    """Whether ``name`` can exist in DNS (labels of 1 to 63 octets, 255 in all: RFC 1035 2.3.4)."""
    import dns.exception
    import dns.name

    try:
        dns.name.from_text(name)
    except (dns.exception.DNSException, ValueError):
        return False
    return True


def _failure(server: Address, name: str, rdtype: str, exc: BaseException | None, **facts: Any) -> QueryOutcome:
    import dns.exception

    if exc is None or isinstance(exc, dns.exception.Timeout):
        return QueryOutcome(str(server), name, rdtype, TIMEOUT, error="no response before the timeout", **facts)
    return QueryOutcome(str(server), name, rdtype, ERROR, error=f"{type(exc).__name__}: {exc}", **facts)


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


async def query_async(
    server: Address,
    name: str,
    rdtype: str,
    *,
    timeout: float = 2.0,
    retries: int = 2,
    tcp: bool = False,
    recursion: bool = True,
    dnssec: bool = False,
    checking_disabled: bool = False,
    deadline: float | None = None,
) -> QueryOutcome:
    """Ask ``server`` over UDP (TCP if the answer is truncated, or always with ``tcp``), retrying on
    timeouts; no attempt runs past ``deadline``."""
    import dns.asyncquery
    import dns.exception

    started, error, attempts = time.monotonic(), None, 0
    try:
        msg = make_query(name, rdtype, recursion=recursion, dnssec=dnssec, checking_disabled=checking_disabled)
    except (dns.exception.DNSException, ValueError) as exc:  # an empty or over-long label: not askable
        return QueryOutcome(str(server), name, rdtype, ERROR, error=f"not a valid DNS name: {exc}")
    for _ in range(retries + 1):
        per_try = timeout if deadline is None else min(timeout, deadline - time.monotonic())
        if per_try <= 0.01:
            break
        attempts += 1
        try:
            if tcp:
                reply = await dns.asyncquery.tcp(msg, server.host, timeout=per_try, port=server.port)
                used_tcp = True
            else:
                reply, used_tcp = await dns.asyncquery.udp_with_fallback(
                    msg, server.host, timeout=per_try, port=server.port
                )
        except (dns.exception.DNSException, OSError, ValueError) as exc:  # ValueError: not an IP address
            error = exc
            continue
        transport = "tcp" if used_tcp else "udp"
        return interpret(server, name, rdtype, reply, latency_ms=_elapsed_ms(started), transport=transport,
                         attempts=attempts)
    return _failure(server, name, rdtype, error, latency_ms=_elapsed_ms(started), attempts=attempts)


def query(server: Address, name: str, rdtype: str, **options: Any) -> QueryOutcome:
    """``query_async`` from synchronous code (one question, one server)."""
    return fanout.run(lambda: query_async(server, name, rdtype, **options))


# -- TSIG (RFC 8945): the key dns.update signs with, and a harmless signed question to prove it works -----


@dataclass(frozen=True)
class TsigCredentials:
    """A TSIG key (RFC 8945). ``__repr__`` hides the secret so it never lands in a log or a traceback."""

    name: str
    algorithm: str
    secret: str

    def __repr__(self) -> str:
        return f"TsigCredentials(name={self.name!r}, algorithm={self.algorithm!r}, secret=***)"

    def keyring(self) -> dict[Any, Any]:
        import binascii

        import dns.name
        import dns.tsig

        try:
            key = dns.tsig.Key(self.name, self.secret, self.algorithm)
        except (binascii.Error, ValueError):
            raise ActionError(f"tsig_secret for key '{self.name}' is not valid base64") from None
        return {dns.name.from_text(self.name): key}


def tsig_error_name(exc: BaseException) -> str:
    """The TSIG error a server answered with (RFC 8945 section 5.2), as its name: BADKEY, BADSIG, BADTIME."""
    import dns.tsig

    for cls, text in ((dns.tsig.PeerBadKey, "BADKEY"), (dns.tsig.PeerBadSignature, "BADSIG"),
                      (dns.tsig.PeerBadTime, "BADTIME"), (dns.tsig.PeerBadTruncation, "BADTRUNC")):
        if isinstance(exc, cls):
            return text
    return type(exc).__name__


@dataclass(frozen=True)
class SignedAnswer:
    """What a server said to a TSIG-signed SOA query: ``tsig`` is ok, BADKEY, BADSIG, BADTIME, unsigned (the
    reply carried no valid signature) or none (no reply came); ``status`` the rcode, TIMEOUT or ERROR."""

    server: str
    zone: str
    status: str
    tsig: str
    authoritative: bool = False
    serial: int | None = None
    latency_ms: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "zone": self.zone, "status": self.status, "tsig": self.tsig,
                "authoritative": self.authoritative, "serial": self.serial, "latency_ms": self.latency_ms,
                **({"error": self.error} if self.error else {})}


def signed_soa_query(server: Address, zone: str, tsig: TsigCredentials, *, timeout: float = 5.0) -> SignedAnswer:
    """Ask ``server`` for the zone's SOA with a query signed by ``tsig``: a server that knows the key answers
    and signs its reply, one that does not answers NOTAUTH with BADKEY or BADSIG (RFC 8945 section 5.2). Over
    TCP, as dns.update sends its changes: the check goes the same way the change will."""
    import dns.exception
    import dns.flags
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import dns.tsig

    started = time.monotonic()
    try:
        msg = make_query(zone, "SOA", recursion=False)
        msg.use_tsig(tsig.keyring(), keyname=tsig.name, algorithm=tsig.algorithm)
    except (dns.exception.DNSException, ValueError) as exc:
        return SignedAnswer(str(server), zone, ERROR, "none", error=f"cannot sign the query: {exc}")
    try:
        reply = dns.query.tcp(msg, server.host, port=server.port, timeout=timeout)
    except dns.tsig.PeerError as exc:
        # The server's reply says the key failed; dnspython raises on it instead of returning the NOTAUTH.
        return SignedAnswer(str(server), zone, "NOTAUTH", tsig_error_name(exc), latency_ms=_elapsed_ms(started))
    except dns.exception.Timeout:
        return SignedAnswer(str(server), zone, TIMEOUT, "none", latency_ms=_elapsed_ms(started),
                            error="no response before the timeout")
    except (dns.exception.DNSException, OSError) as exc:
        return SignedAnswer(str(server), zone, ERROR, "none", latency_ms=_elapsed_ms(started),
                            error=f"{type(exc).__name__}: {exc}")
    soa = [rd for rrset in reply.answer if rrset.rdtype == dns.rdatatype.SOA for rd in rrset]
    return SignedAnswer(
        server=str(server),
        zone=zone,
        status=dns.rcode.to_text(reply.rcode()),
        # dnspython verified the reply's signature against our key while parsing it; no signature at all is a
        # server that ignored the key (an unsigned answer proves nothing about the key).
        tsig="ok" if reply.had_tsig else "unsigned",
        authoritative=bool(reply.flags & dns.flags.AA),
        serial=int(soa[0].serial) if soa else None,
        latency_ms=_elapsed_ms(started),
    )


# -- the stub resolver behind the ``nameservers`` argument ------------------------------------------------


class DnsFailure(ActionError):
    """No usable answer to one question: every server timed out, failed (SERVFAIL, REFUSED) or was unreachable."""

    def __init__(self, outcome: QueryOutcome) -> None:
        self.outcome = outcome
        detail = outcome.error if outcome.status in (TIMEOUT, ERROR) else f"{outcome.status} from {outcome.server}"
        super().__init__(f"DNS {outcome.type} {outcome.name}: {detail}")


def nameserver_texts(value: str | Sequence[str] | None) -> list[str] | None:
    """The ``nameservers`` argument as a list: one address or a list of them; None stays None."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def parse_nameservers(value: str | Sequence[str], default_port: int = DNS_PORT) -> list[Address]:
    """Addresses from the ``nameservers`` argument; an address that does not parse is an ``ActionError``."""
    try:
        return [parse_server(text, default_port) for text in nameserver_texts(value) or []]
    except ValueError as exc:
        raise ActionError(f"{exc}; write nameservers as {FORMS}") from None


@dataclass(frozen=True)
class Resolver:
    """A stub resolver (RFC 1034 5.3.1): asks its servers in order until one responds, recursion desired.

    ``timeout`` is per attempt and ``retries`` the extra attempts per server; a whole question never runs past
    ``timeout * (retries + 1)`` per server, nor past the deadline a caller passes.
    """

    servers: tuple[Address, ...]
    timeout: float = 2.0
    retries: int = 0
    tcp: bool = False

    @classmethod
    def of(cls, nameservers: str | Sequence[str] | None, *, timeout: float, retries: int = 0,
           tcp: bool = False) -> Resolver:
        """A resolver for the ``nameservers`` argument (hostnames resolved once, here); None means the system's
        resolvers from /etc/resolv.conf. No server to ask is an ``ActionError``."""
        if nameservers is None:
            servers = system_nameservers()
        else:
            servers = [a for s in parse_nameservers(nameservers) for a in resolve_host(s) or [s]]
        if not servers:
            raise ActionError("no DNS server to ask: /etc/resolv.conf names none; pass `nameservers:`")
        return cls(tuple(servers), timeout, retries, tcp)

    def budget(self) -> float:
        """The longest one question may take across every server."""
        return self.timeout * (self.retries + 1) * len(self.servers)

    async def ask_async(self, name: str, rdtype: str, deadline: float | None = None) -> QueryOutcome:
        """The first responding server's outcome, or the last failure when none responded."""
        deadline = time.monotonic() + self.budget() if deadline is None else deadline
        outcome = QueryOutcome("", name, rdtype, TIMEOUT, error="no time left to ask")
        for server in self.servers:
            outcome = await query_async(server, name, rdtype, timeout=self.timeout, retries=self.retries,
                                        tcp=self.tcp, deadline=deadline)
            if outcome.responded:
                break
        return outcome

    def ask(self, name: str, rdtype: str, deadline: float | None = None) -> QueryOutcome:
        """``ask_async`` from synchronous code."""
        return fanout.run(lambda: self.ask_async(name, rdtype, deadline))

    def records(self, name: str, rdtype: str) -> list[Any]:
        """The rdatas of ``name``/``rdtype``; [] when the name or the type does not exist, or the name cannot
        exist in DNS at all; ``DnsFailure`` when no server gave a usable answer."""
        if not valid_name(name):
            return []  # an empty or over-long label: no server can hold it, so nothing is there
        outcome = self.ask(name, rdtype)
        if outcome.status in ("NOERROR", NODATA, "NXDOMAIN"):
            return outcome.rdatas()
        raise DnsFailure(outcome)

    def txt(self, name: str) -> list[bytes]:
        """TXT records at ``name``, each one's strings joined (RFC 7208 3.3)."""
        return [b"".join(r.strings) for r in self.records(name, "TXT")]

    def addresses(self, name: str, version: int) -> list[str]:
        """A (``version`` 4) or AAAA (6) addresses of ``name``."""
        return [r.address for r in self.records(name, "A" if version == 4 else "AAAA")]
