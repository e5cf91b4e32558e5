"""dns.lookup, dns.authoritative and dns.propagation against real BIND 9 servers on loopback; no mocks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from actions.base import ActionContext
from actions.clients.address import Address
from actions.clients.dns import parse_server
from actions.dns import DnsAuthoritative, DnsLookup, DnsPropagation, serial_newer
from actions.registry import BUILTIN, Registry
from engine.errors import ActionError
from tests.lab import free_tcp_udp_port
from tests.lab.bind import BindServer, ipv6_loopback_available, zone_text

ZONE = "example.test."
# Twelve ~190-byte TXT records (~2.3 kB): over the 1232-byte UDP limit, so the answer comes back truncated.
BIG_TXT = "".join(f'big IN TXT "{i:02d}-' + "x" * 180 + '"\n' for i in range(12))
RECORDS = f"""
@        IN NS    ns2.example.test.
ns2      IN A     127.0.0.2
www      IN A     192.0.2.10
www      IN AAAA  2001:db8::10
alias    IN CNAME www
@        IN MX    10 mail
mail     IN A     192.0.2.25
@        IN TXT   "v=spf1 -all"
@        IN CAA   0 issue "letsencrypt.org"
_sip._tcp IN SRV  10 5 5060 sip
sip      IN A     192.0.2.50
{BIG_TXT}"""
REVERSE = "2.0.192.in-addr.arpa."
REVERSE_TEXT = zone_text(REVERSE, "10 IN PTR www.example.test.")


def ServerAddress(host: str, port: int = 53) -> Address:  # noqa: N802 - reads like the address it builds
    return Address(host, port)


@pytest.fixture(scope="module")
def lab(bind_module_factory: Callable[..., BindServer]) -> dict[str, BindServer]:
    """primary (serial 10, also on ::1 if possible), its real secondary, a stale primary and a lame server."""
    primary = bind_module_factory(
        {ZONE: zone_text(ZONE, RECORDS, serial=10), REVERSE: REVERSE_TEXT, "broken.test.": "not a zone\n"},
        broken_zones=["broken.test."],
        ipv6=ipv6_loopback_available(),
    )
    secondary = bind_module_factory({ZONE: ""}, secondary_of=primary)
    stale = bind_module_factory({ZONE: zone_text(ZONE, RECORDS.replace("192.0.2.10", "192.0.2.9"), serial=9)})
    lame = bind_module_factory({"other.test.": zone_text("other.test.", "")})
    return {"primary": primary, "secondary": secondary, "stale": stale, "lame": lame}


@pytest.fixture
def dead() -> str:
    """A loopback address where nothing answers DNS."""
    return f"127.0.0.1:{free_tcp_udp_port()}"


def lookup(server: str, name: str, rdtype: str = "A", ctx: ActionContext | None = None, **kw: Any) -> Any:
    action = DnsLookup()
    return action.run(action.Params(name=name, type=rdtype, server=server, **kw), ctx or ActionContext())


# -- dns.lookup ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("www.example.test", "A", ["192.0.2.10"]),
        ("www.example.test", "AAAA", ["2001:db8::10"]),
        ("alias.example.test", "CNAME", ["www.example.test."]),
        ("example.test", "MX", ["10 mail.example.test."]),
        ("example.test", "NS", ["ns1.example.test.", "ns2.example.test."]),
        ("example.test", "TXT", ["v=spf1 -all"]),
        ("example.test", "CAA", ['0 issue "letsencrypt.org"']),
        ("_sip._tcp.example.test", "SRV", ["10 5 5060 sip.example.test."]),
        ("10.2.0.192.in-addr.arpa", "PTR", ["www.example.test."]),
    ],
)
def test_lookup_each_type(lab: dict[str, BindServer], name: str, rdtype: str, expected: list[str]) -> None:
    result = lookup(lab["primary"].address, name, rdtype)
    out = result.output
    assert result.ok, result.message
    assert (out["status"], sorted(out["answers"]), out["ttl"]) == ("NOERROR", expected, 300)
    assert out["server"] == lab["primary"].address and out["authoritative"] is True
    assert 0 < out["latency_ms"] < 2000


def test_lookup_soa_carries_the_serial(lab: dict[str, BindServer]) -> None:
    out = lookup(lab["primary"].address, "example.test", "SOA").output
    assert out["answers"][0].split()[2] == "10"


@pytest.mark.parametrize(
    ("name", "rdtype", "status"),
    [
        ("nope.example.test", "A", "NXDOMAIN"),
        ("www.example.test", "TXT", "NODATA"),  # the name exists, the type does not (RFC 2308)
        ("www.broken.test", "A", "SERVFAIL"),  # the zone failed to load
        ("www.elsewhere.test", "A", "REFUSED"),  # not our zone and recursion is off
    ],
)
def test_rcodes_are_distinct_outcomes(
    lab: dict[str, BindServer], name: str, rdtype: str, status: str
) -> None:
    result = lookup(lab["primary"].address, name, rdtype)
    assert result.ok and result.output["status"] == status and result.output["answers"] == []
    assert status in result.message


def test_timeout_is_a_finding_after_every_retry(dead: str) -> None:
    started = time.monotonic()
    result = lookup(dead, "www.example.test", timeout=0.2, retries=2)
    assert not result.ok
    assert (result.output["status"], result.output["attempts"]) == ("TIMEOUT", 3)
    assert "TIMEOUT" in result.message and time.monotonic() - started < 2


def test_step_timeout_caps_the_retries(dead: str) -> None:
    ctx = ActionContext(timeout=0.4)
    started = time.monotonic()
    result = lookup(dead, "www.example.test", ctx=ctx, timeout=2.0, retries=5)
    assert result.output["status"] == "TIMEOUT"
    assert time.monotonic() - started < 1.0


def test_truncated_answer_is_retried_over_tcp(lab: dict[str, BindServer]) -> None:
    out = lookup(lab["primary"].address, "big.example.test", "TXT").output
    assert out["status"] == "NOERROR" and out["transport"] == "tcp"
    assert sorted(a[:3] for a in out["answers"]) == [f"{i:02d}-" for i in range(12)]


def test_tcp_can_be_forced(lab: dict[str, BindServer]) -> None:
    out = lookup(lab["primary"].address, "www.example.test", tcp=True).output
    assert (out["transport"], out["answers"]) == ("tcp", ["192.0.2.10"])


def test_ipv6_server(lab: dict[str, BindServer]) -> None:
    if not lab["primary"].ipv6:
        pytest.skip("no IPv6 loopback here")
    out = lookup(lab["primary"].address6, "www.example.test", "AAAA").output
    assert out["server"] == lab["primary"].address6
    assert (out["status"], out["answers"]) == ("NOERROR", ["2001:db8::10"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ServerAddress("192.0.2.1", 53)),
        ("127.0.0.1:5353", ServerAddress("127.0.0.1", 5353)),
        ("[::1]:53", ServerAddress("::1", 53)),
        ("[2001:db8::1]", ServerAddress("2001:db8::1", 53)),
        ("2001:db8::1", ServerAddress("2001:db8::1", 53)),
        ("ns1.example.com:5300", ServerAddress("ns1.example.com", 5300)),
    ],
)
def test_parse_server(text: str, expected: ServerAddress) -> None:
    assert parse_server(text) == expected
    assert parse_server(str(expected)) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:dns", "[::1", "[::1]x", ":53", "h:70000"])
def test_bad_server_is_a_clear_error(text: str) -> None:
    with pytest.raises(ActionError, match="ip:port"):
        lookup(text, "www.example.test")


# -- dns.authoritative --------------------------------------------------------------------------------------


def authoritative(ctx: ActionContext | None = None, **kw: Any) -> Any:
    action = DnsAuthoritative()
    params = action.Params(zone="example.test", timeout=0.3, retries=0, **kw)
    return action.run(params, ctx or ActionContext())


def test_primary_and_secondary_agree(lab: dict[str, BindServer]) -> None:
    servers = [lab["primary"].address, lab["secondary"].address]
    result = authoritative(name="www.example.test", type="A", nameservers=servers)
    out = result.output
    assert result.ok and out["consistent"], result.message
    assert (out["serials"], out["latest_serial"], out["lagging"]) == ([10], 10, [])
    assert out["answer_sets"] == [{"status": "NOERROR", "answers": ["192.0.2.10"], "servers": servers}]
    assert "agree" in result.message


def test_disagreement_lag_silence_and_lameness_are_findings(lab: dict[str, BindServer], dead: str) -> None:
    servers = [lab["primary"].address, lab["stale"].address, dead, lab["lame"].address]
    result = authoritative(name="www.example.test", type="A", nameservers=servers)
    out = result.output
    assert result.ok and not out["consistent"]
    assert (out["serials"], out["latest_serial"]) == ([9, 10], 10)
    assert out["lagging"] == [lab["stale"].address]
    assert out["not_answering"] == [dead]
    assert out["lame"] == [lab["lame"].address]
    assert sorted(tuple(s["answers"]) for s in out["answer_sets"]) == [("192.0.2.10",), ("192.0.2.9",)]
    assert lab["stale"].address in result.message and dead in result.message
    # each server's own entry says what is wrong with it, not only the summary
    rows = out["nameservers"]
    assert [r["finding"] for r in rows] == ["ok", "lagging", "not answering", "lame"]
    primary, stale, silent, lame = rows
    assert primary["problem"] is None
    assert "serial 9" in stale["problem"] and "newest serial 10" in stale["problem"]
    assert "TIMEOUT" in silent["problem"]
    assert "lame" in lame["problem"] and "example.test" in lame["problem"]


def test_ns_set_is_found_at_the_parent(lab: dict[str, BindServer]) -> None:
    """NS ns1 (127.0.0.1, answers) and ns2 (127.0.0.2, silent) on the primary's port, addresses from glue."""
    primary = lab["primary"]
    out = authoritative(parent=primary.address, port=primary.port).output
    rows = {r["nameserver"]: r for r in out["nameservers"]}
    assert out["source"] == f"NS via {primary.address}"
    assert rows["ns1.example.test."]["server"] == primary.address
    assert rows["ns1.example.test."]["finding"] == "ok"
    assert rows["ns2.example.test."]["finding"] == "not answering"
    assert out["not_answering"] == [f"127.0.0.2:{primary.port}"]
    # how long a resolver may keep this delegation: the NS set's TTL where it was found (the zone's $TTL here)
    assert out["delegation_ttl"] == 300
    assert authoritative(nameservers=[primary.address]).output["delegation_ttl"] is None  # no parent asked


