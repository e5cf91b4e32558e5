"""mail.auth_records and mail.spf_check against a real ``named`` with MX/SPF/DMARC/DKIM/PTR test records."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from actions.base import ActionContext
from actions.mail_auth import (
    MailAuthRecords,
    MailAuthRecordsParams,
    MailSpfCheck,
    MailSpfCheckParams,
    tags,
)
from tests.lab.bind import BindServer, zone_text


def dkim_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def txt(value: str) -> str:
    """A TXT rdata of 255-octet strings (RFC 1035 3.3.14), as long DKIM keys need."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def example_zone() -> str:
    return f"""
@ MX 10 mx1
@ MX 20 mx-gone
mx1 A 127.0.0.25
mail A 127.0.0.25
@ TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.test a:mail.example.test -all"
@ TXT "google-site-verification=abc"
_spf TXT "v=spf1 ip6:2001:db8::/32 ip4:198.51.100.0/24 ~all"
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test,mailto:x@example.test; adkim=s"
sel1._domainkey TXT {txt("v=DKIM1; k=rsa; p=" + dkim_key())}
old._domainkey TXT "v=DKIM1; k=rsa; p="
_mta-sts TXT "v=STSv1; id=20240101T000000"
_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@example.test"
nowhere A 127.0.0.100
"""


def broken_zone() -> str:
    includes = " ".join(f"include:i{n}.broken.test" for n in range(11))
    lines = [f"@ TXT {txt(f'v=spf1 {includes} -all')}", "@ MX 10 mx.broken.test.", "mx A 127.0.0.26"]
    lines += [f'i{n} TXT "v=spf1 ip4:203.0.113.{n} -all"' for n in range(11)]
    lines += ['open TXT "v=spf1 +all"', 'twice TXT "v=spf1 -all"', 'twice TXT "v=spf1 ~all"']
    lines += ['voids TXT "v=spf1 a:no1.broken.test a:no2.broken.test mx:no3.broken.test -all"']
    lines += ['_dmarc.open TXT "v=DMARC1; p=none"', "nullmx MX 0 ."]
    lines += ['_dmarc.team TXT "v=DMARC1; p=reject; sp=none; rua=mailto:d@broken.test"']
    lines += ['flaky TXT "v=spf1 include:down.test -all"']
    return "\n".join(lines)


REVERSE = """
25.0.0 PTR mail.example.test.
100.0.0 PTR mail.example.test.
26.0.0 PTR nowhere-at-all.example.test.
"""


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    zones = {
        "example.test.": zone_text("example.test.", example_zone()),
        "broken.test.": zone_text("broken.test.", broken_zone()),
        "127.in-addr.arpa.": zone_text("127.in-addr.arpa.", REVERSE),
        "down.test.": "not a zone file: named answers SERVFAIL for down.test\n",
    }
    with BindServer(zones, broken_zones=["down.test."], workdir=tmp_path_factory.mktemp("mailauth")) as server:
        yield server


def records(dns: BindServer, domain: str, **kwargs: Any) -> dict[str, Any]:
    params = MailAuthRecordsParams(domain=domain, resolver=dns.address, timeout=2, **kwargs)
    return MailAuthRecords().run(params, ActionContext()).output


def spf(dns: BindServer, ip: str, mail_from: str, helo: str = "mail.example.test") -> dict[str, Any]:
    params = MailSpfCheckParams(ip=ip, mail_from=mail_from, helo=helo, resolver=dns.address, timeout=2)
    return MailSpfCheck().run(params, ActionContext()).output


def test_mx_and_whether_each_resolves(dns: BindServer) -> None:
    mx = records(dns, "example.test")["mx"]
    assert mx["status"] == "unresolvable"
    assert [(r["preference"], r["exchange"], r["resolves"]) for r in mx["records"]] == [
        (10, "mx1.example.test", True),
        (20, "mx-gone.example.test", False),
    ]
    assert mx["records"][0]["addresses"] == ["127.0.0.25"]
    assert records(dns, "nullmx.broken.test")["mx"]["status"] == "null_mx"  # RFC 7505


