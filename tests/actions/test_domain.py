"""domain.status against a real RDAP server and a real WHOIS server on loopback (no httpx mocks)."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from actions.clients import epp_status, rdap
from actions.domain import DomainStatus, DomainStatusParams
from actions.domain_audit import ExpiryAuditParams
from tests.lab.rdap import RdapServer, Reply, error_object
from tests.lab.whois import WhoisServer

DATA = Path(__file__).parent / "data" / "rdap"
NOW = datetime(2024, 11, 20, 12, 0, tzinfo=UTC)
REGISTRAR_PUBLIC = "https://rdap.acme-registrar.example/rdap"


def body(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def run(**args: Any) -> ActionResult:
    args.setdefault("backoff", 0.01)
    params = DomainStatusParams(**args)
    return DomainStatus().run(params, ActionContext(settings={"now": NOW}))


@pytest.fixture
def registry(rdap_server: RdapServer, bg_home: Path) -> RdapServer:
    """Verisign-shaped .com answer plus the registrar's answer, both served locally."""
    rdap_server.rewrite = {REGISTRAR_PUBLIC: rdap_server.base + "/registrar"}
    rdap_server.routes["/rdap/domain/shop-example.com"] = Reply(body=body("verisign-com-shop-example.json"))
    rdap_server.routes["/registrar/domain/SHOP-EXAMPLE.COM"] = Reply(
        body=body("registrar-acme-shop-example.json")
    )
    return rdap_server


def test_status_follows_the_registrar_referral_for_the_abuse_contact(registry: RdapServer) -> None:
    result = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/")
    out = result.output
    assert result.ok and out["status"] == "ok" and out["source"] == "rdap"
    assert [s["epp"] for s in out["statuses"]] == [
        "clientDeleteProhibited",
        "clientTransferProhibited",
        "clientUpdateProhibited",
    ]
    assert out["resolves"] is True
    assert out["registrar"] == {
        "name": "Acme Registrar, Inc.",
        "iana_id": "1068",
        "abuse_email": "abuse@acme-registrar.example",  # only in the registrar's answer
        "abuse_phone": "+1.5415550111",  # the voice number, not the fax listed first
    }
    assert out["nameservers"] == ["ns1.shop-example.com", "ns2.shop-example.com", "dns1.p03.nsone.net"]
    assert out["registered"] == "2011-04-18T14:01:55Z"
    assert out["expires"] == "2025-04-18T14:01:55Z"
    assert out["last_changed"] == "2024-03-19T08:12:40Z"
    assert out["days_until_expiry"] == 149
    assert out["dnssec"] == {"delegation_signed": True}
    assert out["locks"]["transfer"] == {"client": True, "server": False}
    assert out["locks"]["registry_lock"] is False
    assert out["registrar_rdap_url"] == registry.base + "/registrar/domain/SHOP-EXAMPLE.COM"
    assert registry.hits("/registrar/domain/SHOP-EXAMPLE.COM") == 1
    assert out["findings"] == []
    json.dumps(out)  # plain data only


def test_status_without_referral_asks_only_the_registry(registry: RdapServer) -> None:
    out = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", follow_referral=False).output
    assert out["registrar"]["abuse_email"] is None
    assert registry.hits("/registrar/domain/SHOP-EXAMPLE.COM") == 0


def test_a_failing_registrar_keeps_the_registry_answer(registry: RdapServer) -> None:
    registry.routes["/registrar/domain/SHOP-EXAMPLE.COM"] = Reply(502, "bad gateway")
    out = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", retries=1).output
    assert out["status"] == "ok" and out["registrar"]["name"] == "Acme Registrar, Inc."
    assert any("registrar RDAP" in f and "server_error" in f for f in out["findings"])


HOLDS = [
    ("client hold", "clientHold", "registrar", "call the registrar's abuse desk"),
    ("server hold", "serverHold", "registry", "only the registry can lift it"),
    ("pending delete", "pendingDelete", "registry", "open for anyone to register"),
    ("redemption period", "redemptionPeriod", "registrar", "can restore it for a fee"),
    ("inactive", "inactive", "registrar", "no nameservers are delegated"),
]


