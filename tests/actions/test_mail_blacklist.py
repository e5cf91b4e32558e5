"""mail.blacklist against a real ``named`` serving test DNSBL zones (RFC 5782 layout) on loopback."""

from __future__ import annotations

import csv
import ipaddress
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext
from actions.mail_blacklist import (
    MailBlacklist,
    MailBlacklistParams,
    ZoneSpec,
    query_name,
    shipped_lists,
)
from tests.lab.bind import BindServer, zone_text

CODES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "dnsbl" / "codes.tsv"

# zen.spamhaus.org test data: 192.0.2.99 is on SBL and PBL at once, 192.0.2.1 is clean, 192.0.2.254 gets the
# "public resolver refused" answer, 2001:db8::99 is an IPv6 listing.
ZEN = """
99.2.0.192 A 127.0.0.2
99.2.0.192 A 127.0.0.10
99.2.0.192 TXT "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL1"
254.2.0.192 A 127.255.255.254
254.2.0.192 TXT "Error: open resolver; see https://www.spamhaus.org/returnc/pub/"
9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2 A 127.0.0.3
"""
DBL = 'bad.example A 127.0.1.4\nbad.example TXT "phishing domain"\n'
URIBL = "refused.example A 127.0.0.1\nmixed.example A 127.0.0.14\n"
BARRACUDA = "99.2.0.192 A 127.0.0.2\n77.2.0.192 A 192.0.2.77\n"
# A team's own Spamhaus mirror, given to mail.blacklist by name only: no codes, Spamhaus's refusal answers.
MIRROR = "zen.mirror.example.test"
MIRROR_RECORDS = """
99.2.0.192 A 127.0.0.2
252.2.0.192 A 127.255.255.252
254.2.0.192 A 127.255.255.254
255.2.0.192 A 127.255.255.255
"""


def run(**kwargs: Any) -> tuple[bool, dict[str, Any]]:
    result = MailBlacklist().run(MailBlacklistParams(**kwargs), ActionContext())
    return result.ok, result.output


def row(output: dict[str, Any], target: str, zone: str) -> dict[str, Any]:
    return next(r for r in output["results"] if r["target"] == target and r["zone"] == zone)


@pytest.fixture(scope="module")
def dnsbl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    zones = {
        "zen.spamhaus.org.": zone_text("zen.spamhaus.org.", ZEN),
        "dbl.spamhaus.org.": zone_text("dbl.spamhaus.org.", DBL),
        "multi.uribl.com.": zone_text("multi.uribl.com.", URIBL),
        "b.barracudacentral.org.": zone_text("b.barracudacentral.org.", BARRACUDA),
        f"{MIRROR}.": zone_text(f"{MIRROR}.", MIRROR_RECORDS + refusal_rows_of_codes_tsv()),
    }
    with BindServer(zones, workdir=tmp_path_factory.mktemp("dnsbl")) as server:
        yield server


LISTS = ["zen.spamhaus.org", "dbl.spamhaus.org", "multi.uribl.com", "b.barracudacentral.org"]
REFUSALS = ipaddress.ip_network("127.255.255.0/24")


def refusal_rows_of_codes_tsv() -> str:
    """codes.tsv's answers in 127.255.255.0/24 (any list), each at 10.0.<row>.1 in the mirror zone."""
    return "".join(
        f"1.{i}.0.10 A {e['answer']}\n"
        for i, e in enumerate(load_codes())
        if is_refusal(e["answer"])
    )


def is_refusal(answer: str) -> bool:
    """Whether a codes.tsv answer column (an address, NXDOMAIN or a description) is in 127.255.255.0/24."""
    try:
        return ipaddress.ip_address(answer) in REFUSALS
    except ValueError:
        return False


def test_listed_ipv4_with_codes_txt_reason_and_delist_link(dnsbl: BindServer) -> None:
    ok, out = run(targets=["192.0.2.99"], zones=LISTS, resolver=dnsbl.address)
    assert ok
    zen = row(out, "192.0.2.99", "zen.spamhaus.org")
    assert zen["status"] == "listed"
    assert zen["query"] == "99.2.0.192.zen.spamhaus.org"
    assert zen["answers"] == ["127.0.0.10", "127.0.0.2"]
    assert "SBL" in zen["meaning"] and "PBL" in zen["meaning"]
    assert "SBL1" in zen["reason"]
    assert zen["delist"] == "https://check.spamhaus.org/"
    assert out["listed_count"] == 2 and out["listed_on"] == ["b.barracudacentral.org", "zen.spamhaus.org"]
    # Domain lists are not asked about an address (Spamhaus DBL answers 127.0.1.255 to those).
    assert {s["zone"] for s in out["skipped"]} == {"dbl.spamhaus.org", "multi.uribl.com"}