def test_spf_parsed_and_lookups_counted(dns: BindServer) -> None:
    report = records(dns, "example.test")["spf"]
    assert report["status"] == "ok"
    assert report["record"].startswith("v=spf1 ip4:192.0.2.0/24")
    assert report["lookups"] == 2  # include + a; ip4/ip6/all cost nothing (RFC 7208 4.6.4)
    assert report["includes"] == ["_spf.example.test"]
    assert report["flags"] == []


def test_spf_over_the_lookup_limit(dns: BindServer) -> None:
    report = records(dns, "broken.test")["spf"]
    assert report["status"] == "permerror" and report["lookups"] == 11
    assert any("over the limit of 10" in f for f in report["flags"])


def test_spf_void_lookups_plus_all_multiple_and_missing(dns: BindServer) -> None:
    voids = records(dns, "voids.broken.test")["spf"]
    assert voids["void_lookups"] == 3 and voids["status"] == "permerror"
    assert any("void lookups" in f for f in voids["flags"])
    assert any("+all" in f for f in records(dns, "open.broken.test")["spf"]["flags"])
    assert records(dns, "twice.broken.test")["spf"]["status"] == "multiple"
    missing = records(dns, "mx.broken.test")["spf"]
    assert missing["status"] == "missing" and missing["flags"][0].startswith("missing")


def test_spf_include_that_does_not_answer_is_temperror(dns: BindServer) -> None:
    report = records(dns, "flaky.broken.test")["spf"]
    assert report["status"] == "temperror" and "SERVFAIL" in report["error"]
    assert spf(dns, "192.0.2.1", "a@flaky.broken.test")["result"] == "temperror"  # RFC 7208 5.2


def test_dmarc_policy_and_rua(dns: BindServer) -> None:
    dmarc = records(dns, "example.test")["dmarc"]
    assert dmarc["status"] == "ok" and dmarc["policy"] == "reject" and dmarc["adkim"] == "s"
    assert dmarc["rua"] == ["mailto:dmarc@example.test", "mailto:x@example.test"]
    weak = records(dns, "open.broken.test")
    assert weak["dmarc"]["policy"] == "none" and any("monitoring only" in p for p in weak["problems"])
    assert records(dns, "broken.test")["dmarc"]["status"] == "missing"


def test_dmarc_of_a_subdomain_is_found_on_its_parent(dns: BindServer) -> None:
    """No _dmarc at the sending subdomain: receivers apply the parent's policy (RFC 7489 6.6.3, DMARCbis
    tree walk), so a subdomain without its own record is not 'missing DMARC'."""
    dmarc = records(dns, "mail.example.test")["dmarc"]
    assert dmarc["status"] == "ok" and dmarc["inherited"] is True
    assert dmarc["found_at"] == "_dmarc.example.test" and dmarc["applied_policy"] == "reject"
    own = records(dns, "example.test")["dmarc"]
    assert own["inherited"] is False and own["found_at"] == "_dmarc.example.test"


def test_dmarc_subdomain_policy_applies_to_inheritors(dns: BindServer) -> None:
    dmarc = records(dns, "deep.er.team.broken.test")["dmarc"]
    assert dmarc["found_at"] == "_dmarc.team.broken.test"
    assert dmarc["policy"] == "reject" and dmarc["applied_policy"] == "none"  # sp= governs subdomains
    assert any("inherits team.broken.test's policy none" in f for f in dmarc["flags"])
    assert records(dns, "team.broken.test")["dmarc"]["applied_policy"] == "reject"


def test_dmarc_walk_is_bounded_and_never_asks_the_tld(dns: BindServer) -> None:
    name = ".".join(f"l{n}" for n in range(12)) + ".broken.test"  # 14 labels
    dmarc = records(dns, name)["dmarc"]
    assert dmarc["status"] == "missing"
    assert len(dmarc["searched"]) <= 8
    assert dmarc["searched"][0] == f"_dmarc.{name}" and dmarc["searched"][-1] == "_dmarc.broken.test"
    assert "_dmarc.test" not in dmarc["searched"]