@pytest.mark.parametrize(("value", "code", "lifter", "advice"), HOLDS)
def test_holds_and_deletion_states_do_not_resolve(
    registry: RdapServer, value: str, code: str, lifter: str, advice: str
) -> None:
    answer = body("verisign-com-shop-example.json")
    answer["status"] = [value, "client transfer prohibited"]
    registry.routes["/rdap/domain/shop-example.com"] = Reply(body=answer)
    out = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/").output
    held = out["statuses"][0]
    assert (held["value"], held["epp"], held["lifted_by"], held["risky"]) == (value, code, lifter, True)
    assert out["resolves"] is False
    assert advice in out["findings"][0] and code in out["findings"][0]
    if code in ("clientHold", "redemptionPeriod"):
        assert "abuse@acme-registrar.example" in out["findings"][0]


def test_lapsed_net_domain_in_redemption(rdap_server: RdapServer, bg_home: Path) -> None:
    rdap_server.routes["/rdap/domain/lapsed-example.net"] = Reply(
        body=body("verisign-net-lapsed-example.json")
    )
    out = run(domain="lapsed-example.net", rdap_url=rdap_server.base + "/rdap/", follow_referral=False).output
    assert out["statuses"][0]["epp"] == "redemptionPeriod" and out["resolves"] is False
    assert out["days_until_expiry"] == -51
    assert out["registrar"]["abuse_phone"] == "+1.4805550188"
    assert out["dnssec"] == {"delegation_signed": False}
    assert any("expired 51 days ago" in f for f in out["findings"])


def test_top_level_abuse_entity_and_odd_roles(rdap_server: RdapServer, bg_home: Path) -> None:
    rdap_server.routes["/rdap/domain/legacy-example.org"] = Reply(body=body("registrar-toplevel-abuse.json"))
    out = run(domain="legacy-example.org", rdap_url=rdap_server.base + "/rdap/").output
    assert out["registrar"]["name"] == "Legacy Names GmbH"
    assert out["registrar"]["abuse_email"] == "abuse@legacy-names.example"
    assert out["registrar"]["abuse_phone"] == "+49.3055501234"
    assert out["nameservers"] == ["ns1.legacy-names.example"]
    assert out["registered"] == "2005-08-02T14:16:36Z"  # no zone given: read as UTC
    assert out["statuses"][1]["lifted_by"] == "registry"


# --- errors are findings


def test_not_found_is_an_answer(rdap_server: RdapServer, bg_home: Path) -> None:
    result = run(domain="nobody-registered-this.com", rdap_url=rdap_server.base + "/rdap/")
    assert result.ok and result.output["status"] == "not_found"
    assert "no such domain" in result.output["findings"][0]
    assert rdap_server.hits("/rdap/domain/nobody-registered-this.com") == 1  # a 404 is not retried


def test_429_waits_for_retry_after_then_succeeds(registry: RdapServer) -> None:
    path = "/rdap/domain/shop-example.com"
    registry.routes[path] = [
        Reply(429, error_object(429, "Too Many Requests"), {"Retry-After": "1"}),
        Reply(body=body("verisign-com-shop-example.json")),
    ]
    started = time.monotonic()
    out = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", follow_referral=False).output
    assert out["status"] == "ok" and registry.hits(path) == 2
    assert time.monotonic() - started >= 0.95


def test_429_longer_than_the_cap_is_reported_not_waited(registry: RdapServer) -> None:
    path = "/rdap/domain/shop-example.com"
    registry.routes[path] = Reply(429, error_object(429, "Too Many Requests"), {"Retry-After": "600"})
    started = time.monotonic()
    result = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", max_retry_after=5)
    assert not result.ok and result.output["status"] == "rate_limited"
    assert "Retry-After 600s" in result.output["findings"][0]
    assert time.monotonic() - started < 3 and registry.hits(path) == 1