def test_unlisted_ipv4(dnsbl: BindServer) -> None:
    ok, out = run(targets=["192.0.2.1"], zones=LISTS, resolver=dnsbl.address)
    assert ok and out["listed_count"] == 0 and out["listed_on"] == []
    assert {r["status"] for r in out["results"]} == {"not_listed"}


def test_refusal_is_not_a_listing(dnsbl: BindServer) -> None:
    ok, out = run(targets=["192.0.2.254"], zones=["zen.spamhaus.org"], resolver=dnsbl.address)
    zen = row(out, "192.0.2.254", "zen.spamhaus.org")
    assert zen["status"] == "refused"
    assert "public/open resolver" in zen["meaning"] and "open resolver" in zen["reason"]
    assert out["listed_count"] == 0
    assert not ok  # the only list refused us: nothing usable, the step says so
    params = MailBlacklistParams(targets=["192.0.2.254"], zones=["zen.spamhaus.org"], resolver=dnsbl.address)
    result = MailBlacklist().run(params, ActionContext())
    assert "1 query refused" in result.message and "resolver" in result.message


def test_ipv6_reversed_nibbles(dnsbl: BindServer) -> None:
    ok, out = run(targets=["2001:db8::99"], zones=LISTS, resolver=dnsbl.address)
    zen = row(out, "2001:db8::99", "zen.spamhaus.org")
    assert zen["status"] == "listed" and "CSS" in zen["meaning"]
    assert zen["query"].startswith("9.9.0.0.") and zen["query"].endswith(".8.b.d.0.1.0.0.2.zen.spamhaus.org")
    # Barracuda publishes no IPv6 entries: not queried, and said so.
    assert any(s["zone"] == "b.barracudacentral.org" and "IPv6" in s["why"] for s in out["skipped"])


def test_domains_and_bitmask_lists(dnsbl: BindServer) -> None:
    ok, out = run(targets=["bad.example", "refused.example", "mixed.example"], zones=LISTS, resolver=dnsbl.address)
    assert row(out, "bad.example", "dbl.spamhaus.org")["status"] == "listed"
    assert row(out, "bad.example", "dbl.spamhaus.org")["reason"] == "phishing domain"
    uribl_refused = row(out, "refused.example", "multi.uribl.com")
    assert uribl_refused["status"] == "refused"  # URIBL 127.0.0.1: query refused, never a listing
    mixed = row(out, "mixed.example", "multi.uribl.com")
    assert mixed["status"] == "listed" and all(w in mixed["meaning"] for w in ("black", "grey", "red"))
    assert out["listed_targets"] == ["bad.example", "mixed.example"]


def test_zone_given_by_name_only_reads_spamhaus_refusals_as_refusals(dnsbl: BindServer) -> None:
    targets = ["192.0.2.99", "192.0.2.252", "192.0.2.254", "192.0.2.255", "192.0.2.1"]
    result = MailBlacklist().run(
        MailBlacklistParams(targets=targets, zones=[MIRROR], resolver=dnsbl.address), ActionContext()
    )
    out = result.output
    assert [row(out, t, MIRROR)["status"] for t in targets] == [
        "listed",
        "refused",
        "refused",
        "refused",
        "not_listed",
    ]
    assert out["listed_targets"] == ["192.0.2.99"] and out["counts"]["refused"] == 3
    assert result.ok and "listed on 1 of 5 checks" in result.message
    assert "3 queries refused" in result.message


def test_a_definition_can_say_its_list_lists_in_the_refusal_range(dnsbl: BindServer) -> None:
    own = ZoneSpec(zone=MIRROR, refused_range=None)
    _, out = run(targets=["192.0.2.254"], zones=[own], resolver=dnsbl.address)
    assert out["results"][0]["status"] == "listed"


