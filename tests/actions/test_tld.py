"""The delegation check asks the domain's own TLD servers: .jp and .com from the root zone table, on loopback BIND."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from actions.base import ActionContext
from actions.clients import tld
from actions.dns import DnsAuthoritative
from engine.errors import ActionError
from tests.lab.bind import BindServer, zone_text


def test_the_shipped_table_knows_jp_and_com_servers() -> None:
    jp, com = tld.servers_for("example.jp"), tld.servers_for("EXAMPLE.COM.")
    assert jp is not None and jp[0] == "jp" and "203.119.1.1" in jp[1]  # a.dns.jp
    assert com is not None and com[0] == "com" and "192.5.6.30" in com[1]  # a.gtld-servers.net
    assert not set(jp[1]) & set(com[1])
    assert tld.servers_for("shop-example.co.jp") == jp  # co.jp is served by the jp servers themselves
    assert tld.servers_for("example.invalid") is None


def test_an_override_wins_and_the_longest_suffix_is_chosen() -> None:
    overrides = {"jp": ["127.0.0.1:1"], "co.jp": ["127.0.0.1:2"]}
    assert tld.servers_for("shop.co.jp", overrides) == ("co.jp", ["127.0.0.1:2"])
    assert tld.servers_for("shop.jp", overrides) == ("jp", ["127.0.0.1:1"])
    assert tld.servers_for("shop.com", overrides)[0] == "com"  # type: ignore[index]


@pytest.fixture(scope="module")
def tlds(bind_module_factory: Callable[..., BindServer]) -> dict[str, BindServer]:
    """A "jp." and a "com." server, each delegating its domain to the child server (glue 127.0.0.1)."""
    child = bind_module_factory({
        "shop-example.jp.": zone_text("shop-example.jp.", "", serial=7),
        "shop-example.com.": zone_text("shop-example.com.", "", serial=8),
    })
    jp = bind_module_factory({"jp.": zone_text("jp.", "shop-example IN NS ns1.shop-example.jp.\n"
                                                      "ns1.shop-example IN A 127.0.0.1")})
    com = bind_module_factory({"com.": zone_text("com.", "shop-example IN NS ns1.shop-example.com.\n"
                                                        "ns1.shop-example IN A 127.0.0.1")})
    return {"child": child, "jp": jp, "com": com}


def delegation(zone: str, servers: dict[str, BindServer], **kw: Any) -> Any:
    action = DnsAuthoritative()
    settings = {"tld_servers": {"jp": [servers["jp"].address], "com": [servers["com"].address]}}
    params = action.Params(zone=zone, via_tld=True, port=servers["child"].port, timeout=0.5, retries=0, **kw)
    return action.run(params, ActionContext(settings=settings))


@pytest.mark.parametrize(("zone", "tld_name", "serial"), [("shop-example.jp", "jp", 7), ("shop-example.com", "com", 8)])
def test_via_tld_asks_that_tlds_server(tlds: dict[str, BindServer], zone: str, tld_name: str, serial: int) -> None:
    out = delegation(zone, tlds).output
    assert out["source"] == f"NS via {tlds[tld_name].address}"
    assert [r["nameserver"] for r in out["nameservers"]] == [f"ns1.{zone}."]
    assert out["serials"] == [serial] and out["not_answering"] == []


def test_a_tld_nobody_knows_is_an_error_that_says_what_to_pass(tlds: dict[str, BindServer]) -> None:
    with pytest.raises(ActionError, match="no servers for the TLD of shop.example.*pass `parent:`"):
        delegation("shop.example", tlds)