def test_5xx_is_retried_then_reported(registry: RdapServer) -> None:
    path = "/rdap/domain/shop-example.com"
    registry.routes[path] = Reply(503, "unavailable", content_type="text/plain")
    result = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", retries=2)
    assert result.output["status"] == "server_error" and registry.hits(path) == 3
    assert "HTTP 503 after 3 attempts" in result.output["findings"][0]
    assert "503" in result.message


def test_5xx_then_success(registry: RdapServer) -> None:
    path = "/rdap/domain/shop-example.com"
    registry.routes[path] = [Reply(500, "oops"), Reply(body=body("verisign-com-shop-example.json"))]
    out = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", follow_referral=False).output
    assert out["status"] == "ok" and registry.hits(path) == 2


def test_slow_server_times_out(registry: RdapServer) -> None:
    path = "/rdap/domain/shop-example.com"
    registry.routes[path] = Reply(body=body("verisign-com-shop-example.json"), delay=1.5)
    result = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", timeout=0.3, retries=1)
    assert result.output["status"] == "timeout" and registry.hits(path) == 2
    assert "no answer within 0.3s" in result.output["findings"][0]


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (Reply(body="{\n<html>"), "not a JSON object"),
        (Reply(body=[1, 2]), "not a JSON object"),
        (Reply(body={"objectClassName": "entity", "handle": "X"}), "objectClassName is 'entity'"),
        (Reply(body=error_object(501, "Not Implemented")), "errorCode 501"),
        (Reply(body="x" * 3_000_000), "larger than"),
    ],
)
def test_malformed_answers(registry: RdapServer, reply: Reply, detail: str) -> None:
    registry.routes["/rdap/domain/shop-example.com"] = reply
    result = run(domain="shop-example.com", rdap_url=registry.base + "/rdap/")
    assert not result.ok and result.output["status"] == "malformed"
    assert detail in result.output["findings"][0]


@pytest.mark.parametrize("name", ["malformed.json", "error-ripe.net.json"])
def test_shared_malformed_answers(
    shared_fixtures: Path, rdap_server: RdapServer, bg_home: Path, name: str
) -> None:
    raw = (shared_fixtures / "rdap" / "malformed" / name).read_bytes()
    rdap_server.routes["/rdap/domain/example.com"] = Reply(body=raw)
    out = run(domain="example.com", rdap_url=rdap_server.base + "/rdap/").output
    assert out["status"] == "malformed" and "not a valid RDAP domain object" in out["findings"][0]


def test_unreachable_server(bg_home: Path) -> None:
    from tests.lab import free_port

    out = run(domain="shop-example.com", rdap_url=f"http://127.0.0.1:{free_port()}/", retries=0).output
    assert out["status"] == "unreachable" and "ConnectError" in out["findings"][0]


def test_invalid_name_is_a_finding(bg_home: Path) -> None:
    out = run(domain="bad..name.com", rdap_url="http://127.0.0.1:9/").output
    assert out["status"] == "invalid"


# --- bootstrap (RFC 9224)


def test_shipped_bootstrap_maps_common_tlds(bg_home: Path) -> None:
    boot = rdap.load_bootstrap()
    assert boot.origin == "shipped snapshot"
    assert boot.base_urls("www.shop-example.com") == ("https://rdap.verisign.com/com/v1/",)
    assert boot.base_urls("example.org")[0].startswith("https://")
    assert boot.base_urls("example.de") == ()  # DENIC publishes no RDAP: WHOIS fallback


def test_longest_label_wins_and_https_first() -> None:
    text = json.dumps(
        {
            "services": [
                [["uk"], ["https://uk.example/"]],
                [["co.uk"], ["http://co.example/", "https://co.example/"]],
            ]
        }
    )
    boot = rdap.parse_bootstrap(text, "test")
    assert boot.base_urls("shop.co.uk") == ("https://co.example/", "http://co.example/")
    assert boot.base_urls("shop.org.uk") == ("https://uk.example/",)


