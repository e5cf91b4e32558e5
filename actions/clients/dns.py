"""What the DNS actions share: server addresses, a query with timeouts, retries and TCP fallback, rdata.

Reusable by any action that asks DNS a question (mail checks too). dnspython is imported inside functions so
that importing this module stays cheap: listing and validating runbooks imports every action module.

A query never raises for what the world does: NXDOMAIN, SERVFAIL, an empty answer, a timeout or a refused TCP
connection all come back as a ``QueryOutcome`` whose ``status`` says which.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class ServerAddress:
    """A DNS server as ``host`` (an IP literal or a hostname) and ``port``."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_server(text: str, default_port: int = 53) -> ServerAddress:
    """Parse "192.0.2.1", "192.0.2.1:5353", "::1", "[::1]:53", "ns1.example.com" or "ns1.example.com:53"."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server address {text!r}: expected [ipv6]:port")
        return ServerAddress(host, _port(rest[1:], text) if rest else default_port)
    if text.count(":") > 1:  # a bare IPv6 literal: no port possible without brackets
        return ServerAddress(text, default_port)
    host, sep, port = text.partition(":")
    if not host:
        raise ValueError(f"bad server address {text!r}: no host")
    return ServerAddress(host, _port(port, text) if sep else default_port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in server address {whole!r}")
    return int(text)


def resolve_host(server: ServerAddress) -> list[ServerAddress]:
    """Turn a hostname into its addresses with the system resolver; IP literals are returned as they are."""
    import socket

    if server.is_ip:
        return [server]
    try:
        infos = socket.getaddrinfo(server.host, server.port, proto=socket.IPPROTO_UDP)
    except OSError:
        return []
    hosts = dict.fromkeys(str(info[4][0]) for info in infos)
    return [ServerAddress(h, server.port) for h in hosts]


def system_nameservers() -> list[ServerAddress]:
    """The resolvers the system uses (/etc/resolv.conf), in order."""
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return []
    return [ServerAddress(str(ns), int(resolver.port)) for ns in resolver.nameservers]


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


def make_query(name: str, rdtype: str, *, recursion: bool = True) -> Any:
    """A query with EDNS0; RD cleared when asking an authoritative server directly (RFC 1035 4.1.1)."""
    import dns.flags
    import dns.message

    msg = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    if not recursion:
        msg.flags &= ~dns.flags.RD
    return msg


def interpret(server: ServerAddress, name: str, rdtype: str, reply: Any, **facts: Any) -> QueryOutcome:
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


def _attempt_timeouts(timeout: float, retries: int, deadline: float | None) -> Iterator[float]:
    """Per-attempt timeouts: ``retries + 1`` attempts, none running past ``deadline`` (the step's timeout)."""
    for _ in range(retries + 1):
        left = timeout if deadline is None else min(timeout, deadline - time.monotonic())
        if left <= 0.01:
            return
        yield left


def _failure(
    server: ServerAddress, name: str, rdtype: str, exc: BaseException | None, **facts: Any
) -> QueryOutcome:
    import dns.exception

    if exc is None or isinstance(exc, dns.exception.Timeout):
        return QueryOutcome(
            str(server), name, rdtype, TIMEOUT, error="no response before the timeout", **facts
        )
    return QueryOutcome(str(server), name, rdtype, ERROR, error=f"{type(exc).__name__}: {exc}", **facts)


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def query(
    server: ServerAddress,
    name: str,
    rdtype: str,
    *,
    timeout: float = 2.0,
    retries: int = 2,
    tcp: bool = False,
    recursion: bool = True,
    deadline: float | None = None,
) -> QueryOutcome:
    """Ask ``server`` once over UDP (TCP if truncated, or always with ``tcp``), retrying on timeouts."""
    import dns.exception
    import dns.query

    msg, started, error, attempts = make_query(name, rdtype, recursion=recursion), time.monotonic(), None, 0
    for per_try in _attempt_timeouts(timeout, retries, deadline):
        attempts += 1
        try:
            if tcp:
                reply, used_tcp = dns.query.tcp(msg, server.host, timeout=per_try, port=server.port), True
            else:
                reply, used_tcp = dns.query.udp_with_fallback(
                    msg, server.host, timeout=per_try, port=server.port
                )
        except (dns.exception.DNSException, OSError, ValueError) as exc:  # ValueError: not an IP address
            error = exc
            continue
        return interpret(
            server,
            name,
            rdtype,
            reply,
            latency_ms=_elapsed_ms(started),
            transport="tcp" if used_tcp else "udp",
            attempts=attempts,
        )
    return _failure(server, name, rdtype, error, latency_ms=_elapsed_ms(started), attempts=attempts)


async def query_async(
    server: ServerAddress,
    name: str,
    rdtype: str,
    *,
    timeout: float = 2.0,
    retries: int = 2,
    tcp: bool = False,
    recursion: bool = True,
    deadline: float | None = None,
) -> QueryOutcome:
    """The same as ``query`` on asyncio, for fanning out to many servers at once."""
    import dns.asyncquery
    import dns.exception

    msg, started, error, attempts = make_query(name, rdtype, recursion=recursion), time.monotonic(), None, 0
    for per_try in _attempt_timeouts(timeout, retries, deadline):
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
        return interpret(
            server,
            name,
            rdtype,
            reply,
            latency_ms=_elapsed_ms(started),
            transport="tcp" if used_tcp else "udp",
            attempts=attempts,
        )
    return _failure(server, name, rdtype, error, latency_ms=_elapsed_ms(started), attempts=attempts)
