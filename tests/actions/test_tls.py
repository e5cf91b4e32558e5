"""tls.check against real TLS servers on 127.0.0.1: HTTPS (with and without HSTS), SMTP and IMAP STARTTLS,
each serving a certificate from a lab root → intermediate → leaf chain, or a broken one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from actions.clients.tls_endpoint import Endpoint, name_matches
from actions.tls import TlsCheck, TlsCheckParams
from engine.errors import ActionError
from tests.lab.certs import ImapStartTls, Leaf, Pki, ServedFiles, serve_web
from tests.lab.smtp import RecordingHandler, SmtpServer
from tests.runbooks.labweb import stop

WWW = "www.example.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def web(pki: Pki, tmp_path: Path) -> Iterator[Any]:
    """Serve a leaf over HTTPS: ``web(leaf, hsts=None)`` → the port."""
    servers = []

    def start(leaf: Leaf, hsts: str | None = None) -> int:
        servers.append(serve_web(ServedFiles(tmp_path / f"s{len(servers)}", leaf), hsts=hsts))
        return int(servers[-1].server_address[1])

    yield start
    for server in servers:
        stop(server)


def check(pki: Pki, host: str, **params: Any) -> ActionResult:
    return TlsCheck().run(TlsCheckParams(host=host, address="127.0.0.1", ca_file=str(pki.root_file), **params),
                          ActionContext())


def test_a_good_certificate_with_hsts_preload(pki: Pki, web: Any) -> None:
    port = web(pki.leaf(WWW, days=60), hsts="max-age=63072000; includeSubDomains; preload")
    result = check(pki, f"{WWW}:{port}")
    out = result.output
    assert result.ok and out["status"] == "ok" and out["problems"] == [] and out["verify_error"] is None
    assert out["days_left"] in (59, 60) and out["chain_complete"] and out["name_matches"]
    assert [c["subject"] for c in out["chain"]] == [f"CN={WWW}", "CN=breakglass lab intermediate R1"]
    assert out["hsts"] == {"max_age": 63072000, "include_subdomains": True, "preload": True,
                           "header": "max-age=63072000; includeSubDomains; preload"}
    assert out["open_items"][0]["due"] and "renew the certificate" in out["open_items"][0]["text"]
    assert "HSTS max-age=63072000 preload" in result.message


@pytest.mark.parametrize(("kwargs", "problem", "verify_error"), [
    ({"days": -3}, "expired", "certificate has expired"),
    ({"names": ["other.example.test"]}, "name_mismatch", "Hostname mismatch"),
    ({"chain": False}, "incomplete_chain", "unable to get local issuer certificate"),
    ({"self_signed": True}, "self_signed", "self-signed certificate"),
])
def test_what_a_verifying_client_objects_to(pki: Pki, web: Any, kwargs: dict[str, Any], problem: str,
                                             verify_error: str) -> None:
    port = web(pki.leaf(WWW, **kwargs))
    result = check(pki, f"{WWW}:{port}")
    out = result.output
    assert not result.ok and out["status"] == "invalid" and not out["verified"]
    assert out["problems"] == [problem]
    assert verify_error in out["verify_error"]
    assert out["hsts"] is None and out["open_items"] == []  # the certificate to renew is its replacement


def test_the_missing_intermediate_is_named(pki: Pki, web: Any) -> None:
    out = check(pki, f"{WWW}:{web(pki.leaf(WWW, chain=False))}").output
    assert out["missing_issuer"] == "CN=breakglass lab intermediate R1" and len(out["chain"]) == 1
    assert "intermediate CN=breakglass lab intermediate R1 not served" in check(
        pki, f"{WWW}:{web(pki.leaf(WWW, chain=False))}").message


def test_valid_but_expiring_soon_fails_under_min_days(pki: Pki, web: Any) -> None:
    port = web(pki.leaf(WWW, days=5))
    assert check(pki, f"{WWW}:{port}").ok
    result = check(pki, f"{WWW}:{port}", min_days=14)
    assert not result.ok and result.output["verified"] and result.output["problems"] == ["expires_soon"]


def test_must_staple_is_reported_as_something_to_check(pki: Pki, web: Any) -> None:
    result = check(pki, f"{WWW}:{web(pki.leaf(WWW, must_staple=True))}")
    assert result.ok and result.output["must_staple"] and result.output["problems"] == ["must_staple"]
    assert "openssl s_client -status" in result.message


def test_smtp_starttls_and_imap_starttls(pki: Pki, tmp_path: Path) -> None:
    files = ServedFiles(tmp_path / "mail", pki.leaf("mail.example.test", days=-1))
    with SmtpServer(RecordingHandler(), tls=files) as smtp:  # type: ignore[arg-type]
        out = check(pki, f"smtp://mail.example.test:{smtp.port}").output
        assert (out["starttls"], out["problems"], out["hsts"]) == ("smtp", ["expired"], None)
        files.install(pki.leaf("mail.example.test"))  # renewed: the next handshake reads the new files
        assert check(pki, f"smtp://mail.example.test:{smtp.port}").ok
    imap = ImapStartTls(files)
    try:
        out = check(pki, f"imap://mail.example.test:{imap.port}").output
        assert out["starttls"] == "imap" and out["verified"] and out["endpoint"].endswith("(STARTTLS imap)")
    finally:
        imap.close()


def test_no_tls_is_a_result_not_a_traceback(pki: Pki) -> None:
    from tests.lab import free_port

    result = check(pki, f"smtp://mail.example.test:{free_port()}")
    assert not result.ok and result.output["status"] == "error" and "Connection refused" in result.output["error"]


def test_servername_differs_from_the_host_dialled(pki: Pki, web: Any) -> None:
    port = web(pki.leaf(WWW))
    out = TlsCheck().run(TlsCheckParams(host=f"127.0.0.1:{port}", servername=WWW, ca_file=str(pki.root_file)),
                         ActionContext()).output
    assert out["host"] == WWW and out["verified"]


@pytest.mark.parametrize(("text", "expected"), [
    ("www.example.com", Endpoint("www.example.com", 443)),
    ("www.example.com:8443", Endpoint("www.example.com", 8443)),
    ("smtp://MX1.example.com", Endpoint("mx1.example.com", 25, "smtp")),
    ("submission://mail.example.com", Endpoint("mail.example.com", 587, "smtp")),
    ("imaps://mail.example.com", Endpoint("mail.example.com", 993)),
    ("imap://mail.example.com:1143/", Endpoint("mail.example.com", 1143, "imap")),
])
def test_endpoint_forms(text: str, expected: Endpoint) -> None:
    assert Endpoint.parse(text) == expected


def test_a_bad_endpoint_is_an_action_error() -> None:
    with pytest.raises(ActionError, match="unknown scheme 'pop3'"):
        TlsCheck().run(TlsCheckParams(host="pop3://mail.example.com"), ActionContext())


@pytest.mark.parametrize(("host", "san", "expected"), [
    ("www.example.com", ["www.example.com"], True),
    ("WWW.example.com.", ["www.example.com"], True),
    ("www.example.com", ["*.example.com"], True),
    ("a.b.example.com", ["*.example.com"], False),  # a wildcard covers one label only (RFC 6125 6.4.3)
    ("example.com", ["*.example.com"], False),
    ("example.com", ["www.example.com"], False),
])
def test_name_matching(host: str, san: list[str], expected: bool) -> None:
    assert name_matches(host, san) is expected
