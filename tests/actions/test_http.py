"""http.probe and http.request against local HTTP and HTTPS servers with a CA made for the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actions.base import ActionContext, ActionResult, Effect
from actions.http import HttpProbe, HttpRequest, parse_resolve
from tests.lab.https import CA_NAME, EXPIRED, WWW, LabServer, WebLab, url_of

PIN = {WWW: "127.0.0.1", EXPIRED: "127.0.0.1"}


def probe(**params: Any) -> ActionResult:
    action = HttpProbe()
    return action.run(action.Params(**params), ActionContext())


def request(**params: Any) -> tuple[ActionResult, Any]:
    action = HttpRequest()
    p = action.Params(**params)
    plan = action.plan(p, ActionContext())
    return action.apply(p, ActionContext(), plan), plan


def test_importing_http_does_not_import_httpx() -> None:
    code = (
        "import sys, actions.http; sys.exit('httpx' in sys.modules or 'httpcore' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_redirects_are_followed_and_listed(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/redirect", body_contains="standby")
    assert result.ok, result.message
    out = result.output
    assert out["status"] == 200 and out["final_url"] == f"{web.http_url}/"
    assert [(r["status"], r["location"]) for r in out["redirects"]] == [(302, "/hop"), (301, "/")]
    assert out["body_match"] is True
    assert out["tls"] is None and out["http_version"] == "HTTP/1.1"
    assert out["latency_ms"] >= 0


def test_redirect_not_followed_when_disabled(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/redirect", follow_redirects=False, expect_status=302)
    assert result.ok and result.output["status"] == 302 and result.output["redirects"] == []


def test_redirect_loop_is_a_failed_result(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/loop", max_redirects=3)
    assert not result.ok and result.output["error"] == "redirects"


@pytest.mark.parametrize(
    ("matcher", "ok"),
    [
        ({"body_contains": "build 2024.11"}, True),
        ({"body_contains": "build 2023"}, False),
        ({"body_regex": r"build \d{4}\.\d+"}, True),
        ({"body_regex": r"^maintenance"}, False),
        ({"body_contains": "standby", "body_regex": "nope"}, False),
    ],
)
def test_body_match(web: WebLab, matcher: dict[str, str], ok: bool) -> None:
    result = probe(url=f"{web.http_url}/", **matcher)
    assert result.ok is ok
    assert result.output["body_match"] is ok
    if not ok:
        assert "body does not match" in result.message


def test_checkout_scripts_are_listed_by_origin_and_hashed(web: WebLab) -> None:
    import hashlib

    from tests.lab.https import CHECKOUT

    result = probe(url=f"{web.http_url}/checkout")
    assert result.ok
    assert result.output["script_origins"] == [web.http_url, "https://js.pay.example"]
    assert result.output["body_sha256"] == hashlib.sha256(CHECKOUT).hexdigest()
    assert result.output["unexpected_script_origins"] == []  # nothing allowed was said: nothing is judged


@pytest.mark.parametrize(("path", "ok"), [("/checkout", True), ("/checkout-skimmed", False)])
def test_a_script_from_an_origin_not_allowed_fails_the_probe(web: WebLab, path: str, ok: bool) -> None:
    result = probe(url=f"{web.http_url}{path}", allowed_script_origins=["https://js.pay.example/"])
    assert result.ok is ok, result.message
    if not ok:
        assert result.output["unexpected_script_origins"] == ["https://evil.example"]
        assert "scripts from unexpected origins: https://evil.example" in result.message


def test_script_origins_of_a_page_that_is_not_html_are_not_guessed(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/status/200", allowed_script_origins=[])
    assert result.ok and result.output["script_origins"] == []


def test_status_expectation(web: WebLab) -> None:
    down = probe(url=f"{web.http_url}/status/503")
    assert not down.ok and "status 503" in down.message
    assert probe(url=f"{web.http_url}/status/503", expect_status=[503]).ok


def test_body_is_bounded(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/big", max_body=1000, body_contains="x")
    assert result.ok
    assert result.output["body_truncated"] is True
    assert result.output["body_bytes_read"] == 1000
    assert len(result.output["body_excerpt"]) <= 2048


def test_resolve_pins_name_to_ip_with_sni_and_certificate_checked(web: WebLab) -> None:
    result = probe(
        url=f"{web.www_url}/", resolve={WWW: "127.0.0.1"}, ca_file=str(web.ca_file), body_contains="standby"
    )
    assert result.ok, result.message
    tls = result.output["tls"]
    assert tls["issuer"] == f"CN={CA_NAME}" and tls["subject"] == f"CN={WWW}"
    assert tls["days_to_expiry"] == 30
    assert tls["san"] == [WWW]
    assert result.output["pinned_to"] == "127.0.0.1"
    assert result.output["final_url"] == f"{web.www_url}/"
    assert "certificate expires in 30 days" in result.message


def test_resolve_in_curl_form_keeps_redirects_pinned(web: WebLab) -> None:
    result = probe(
        url=f"{web.www_url}/redirect", resolve=[f"{WWW}:{web.https_port}:127.0.0.1"], ca_file=str(web.ca_file)
    )
    assert result.ok, result.message
    assert result.output["final_url"] == f"{web.www_url}/"


def test_without_pin_the_name_does_not_resolve(web: WebLab) -> None:
    result = probe(url=f"{web.www_url}/", ca_file=str(web.ca_file), timeout=5)
    assert not result.ok and result.output["error"] == "connect"


def test_certificate_minimum_days(web: WebLab) -> None:
    result = probe(url=f"{web.www_url}/", resolve=PIN, ca_file=str(web.ca_file), min_cert_days=45)
    assert not result.ok and "certificate expires in 30 days (minimum 45)" in result.message


def test_untrusted_ca_is_a_tls_failure(web: WebLab) -> None:
    result = probe(url=f"{web.www_url}/", resolve=PIN)  # system CAs do not know the lab CA
    assert not result.ok and result.output["error"] == "tls"
    assert "certificate verify" in result.message.lower() or "verification failed" in result.message


def test_expired_certificate_is_a_finding_with_its_dates(web: WebLab) -> None:
    url = f"https://{EXPIRED}:{web.expired_port}/"
    result = probe(url=url, resolve=PIN, ca_file=str(web.ca_file))
    assert not result.ok
    assert result.output["error"] == "tls"
    assert "certificate has expired" in result.message
    assert result.output["tls"]["days_to_expiry"] == -3
    assert result.output["tls"]["subject"] == f"CN={EXPIRED}"
    unverified = probe(url=url, resolve=PIN, verify_tls=False)
    assert unverified.ok and unverified.output["tls"]["days_to_expiry"] == -3


def test_name_mismatch_fails_even_when_pinned(web: WebLab) -> None:
    # the expired server's certificate names expired.example.test, not www: pinning never skips the check
    result = probe(url=f"https://{WWW}:{web.expired_port}/", resolve=PIN, ca_file=str(web.ca_file))
    assert not result.ok and result.output["error"] == "tls"


def test_connection_refused_is_a_result() -> None:
    from tests.lab import free_port

    result = probe(url=f"http://127.0.0.1:{free_port()}/", timeout=3)
    assert not result.ok and result.output["error"] == "connect"


def test_head_with_body_match_is_a_parameter_error() -> None:
    with pytest.raises(ValidationError, match="HEAD response has no body"):
        HttpProbe.Params(url="http://127.0.0.1/", method="HEAD", body_contains="x")


def test_bad_resolve_entries_are_parameter_errors() -> None:
    with pytest.raises(ValidationError):
        HttpProbe.Params(url="http://127.0.0.1/", resolve={WWW: "not-an-ip"})
    assert parse_resolve([f"{WWW}:443:[::1]"]) == {(WWW, 443): "::1"}
    assert parse_resolve({f"{WWW}:8443": "127.0.0.2"}) == {(WWW, 8443): "127.0.0.2"}


def test_head_probe(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/", method="HEAD")
    assert result.ok and result.output["body_excerpt"] == ""


def test_response_cookies_are_not_shown(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/")
    assert result.output["headers"]["set-cookie"] == "***"


TOKEN = "Bearer sk-live-0123456789abcdef"


def test_request_redacts_authorization_everywhere(web: WebLab) -> None:
    before = len(web.received)
    result, plan = request(
        method="POST",
        url=f"{web.http_url}/api/incidents",
        headers={"Authorization": TOKEN, "X-Request-Source": "breakglass"},
        json={"title": "www down", "severity": 1},
    )
    assert result.ok, result.message
    assert HttpRequest.effect is Effect.WRITE
    # the server got the real header and body
    got = web.received[before]
    assert got.headers["Authorization"] == TOKEN and got.json == {"title": "www down", "severity": 1}
    # the engine is told what to redact; plan and output show *** (the server even echoed the token back)
    assert TOKEN in result.secrets and "sk-live-0123456789abcdef" in result.secrets
    assert plan.changes[0]["headers"] == {"Authorization": "***", "X-Request-Source": "breakglass"}
    for shown in (json.dumps(plan.changes), plan.summary, json.dumps(result.output), result.message):
        assert "sk-live" not in shown
    assert result.output["json"] == {"ok": True, "seen_authorization": "***"}


def test_request_secret_header_names_and_url_parameters(web: WebLab) -> None:
    result, plan = request(
        method="PUT",
        url=f"{web.http_url}/api/records?api_key=abcdef123456&zone=example.test",
        headers={"X-Api-Key": "k-998877", "X-Auth-Token": "t-112233", "Cookie": "sid=s-445566"},
        json={"ttl": 60},
    )
    assert result.ok
    assert set(result.secrets) >= {"k-998877", "t-112233", "sid=s-445566", "abcdef123456"}
    text = json.dumps([plan.changes, result.output]) + result.message + plan.summary
    for value in ("k-998877", "t-112233", "s-445566", "abcdef123456"):
        assert value not in text
    assert "zone=example.test" in plan.summary


def test_request_unexpected_status_fails(web: WebLab) -> None:
    result, _ = request(method="DELETE", url=f"{web.http_url}/fail/record")
    assert not result.ok and result.output["status"] == 500 and "expected 2xx" in result.message


RUNBOOK = """\
id: status-api
title: Open an incident on the status page
inputs:
  base: {type: string}
  token: {type: secret, env: STATUS_TOKEN}