@pytest.mark.parametrize(
    ("name", "usable"),
    [
        ("bootstrap-dns_bad_services.json", True),  # one empty entry among good ones: skipped
        ("bootstrap-dns_bad_url.json", True),
        ("bootstrap-dns_empty.json", False),
        ("bootstrap-dns_syntax_error.json", False),
    ],
)
def test_shared_broken_bootstrap_files(shared_fixtures: Path, name: str, usable: bool) -> None:
    text = (shared_fixtures / "rdap" / "malformed" / name).read_text(encoding="utf-8")
    if usable:
        assert rdap.parse_bootstrap(text, name).base_urls("nic.cz")
    else:
        with pytest.raises(rdap.BootstrapError):
            rdap.parse_bootstrap(text, name)


def test_refresh_bootstrap_caches_and_routes_lookups(registry: RdapServer, bg_home: Path) -> None:
    registry.routes["/bootstrap/dns.json"] = Reply(
        body=registry.bootstrap("com"), content_type="application/json"
    )
    out = run(
        domain="shop-example.com", refresh_bootstrap=True, bootstrap_url=registry.base + "/bootstrap/dns.json"
    )
    assert out.output["status"] == "ok" and out.output["rdap_url"].startswith(registry.base)
    cached = bg_home / "cache" / "rdap-dns-bootstrap.json"
    assert cached.is_file() and rdap.load_bootstrap().origin == str(cached)
    again = run(domain="shop-example.com")  # no refresh: the cached copy still points here
    assert again.output["status"] == "ok" and registry.hits("/bootstrap/dns.json") == 1


def test_failed_refresh_falls_back_and_says_so(rdap_server: RdapServer, bg_home: Path) -> None:
    url = rdap_server.base + "/bootstrap/missing.json"
    out = run(domain="example.test", refresh_bootstrap=True, bootstrap_url=url, whois_fallback=False).output
    assert out["status"] == "no_rdap_service"
    assert any("bootstrap refresh failed" in f and "404" in f for f in out["findings"])


# --- WHOIS fallback (RFC 3912)


def test_whois_fallback_for_a_tld_without_rdap(whois_server: WhoisServer, bg_home: Path) -> None:
    whois_server.answers["shop-example.io"] = (DATA / "whois-shop-example.io.txt").read_text(encoding="utf-8")
    result = run(domain="shop-example.io", whois_server=whois_server.address)
    out = result.output
    assert result.ok and out["source"] == "whois" and out["reliability"] == "low"
    assert [s["epp"] for s in out["statuses"]] == ["clientHold", "clientTransferProhibited"]
    assert out["resolves"] is False
    assert out["registrar"] == {
        "name": "Acme Registrar, Inc.",
        "iana_id": "1068",
        "abuse_email": "abuse@acme-registrar.example",
        "abuse_phone": "+1.5415550111",
    }
    assert out["nameservers"] == ["ns1.shop-example.com", "ns2.shop-example.com"]
    assert out["expires"] == "2024-12-05T05:06:07Z" and out["days_until_expiry"] == 14
    assert out["dnssec"] == {"delegation_signed": False}
    assert any("from WHOIS" in f and "not RDAP" in f for f in out["findings"])
    assert whois_server.queries == ["shop-example.io"]


def test_whois_no_match_is_not_found(whois_server: WhoisServer, bg_home: Path) -> None:
    out = run(domain="nothing-here.io", whois_server=whois_server.address).output
    assert out["status"] == "not_found" and out["source"] == "whois"


def test_whois_timeout(whois_server: WhoisServer, bg_home: Path) -> None:
    whois_server.delay = 2.0
    out = run(domain="slow.io", whois_server=whois_server.address, timeout=0.3).output
    assert out["status"] == "timeout" and out["source"] == "whois"


# --- .jp: JPRS's own layout, in ISO-2022-JP for a plain query

JPRS = Path(__file__).parent / "data" / "whois"