def test_answer_outside_loopback_is_an_error(dnsbl: BindServer) -> None:
    # RFC 5782 2.3: answers live in 127/8; 192.0.2.77 is a broken list or an NXDOMAIN-rewriting resolver.
    _, out = run(targets=["192.0.2.77"], zones=["b.barracudacentral.org"], resolver=dnsbl.address)
    assert out["results"][0]["status"] == "error" and "outside 127.0.0.0/8" in out["results"][0]["meaning"]
    assert out["listed_count"] == 0


def test_custom_zone_definition(dnsbl: BindServer) -> None:
    custom = ZoneSpec(zone="b.barracudacentral.org", name="my list", delist="https://example.test/delist")
    _, out = run(targets=["192.0.2.99", "192.0.2.1"], zones=[custom], resolver=dnsbl.address)
    listed = row(out, "192.0.2.99", "b.barracudacentral.org")
    assert listed["list"] == "my list" and listed["delist"] == "https://example.test/delist"
    assert listed["meaning"] == "listed (return code 127.0.0.2)"
    assert row(out, "192.0.2.1", "b.barracudacentral.org")["status"] == "not_listed"


def test_unreachable_resolver_is_an_error_finding() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # takes queries, never answers
        port = silent.getsockname()[1]
        ok, out = run(targets=["192.0.2.1"], zones=["zen.spamhaus.org"], resolver=f"127.0.0.1:{port}", timeout=0.3)
    assert not ok
    assert out["results"][0]["status"] == "error" and "no answer within 0.3s" in out["results"][0]["meaning"]