def test_no_authoritative_servers_found(dead: str) -> None:
    with pytest.raises(ActionError, match="no authoritative servers"):
        authoritative(parent=dead)


def test_serial_arithmetic_wraps() -> None:
    assert serial_newer(11, 10) and not serial_newer(10, 11)
    assert serial_newer(5, 2**32 - 5)  # RFC 1982: a wrapped serial is newer


# -- dns.propagation ----------------------------------------------------------------------------------------


def propagation(servers: list[str], expected: str | list[str], **kw: Any) -> Any:
    action = DnsPropagation()
    params = action.Params(
        name=kw.pop("name", "www.example.test"),
        servers=servers,
        expected=expected,
        timeout=0.3,
        retries=0,
        **kw,
    )
    return action.run(params, ActionContext())


def test_propagation_percent(lab: dict[str, BindServer], dead: str) -> None:
    servers = [lab["primary"].address, lab["secondary"].address, lab["stale"].address, dead]
    out = propagation(servers, "192.0.2.10").output
    assert [r["match"] for r in out["servers"]] == [True, True, False, False]
    assert (out["matching"], out["total"], out["percent"], out["all_match"]) == (2, 4, 50.0, False)
    assert out["not_answering"] == [dead]


def test_propagation_complete(lab: dict[str, BindServer]) -> None:
    out = propagation([lab["primary"].address, lab["secondary"].address], ["192.0.2.10"]).output
    assert out["percent"] == 100 and out["all_match"] is True