def test_jprs_japanese_answer_in_iso_2022_jp(whois_server: WhoisServer, bg_home: Path) -> None:
    text = (JPRS / "jprs-shop-example.jp.txt").read_text(encoding="utf-8")
    whois_server.answers["shop-example.jp"] = text.encode("iso2022_jp")
    result = run(domain="shop-example.jp", whois_server=whois_server.address)
    out = result.output
    assert result.ok and out["source"] == "whois" and out["unknown"] == ["registrar"]
    assert [(s["value"], s["epp"]) for s in out["statuses"]] == [("Active", "ok")]
    assert out["expires"] == "2024-12-30T15:00:00Z" and out["days_until_expiry"] == 40  # 2024/12/31 JST
    assert out["registered"] == "2015-06-02T15:00:00Z"
    assert out["registrant"] == "株式会社ショップ例 / Shop Example K.K."
    assert out["nameservers"] == ["ns1.shop-example.jp", "ns2.shop-example.jp"]
    assert out["dnssec"] == {"delegation_signed": False}
    assert any("unknown" in f and "registrar" in f for f in out["findings"])
    assert "registrar unknown" in result.message and "None" not in result.message


def test_jprs_english_answer_of_a_suspended_domain(whois_server: WhoisServer, bg_home: Path) -> None:
    whois_server.answers["lapsed-example.jp"] = (JPRS / "jprs-lapsed-example.jp-e.txt").read_text(encoding="utf-8")
    result = run(domain="lapsed-example.jp", whois_server=whois_server.address)
    out = result.output
    assert result.ok and out["resolves"] is False
    assert [s["value"] for s in out["statuses"]] == ["Suspended"]
    assert out["unknown"] == ["registrar"] and out["registrant"] is None and out["nameservers"] == []
    assert out["days_until_expiry"] == 40
    assert any("Suspended" in f and "20th" in f for f in out["findings"])
    assert any("unknown (WHOIS answer does not say): registrar" in f for f in out["findings"])


def test_jprs_co_jp_expiry_is_in_the_status_line(whois_server: WhoisServer, bg_home: Path) -> None:
    text = (JPRS / "jprs-shop-example.co.jp.txt").read_text(encoding="utf-8")
    whois_server.answers["shop-example.co.jp"] = text.encode("iso2022_jp")
    out = run(domain="shop-example.co.jp", whois_server=whois_server.address).output
    assert [(s["value"], s["resolves"]) for s in out["statuses"]] == [
        ("Connected", True),
        ("AgentChangeLocked", True),
    ]
    assert out["expires"] == "2025-03-30T15:00:00Z"
    assert out["registrant"] == "株式会社ショップ例 / Shop Example K.K."
    assert out["nameservers"] == ["ns1.shop-example.co.jp", "ns2.shop-example.co.jp"]


def test_an_answer_without_the_fields_says_what_is_unknown(whois_server: WhoisServer, bg_home: Path) -> None:
    whois_server.answers["odd.jp"] = "Domain Information:\n[Domain Name]  ODD.JP\n"
    result = run(domain="odd.jp", whois_server=whois_server.address)
    out = result.output
    assert out["status"] == "ok" and out["unknown"] == ["statuses", "expires", "registrar"]
    assert "status unknown; expiry unknown; registrar unknown" in result.message
    assert any("no expiration date published" in f for f in out["findings"])


# --- the parser against real-world answers nobody on this project wrote


def _shared_answers() -> list[str]:
    root = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "rdap"
    return sorted(
        f"{p.parent.name}/{p.name}" for p in root.glob("*/*.json") if p.parent.name in ("domain", "more")
    )


def _summary(root: Path) -> dict[str, dict[str, str]]:
    lines = (root / "rdap" / "more" / "summary.tsv").read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    return {row.split("\t")[0]: dict(zip(head, row.split("\t"), strict=False)) for row in lines[1:]}