steps:
  - id: open_incident
    title: Open the incident
    action: http.request
    with:
      url: "{{ inputs.base }}/api/status-incidents"
      headers: {Authorization: "Bearer {{ inputs.token }}"}
      json: {title: "www down"}
"""


def test_authorization_header_is_redacted_in_the_audit_log(
    web: WebLab, tmp_path: Path, bg_home: Path
) -> None:
    (tmp_path / "status-api.yaml").write_text(RUNBOOK)
    env = {**os.environ, "BREAKGLASS_HOME": str(bg_home), "STATUS_TOKEN": "sk-live-audit-0123456789"}
    argv = [
        "run",
        "status-api",
        "-r",
        str(tmp_path),
        "-i",
        f"base={web.http_url}",
        "--approve",
        "open_incident",
    ]
    done = subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = [r for r in web.received if r.path == "/api/status-incidents"]
    assert got[-1].headers["Authorization"] == "Bearer sk-live-audit-0123456789"
    logs = list(bg_home.rglob("audit.jsonl"))
    assert logs
    text = "".join(p.read_text() for p in logs)
    assert "open_incident" in text and "***" in text
    assert "sk-live-audit" not in text and "sk-live-audit" not in done.stdout


def test_secrets_are_known_before_the_request_is_sent() -> None:
    action = HttpRequest()
    params = action.Params(url="http://127.0.0.1/x?token=tok-445566", headers={"Authorization": TOKEN})
    assert set(action.secrets_for(params)) == {TOKEN, "sk-live-0123456789abcdef", "tok-445566"}


# ---- a redirect to another origin (127.0.0.1 → 127.0.0.2) gets none of the runbook's headers -----------------

SECRET_HEADERS = {
    "X-Api-Key": "k-redirect-778899",
    "Authorization": "Bearer sk-redirect-0123456789",
    "Cookie": "sid=c-redirect-445566",
    "X-Tenant": "acme-blue",  # not secret-named: still the runbook's, still not the other origin's business
}


def landed(server: LabServer, path: str) -> dict[str, str]:
    """The headers of the last request ``server`` saw for ``path``, by lower-case name."""
    hits = [r for r in server.seen if r.path.split("?")[0] == path]
    assert hits, f"{path} was never requested"
    return {k.lower(): v for k, v in hits[-1].headers.items()}


@pytest.mark.parametrize("kind", ["probe", "request"])
def test_cross_origin_redirect_withholds_every_runbook_header(
    web: WebLab, elsewhere: LabServer, kind: str
) -> None:
    target = f"{url_of(elsewhere)}/landing-{kind}"
    url = f"{web.http_url}/away?to={target}"
    if kind == "probe":
        result = probe(url=url, headers=SECRET_HEADERS)
    else:
        result, _ = request(method="POST", url=url, headers=SECRET_HEADERS, follow_redirects=True, json={})
    # the first origin got the headers, the second one none of them (httpx alone forwards all but Authorization)
    first = landed(web.servers[0], "/away")
    assert first["x-api-key"] == "k-redirect-778899" and first["x-tenant"] == "acme-blue"
    second = landed(elsewhere, f"/landing-{kind}")
    for name, value in SECRET_HEADERS.items():
        assert name.lower() not in second, name
        assert all(value not in v for v in second.values()), name
    # and the operator is told, by name, in the output and the one-line message
    assert result.output["headers_withheld"] == list(SECRET_HEADERS)
    assert result.output["headers_withheld_from"] == url_of(elsewhere)
    assert "headers not sent there: X-Api-Key, Authorization, Cookie, X-Tenant" in result.message
    assert url_of(elsewhere) in result.message


def test_same_origin_redirect_keeps_the_headers(web: WebLab) -> None:
    result = probe(url=f"{web.http_url}/redirect", headers={"X-Api-Key": "k-same-origin-1122"})
    assert result.ok
    assert landed(web.servers[0], "/")["x-api-key"] == "k-same-origin-1122"
    assert result.output["headers_withheld"] == [] and result.output["headers_withheld_from"] is None
    assert "not sent" not in result.message


def test_headers_stay_withheld_when_the_chain_comes_back(web: WebLab, elsewhere: LabServer) -> None:
    # 127.0.0.1 → 127.0.0.2 → 127.0.0.1: the way back was chosen by the other origin, not by the runbook
    back = f"{web.http_url}/status/204"
    url = f"{web.http_url}/away?to={url_of(elsewhere)}/away?to={back}"
    result = probe(url=url, headers={"X-Api-Key": "k-round-trip-3344"})
    assert result.ok and result.output["status"] == 204
    assert "x-api-key" not in landed(web.servers[0], "/status/204")
    assert result.output["headers_withheld"] == ["X-Api-Key"]


def test_withheld_headers_are_reported_when_the_other_origin_fails(web: WebLab) -> None:
    from tests.lab import free_port

    gone = f"http://127.0.0.2:{free_port(host='127.0.0.2')}/"
    result = probe(url=f"{web.http_url}/away?to={gone}", headers={"X-Api-Key": "k-dead-end-5566"}, timeout=3)
    assert not result.ok and result.output["error"] == "connect"
    assert result.output["headers_withheld"] == ["X-Api-Key"]
    assert "headers not sent there: X-Api-Key" in result.message


def test_redirect_copying_a_url_secret_to_another_origin_is_not_followed(
    web: WebLab, elsewhere: LabServer
) -> None:
    # the first server appends the request's own query (api_key included) to a Location on another origin
    url = f"{web.http_url}/copy?to={url_of(elsewhere)}/stolen&api_key=abcdef123456"
    result = probe(url=url)
    assert not result.ok and result.output["error"] == "redirect"
    assert not [r for r in elsewhere.seen if r.path.startswith("/stolen")]
    assert "abcdef123456" not in result.message and "abcdef123456" not in json.dumps(result.output)
    assert "not following the redirect" in result.message
