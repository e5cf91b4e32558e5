"""dns.dnssec against real BIND serving zones signed with dnssec-signzone: a whole chain, signatures judged
at another time (``now``), a DS that names no key, an unsigned zone, servers that disagree or do not answer,
and a validating resolver's SERVFAIL-versus-CD."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from actions.dnssec import DnsDnssec, DnsDnssecParams
from tests.lab import free_tcp_udp_port
from tests.lab.bind import BindServer, zone_text
from tests.lab.dnssec import ValidatingResolver, ZoneKeys, require_tools

PARENT, CHILD = "test.", "example.test."


class Zones:
    def __init__(self, tmp: Path, factory: Callable[..., BindServer]) -> None:
        require_tools()
        self.parent_keys = ZoneKeys.generate(tmp / "kp", PARENT)
        self.keys = ZoneKeys.generate(tmp / "kc", CHILD)
        self.other = ZoneKeys.generate(tmp / "ko", CHILD, algorithm="RSASHA256")
        self.child = self.keys.sign(zone_text(CHILD, "www IN A 192.0.2.7\n", ttl=600))
        parent = self.parent_keys.sign(zone_text(
            PARENT, f"example IN NS ns1.example.test.\nns1.example IN A 127.0.0.1\n{self.keys.ds}\n", ttl=3600))
        self.auth = factory({PARENT: parent, CHILD: self.child})
        # a second server for the child, signed with other keys: the new provider after a half-done move
        self.moved = factory({CHILD: self.other.sign(zone_text(CHILD, "www IN A 192.0.2.7\n"))})


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory, bind_module_factory: Callable[..., BindServer]) -> Zones:
    return Zones(tmp_path_factory.mktemp("dnssec"), bind_module_factory)


def check(zones: Zones, **params: Any) -> ActionResult:
    params.setdefault("nameservers", [zones.auth.address])
    params.setdefault("parent", zones.auth.address)
    return DnsDnssec().run(DnsDnssecParams(zone="example.test", names=["www.example.test"], timeout=1, retries=0,
                                           **params), ActionContext())


def test_a_whole_chain(zones: Zones) -> None:
    result = check(zones)
    out = result.output
    assert result.ok and out["secure"] and out["problems"] == [] and out["ds_source"] == "parent"
    assert [r["matches_key"] for r in out["ds"]] == [True] and out["ds_ttl"] == 3600
    assert sorted(k["role"] for k in out["dnskeys"]) == ["KSK", "ZSK"]
    assert {(s["type"], s["status"]) for s in out["signatures"]} == {("DNSKEY", "valid"), ("SOA", "valid"),
                                                                    ("A", "valid")}
    assert out["negative_ttl"] == 60 and out["dnskey_ttl"] == 600
    # the DS to submit is exactly what BIND's dnssec-dsfromkey makes of the KSK
    ours, bind = out["suggested_ds"][0].split(), zones.keys.ds.split()
    assert ours[0] == bind[0] and ours[-4:-1] == bind[-4:-1] and ours[-1].lower() == bind[-1].lower()


def test_signatures_judged_after_they_ended_and_before_they_began(zones: Zones) -> None:
    later = check(zones, now=datetime.now(UTC) + timedelta(days=40))
    assert not later.ok and later.output["problems"] == ["signature_expired"]
    assert all(s["status"] == "expired" and s["days_left"] < 0 for s in later.output["signatures"])
    assert "signatures have EXPIRED" in later.message
    earlier = check(zones, now=datetime.now(UTC) - timedelta(days=2))
    assert earlier.output["problems"] == ["signature_not_yet_valid"]
    soon = check(zones, now=datetime.now(UTC) + timedelta(days=28))
    assert soon.ok and soon.output["problems"] == ["signature_expires_soon"]  # a warning, not a failure


def test_a_ds_that_matches_no_key_and_names_another_algorithm(zones: Zones) -> None:
    stale = zones.other.ds.split(" DS ")[1]  # "tag 8 2 digest", as a registrar's form shows it
    result = check(zones, ds=[stale])
    assert not result.ok and result.output["ds_source"] == "given"
    assert result.output["problems"] == ["ds_matches_no_dnskey", "ds_algorithm_not_signing"]
    assert result.output["ds"][0]["algorithm"] == 8 and not result.output["ds"][0]["matches_key"]


def test_servers_that_disagree_and_one_that_does_not_answer(zones: Zones) -> None:
    dead = f"127.0.0.1:{free_tcp_udp_port('127.0.0.1')}"
    result = check(zones, nameservers=[zones.auth.address, zones.moved.address, dead])
    assert "servers_disagree" in result.output["problems"] and "server_unreachable" in result.output["problems"]
    assert [s["status"] for s in result.output["servers"]] == ["NOERROR", "NOERROR", "TIMEOUT"]


def test_an_unsigned_zone(tmp_path: Path, bind_factory: Callable[..., BindServer]) -> None:
    require_tools()
    plain = bind_factory({CHILD: zone_text(CHILD, "www IN A 192.0.2.7\n")})
    result = check_plain(plain)
    assert not result.ok and result.output["problems"][:1] == ["no_dnskey"]
    assert "unsigned" in result.output["problems"]


def check_plain(server: BindServer) -> ActionResult:
    return DnsDnssec().run(DnsDnssecParams(zone="example.test", nameservers=server.address, timeout=1, retries=0),
                           ActionContext())


def test_the_resolver_validates_a_whole_chain(zones: Zones, tmp_path: Path) -> None:
    resolver = ValidatingResolver(tmp_path / "resolver", zones.auth, zones.parent_keys).start()
    try:
        out = check(zones, resolver=resolver.address).output
    finally:
        resolver.stop()
    assert out["resolver"] == {"server": resolver.address, "status": "NOERROR", "cd_status": "NOERROR",
                               "authenticated": True, "validation_failure": False}


def test_a_rollover_left_half_done_is_a_warning_while_one_ds_matches(zones: Zones) -> None:
    """The new DS is in place and the old algorithm's DS was never removed: validators use the one that works."""
    current, old = (k.ds.split(" DS ")[1] for k in (zones.keys, zones.other))
    result = check(zones, ds=[current, old])
    assert result.ok and result.output["secure"]
    assert result.output["problems"] == ["ds_algorithm_not_signing"]
    assert [r["matches_key"] for r in result.output["ds"]] == [True, False]