@pytest.mark.parametrize("name", _shared_answers() or ["absent"])
def test_real_world_answers_parse(shared_fixtures: Path, name: str) -> None:
    from actions.domain import summarize

    raw = json.loads((shared_fixtures / "rdap" / name).read_text(encoding="utf-8"))
    out = summarize("x.example", rdap.parse_domain(raw), "rdap", NOW, 30, [])
    json.dumps(out)
    for status in out["statuses"]:
        known = epp_status.normalise(status["value"]) in epp_status.BY_RDAP
        assert known == (status["meaning"] != "not an RFC 8056 status: see the registry's own documentation")
    assert all(n == n.lower() and not n.endswith(".") for n in out["nameservers"])
    row = _summary(shared_fixtures).get(Path(name).name)
    if row is None:
        return
    raw_statuses = [] if row["status"] == "(absent)" else row["status"].split("|")
    assert [s["value"] for s in out["statuses"]] == raw_statuses
    assert all(s["epp"] for s in out["statuses"])  # every status in these files is an RFC 8056 one
    registrar = out["registrar"]
    if row["registrar_fn"]:
        assert registrar["name"] == row["registrar_fn"]
    if row["registrar_iana_id"]:
        assert registrar["iana_id"] == row["registrar_iana_id"]
    if "registrar" in row["entity_roles"].lower():
        assert registrar["name"] or registrar["iana_id"] or row["file"].startswith("rdap_client-nic.cz")
    expected_abuse = row["registrar_nested_abuse_email"] or row["toplevel_abuse_email"] or None
    assert registrar["abuse_email"] == expected_abuse


def test_real_referral_link_is_found(shared_fixtures: Path) -> None:
    raw = json.loads(
        (shared_fixtures / "rdap/domain/verisign-parked-referral.json").read_text(encoding="utf-8")
    )
    assert rdap.referral(raw) == "https://rdap.registrar.eu/v1/domain/THEMARQUETRY.COM"
    parsed = rdap.parse_domain(raw)
    assert parsed["registrar"]["abuse_phone"] == "+31.104482297"
    assert parsed["registrar"]["iana_id"] == "1647"


# --- the status table, params and the action's footprint


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("client hold", "clientHold"),
        ("clientHold", "clientHold"),
        ("serverHold https://icann.org/epp#serverHold", "serverHold"),
        ("CLIENT_TRANSFER_PROHIBITED", "clientTransferProhibited"),
        ("active", "ok"),
        ("ok", "ok"),
        ("Pending Delete", "pendingDelete"),
        ("server recover prohibited", None),
        ("locked", None),
    ],
)
def test_status_mapping(given: str, code: str | None) -> None:
    assert epp_status.describe(given)["epp"] == code


def test_registry_lock_needs_all_three_server_locks() -> None:
    codes = {"serverUpdateProhibited", "serverDeleteProhibited", "serverTransferProhibited"}
    assert epp_status.locks(codes)["registry_lock"] is True
    assert epp_status.locks(codes - {"serverDeleteProhibited"})["registry_lock"] is False


@pytest.mark.parametrize("model", [DomainStatusParams, ExpiryAuditParams])
def test_every_argument_is_documented(model: type) -> None:
    assert all(field.description for field in model.model_fields.values())


def test_unknown_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="rdap_base"):
        DomainStatusParams(domain="example.com", rdap_base="http://127.0.0.1/")


def test_import_does_not_load_httpx() -> None:
    code = "import sys, actions.domain; print('httpx' in sys.modules, 'dns.resolver' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_runs_inside_a_running_event_loop(registry: RdapServer) -> None:
    async def inside() -> ActionResult:
        return run(domain="shop-example.com", rdap_url=registry.base + "/rdap/", follow_referral=False)

    assert asyncio.run(inside()).output["status"] == "ok"


def test_fixture_edits_do_not_leak() -> None:
    original = body("verisign-com-shop-example.json")
    edited = copy.deepcopy(original)
    edited["status"] = ["client hold"]
    assert body("verisign-com-shop-example.json") == original