def test_propagation_compares_values_not_text(lab: dict[str, BindServer]) -> None:
    servers = [lab["primary"].address]
    assert propagation(servers, "2001:0DB8:0::10", type="AAAA").output["all_match"]
    assert propagation(servers, "v=spf1 -all", name="example.test", type="TXT").output["all_match"]
    assert propagation(servers, "10 MAIL.example.test.", name="example.test", type="MX").output["all_match"]
    assert not propagation(servers, ["192.0.2.10", "192.0.2.11"]).output["all_match"]


def test_propagation_contains(lab: dict[str, BindServer]) -> None:
    out = propagation([lab["primary"].address], "ns1.example.test.", name="example.test", type="NS").output
    assert out["percent"] == 0.0
    out = propagation(
        [lab["primary"].address], "ns1.example.test.", name="example.test", type="NS", match="contains"
    ).output
    assert out["percent"] == 100.0


def test_propagation_asks_concurrently() -> None:
    silent = [f"127.0.0.1:{free_tcp_udp_port()}" for _ in range(8)]
    started = time.monotonic()
    out = propagation(silent, "192.0.2.10").output
    elapsed = time.monotonic() - started
    assert [r["status"] for r in out["servers"]] == ["TIMEOUT"] * 8
    assert elapsed < 1.2, f"8 silent servers x 0.3 s took {elapsed:.2f}s: not concurrent"