def test_queries_run_concurrently() -> None:
    # 20 lists behind a resolver that never answers: concurrent checks wait one timeout, a loop would wait 20.
    zones = [f"list{i}.bl.test" for i in range(20)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        _, out = run(targets=["192.0.2.1"], zones=zones, resolver=resolver, timeout=0.4)
        concurrent = time.monotonic() - started
        started = time.monotonic()
        run(targets=["192.0.2.1"], zones=zones[:5], resolver=resolver, timeout=0.4, concurrency=1)
        sequential_five = time.monotonic() - started
    assert len(out["results"]) == 20 and {r["status"] for r in out["results"]} == {"error"}
    assert concurrent < 1.5, concurrent
    assert sequential_five >= 5 * 0.4 * 0.9, sequential_five


def test_query_names() -> None:
    zen, dbl = shipped_lists()["zen.spamhaus.org"], shipped_lists()["dbl.spamhaus.org"]
    assert query_name("127.0.0.2", zen) == "2.0.0.127.zen.spamhaus.org"  # RFC 5782 5 test point
    assert query_name("::ffff:7f00:2", zen) == "2.0.0.0.0.0.f.7.f.f.f.f" + ".0" * 20 + ".zen.spamhaus.org"
    assert query_name("Example.COM.", dbl) == "example.com.dbl.spamhaus.org"
    assert query_name("example.com", zen) is None


def test_shipped_lists_are_documented() -> None:
    lists = shipped_lists()
    wanted = {
        "zen.spamhaus.org",
        "dbl.spamhaus.org",
        "b.barracudacentral.org",
        "bl.spamcop.net",
        "dnsbl-1.uceprotect.net",
        "dnsbl-2.uceprotect.net",
        "dnsbl-3.uceprotect.net",
        "psbl.surriel.com",
        "multi.surbl.org",
        "multi.uribl.com",
        "bl.mailspike.net",
    }
    assert wanted <= set(lists)
    for spec in lists.values():
        assert spec.name and spec.delist.startswith("https://"), spec.zone


# ---- ../shared/fixtures/dnsbl/codes.tsv: every row of a shipped list, served from BIND -------------------


def load_codes() -> list[dict[str, str]]:
    if not CODES.is_file():
        return []
    with CODES.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


CODE_ROWS = load_codes()
TOKENS = [
    "SBL",
    "CSS",
    "XBL",
    "PBL",
    "DROP",
    "phish",
    "malware",
    "botnet",
    "redirector",
    "black",
    "grey",
    "red",
    "PH",
    "MW",
    "CT",
    "ABUSE",
    "CR",
    "DM",
]


def fixture_case(index: int, entry: dict[str, str]) -> tuple[str, str, str, str] | None:
    """(zone, target, record name, A answer or '') for one row; None when its list is not shipped."""
    zone, answer, meaning = entry["zone"], entry["answer"], entry["meaning"]
    if zone == "*":
        return probe_case(answer, meaning)
    if zone not in shipped_lists():
        return None
    if shipped_lists()[zone].kind == "domain":
        target = f"row{index}.example"
        name = target
    else:
        target = f"10.0.{index}.1"
        name = f"1.{index}.0.10"
    return zone, target, name, "" if answer == "NXDOMAIN" else answer


def probe_case(answer: str, meaning: str) -> tuple[str, str, str, str] | None:
    listed = "MUST be listed" in meaning
    if meaning.startswith("INVALID"):
        return "zen.spamhaus.org", "10.255.0.1", "1.0.255.10", "192.0.2.1"
    if "IPv4 127.0.0.2" in answer or "IPv4 127.0.0.1" in answer:
        target = "127.0.0.2" if listed else "127.0.0.1"
    elif "::FFFF" in answer:
        target = "::ffff:7f00:2" if listed else "::ffff:7f00:1"
    else:
        target = "test" if listed else "invalid"
        name = query_name(target, shipped_lists()["dbl.spamhaus.org"])
        return (
            "dbl.spamhaus.org",
            target,
            name.removesuffix(".dbl.spamhaus.org"),
            "127.0.1.2" if listed else "",
        )
    reversed_name = ipaddress.ip_address(target).reverse_pointer.rsplit(".", 2)[0]
    return "zen.spamhaus.org", target, reversed_name, "127.0.0.2" if listed else ""


CASES = [(i, e, fixture_case(i, e)) for i, e in enumerate(CODE_ROWS)]
SHIPPED_CASES = [pytest.param(e, c, id=f"{e['zone']}-{e['answer']}"[:60]) for _, e, c in CASES if c]


def expected_status(meaning: str) -> set[str]:
    if meaning.startswith("LISTED") or "MUST be listed" in meaning:
        return {"listed"}
    if meaning.startswith("NOT LISTED") or "MUST NOT be listed" in meaning:
        return {"not_listed"}
    return {"refused", "error"}  # ERROR (not a listing) / INVALID: anything but "listed"


@pytest.fixture(scope="module")
def codes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    records: dict[str, list[str]] = {}
    for _, _, case in CASES:
        if case:
            zone, _, name, answer = case
            records.setdefault(zone, [])
            if answer:
                records[zone].append(f"{name} A {answer}")
    zones = {f"{z}.": zone_text(f"{z}.", "\n".join(lines)) for z, lines in records.items()}
    with BindServer(zones, workdir=tmp_path_factory.mktemp("codes")) as server:
        yield server


@pytest.mark.parametrize(("entry", "case"), SHIPPED_CASES)
def test_codes_tsv_agrees(
    entry: dict[str, str], case: tuple[str, str, str, str], codes_server: BindServer, shared_fixtures: Path
) -> None:
    zone, target, _, _ = case
    _, out = run(targets=[target], zones=[zone], resolver=codes_server.address)
    result = out["results"][0]
    assert result["status"] in expected_status(entry["meaning"]), (entry, result)
    if entry["meaning"].startswith("LISTED"):
        theirs = entry["meaning"].split(":", 1)[1].split("(")[0]
        for token in TOKENS:
            if re.search(rf"\b{token}\b", theirs, re.IGNORECASE):
                assert re.search(rf"\b{token}\b", result["meaning"], re.IGNORECASE), (token, entry, result)


def test_codes_tsv_refusals_are_refusals_on_a_zone_given_by_name_only(
    dnsbl: BindServer, shared_fixtures: Path
) -> None:
    # Every answer the real-world table files under 127.255.255.0/24, served by a list known only by name.
    rows = [
        (f"10.0.{i}.1", e)
        for i, e in enumerate(CODE_ROWS)
        if is_refusal(e["answer"])
    ]
    assert rows
    result = MailBlacklist().run(
        MailBlacklistParams(targets=[t for t, _ in rows], zones=[MIRROR], resolver=dnsbl.address), ActionContext()
    )
    for target, entry in rows:
        assert expected_status(entry["meaning"]) == {"refused", "error"}, entry
        assert row(result.output, target, MIRROR)["status"] == "refused", entry
    assert f"{len(rows)} queries refused" in result.message


def test_codes_tsv_coverage(shared_fixtures: Path) -> None:
    # Every list the fixture describes is shipped, so no row is silently left out.
    assert len(CODE_ROWS) == 57 and len(SHIPPED_CASES) == 57