def test_dkim_selectors(dns: BindServer) -> None:
    dkim = records(dns, "example.test", dkim_selectors=["sel1", "old", "absent"])["dkim"]
    by_selector = {d["selector"]: d for d in dkim}
    assert by_selector["sel1"]["status"] == "ok" and by_selector["sel1"]["key_bits"] == 2048
    assert by_selector["old"]["status"] == "revoked"  # RFC 6376 3.6.1: empty p=
    assert by_selector["absent"]["status"] == "missing"


def test_mta_sts_and_tls_rpt(dns: BindServer) -> None:
    report = records(dns, "example.test")
    assert report["mta_sts"]["present"] and report["mta_sts"]["fields"]["id"] == "20240101T000000"
    assert report["tls_rpt"]["present"] and report["tls_rpt"]["fields"]["rua"] == "mailto:tls@example.test"
    assert not records(dns, "broken.test")["mta_sts"]["present"]


def test_ptr_and_forward_confirmed_reverse_dns(dns: BindServer) -> None:
    good = records(dns, "example.test", sending_ip="127.0.0.25")["reverse"]
    assert good["fcrdns"] and good["ptr"][0]["name"] == "mail.example.test"
    # PTR names mail.example.test, whose A record is 127.0.0.25, not 127.0.0.100: not confirmed.
    unconfirmed = records(dns, "example.test", sending_ip="127.0.0.100")
    assert unconfirmed["reverse"]["status"] == "not_confirmed"
    assert any("PTR/FCrDNS" in p for p in unconfirmed["problems"])
    assert records(dns, "example.test", sending_ip="127.0.0.77")["reverse"]["status"] == "missing"


def test_spf_check_pass_through_include_names_the_mechanism(dns: BindServer) -> None:
    out = spf(dns, "198.51.100.7", "alice@example.test")
    assert out["result"] == "pass" and out["mechanism"] == "include:_spf.example.test"
    assert out["chain"] == ["_spf.example.test: ip4:198.51.100.0/24", "example.test: include:_spf.example.test"]


def test_spf_check_fail_softfail_and_a(dns: BindServer) -> None:
    assert spf(dns, "203.0.113.9", "alice@example.test")["mechanism"] == "-all"
    assert spf(dns, "203.0.113.9", "alice@example.test")["result"] == "fail"
    assert spf(dns, "127.0.0.25", "alice@example.test")["mechanism"] == "a:mail.example.test"
    assert spf(dns, "2001:db8::5", "alice@example.test")["result"] == "pass"


def test_spf_check_helo_identity_and_errors(dns: BindServer) -> None:
    out = spf(dns, "192.0.2.10", "", helo="example.test")  # null sender: postmaster@HELO (RFC 7208 2.4)
    assert out["result"] == "pass" and out["domain"] == "example.test" and "helo" not in out
    both = spf(dns, "192.0.2.10", "bob@broken.test", helo="example.test")
    assert both["result"] == "permerror" and "more than 10" in both["reason"]
    assert both["helo"]["result"] == "pass"
    assert spf(dns, "192.0.2.10", "x@twice.broken.test")["result"] == "permerror"
    assert spf(dns, "192.0.2.10", "x@nothing.example.test")["result"] == "none"


def test_spf_check_unreachable_resolver_is_temperror() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        params = MailSpfCheckParams(
            ip="192.0.2.1",
            mail_from="a@example.test",
            helo="h.example.test",
            resolver=f"127.0.0.1:{silent.getsockname()[1]}",
            timeout=0.3,
        )
        out = MailSpfCheck().run(params, ActionContext()).output
    assert out["result"] == "temperror" and "DNS TXT example.test" in out["reason"]


def test_tag_lists() -> None:
    assert tags("v=DMARC1; p=reject;  rua = mailto:a@b ;") == {"v": "DMARC1", "p": "reject", "rua": "mailto:a@b"}