def test_propagation_bad_expected_value() -> None:
    with pytest.raises(ActionError, match="not a valid A record"):
        propagation(["127.0.0.1:1"], "not-an-ip")


def test_default_servers_are_public_resolvers_but_overridable() -> None:
    import ipaddress

    params = DnsPropagation.Params(name="x.test", expected="192.0.2.1")
    # Only inspected, never queried: tests talk to loopback alone.
    assert len(params.nameservers) >= 4
    assert all(ipaddress.ip_address(s.rsplit(":", 1)[0] if s.count(":") == 1 else s).is_global
               for s in params.nameservers)


# -- interface ----------------------------------------------------------------------------------------------


def test_importing_the_actions_does_not_import_dnspython() -> None:
    code = (
        "import sys, actions.dns, actions.dns_update; "
        "print([m for m in sys.modules if m == 'dns' or m.startswith('dns.')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_registry_resolves_and_documents_every_argument() -> None:
    # Only the DNS rows: other actions are written in parallel and may not import yet.
    registry = Registry(builtin={k: v for k, v in BUILTIN.items() if k.startswith("dns.")})
    for name, cls in [("dns.lookup", DnsLookup), ("dns.authoritative", DnsAuthoritative)]:
        assert registry.get(name) is cls
    rows = {r["name"]: r for r in registry.describe() if r["name"].startswith("dns.")}
    assert set(rows) == {"dns.lookup", "dns.authoritative", "dns.propagation", "dns.update", "dns.dnssec",
                         "dns.tsig_check"}
    for row in rows.values():
        assert row["summary"]
        assert all(arg["description"] for arg in row["arguments"]), row["name"]
    assert rows["dns.update"]["effect"] == "write" and rows["dns.lookup"]["effect"] == "read"
    assert rows["dns.tsig_check"]["effect"] == "read"  # a signed question: runs in dry-runs, never gated


def test_unknown_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="extra"):
        DnsLookup.Params(name="x.test", sever="127.0.0.1")


def test_a_server_that_is_not_an_address_is_an_error_outcome() -> None:
    from actions.clients.dns import query

    outcome = query(ServerAddress("no-such-host"), "www.example.test", "A", timeout=0.2, retries=0)
    assert outcome.status == "ERROR" and not outcome.responded and outcome.error
