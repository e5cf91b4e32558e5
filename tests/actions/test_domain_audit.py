"""domain.expiry_audit: a fleet of domains against a local RDAP server, with bounded concurrency."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actions.base import ActionContext, ActionResult
from actions.domain_audit import DomainExpiryAudit, ExpiryAuditParams
from tests.lab.rdap import RdapServer, Reply, error_object, fleet, synthetic_domain

NOW = datetime(2024, 11, 20, 12, 0, tzinfo=UTC)


def audit(server: RdapServer, domains: list[str], **args: Any) -> ActionResult:
    args.setdefault("backoff", 0.01)
    params = ExpiryAuditParams(domains=domains, rdap_url=server.base + "/rdap/", **args)
    return DomainExpiryAudit().run(params, ActionContext(settings={"now": NOW}))


def test_thousand_domains_with_bounded_concurrency(rdap_server: RdapServer, bg_home: Path) -> None:
    rdap_server.dynamic = fleet(NOW, delay=0.002)
    names = [f"d{i}.com" for i in range(1, 1001)]
    result = audit(rdap_server, names, concurrency=32, per_server=8)
    out = result.output
    assert result.ok and out["counts"]["total"] == 1000 and len(rdap_server.log) == 1000
    assert 2 <= rdap_server.peak <= 8  # one RDAP server: the per-server limit is the binding one
    held = [i for i in range(1, 1001) if i % 101 and (i % 97 == 0 or i % 89 == 0)]
    assert out["counts"]["risky"] == len(held)
    assert out["counts"]["not_found"] == len([i for i in range(1, 1001) if i % 101 == 0])
    assert [r["domain"] for r in out["domains"][: len(held)]] == sorted(
        (f"d{i}.com" for i in held), key=lambda d: ((int(d[1:-4]) * 37) % 700, d)
    )
    days = [r["days_until_expiry"] for r in out["domains"][len(held) :] if r["days_until_expiry"] is not None]
    assert days == sorted(days) and days[0] < 0
    assert out["domains"][-1]["status"] == "not_found"
    # rows are compact: no raw RDAP bodies are kept (flat memory over a large fleet)
    assert len(json.dumps(out)) / 1000 < 1200


def test_global_limit_binds_when_lower_than_per_server(rdap_server: RdapServer, bg_home: Path) -> None:
    rdap_server.dynamic = fleet(NOW, delay=0.005)
    result = audit(rdap_server, [f"d{i}.com" for i in range(1, 201)], concurrency=3, per_server=50)
    assert result.output["counts"]["total"] == 200 and 2 <= rdap_server.peak <= 3


def test_sorted_by_urgency(rdap_server: RdapServer, bg_home: Path) -> None:
    def serve(name: str, days: int, statuses: list[str]) -> None:
        expires = datetime.fromordinal(NOW.date().toordinal() + days).replace(hour=13, tzinfo=UTC)
        answer = synthetic_domain(name, expires.isoformat(), statuses)
        rdap_server.routes[f"/rdap/domain/{name}"] = Reply(body=answer)

    serve("calm.com", 300, ["client transfer prohibited"])
    serve("soon.com", 12, ["active"])
    serve("held.com", 200, ["client hold"])
    serve("gone.com", -3, ["redemption period"])
    serve("lapsed.com", -1, ["auto renew period"])
    rdap_server.routes["/rdap/domain/broken.com"] = Reply(500, "down")
    names = ["calm.com", "soon.com", "held.com", "gone.com", "lapsed.com", "broken.com", "calm.com"]
    out = audit(rdap_server, names, retries=0, warn_days=30).output
    assert [r["domain"] for r in out["domains"]] == [
        "gone.com",
        "held.com",
        "lapsed.com",
        "soon.com",
        "calm.com",
        "broken.com",
    ]
    levels = {r["domain"]: r["urgency"] for r in out["domains"]}
    assert levels == {
        "gone.com": "critical",
        "held.com": "critical",
        "lapsed.com": "critical",
        "soon.com": "warning",
        "calm.com": "ok",
        "broken.com": "unknown",
    }
    assert out["counts"] == {"total": 6, "risky": 2, "expired": 2, "expiring": 1, "not_found": 0, "errors": 1}
    assert out["domains"][1]["abuse_email"] == "abuse@acme-registrar.example"
    # registrar deadlines stay open after the run: every domain at risk, most urgent first, with its date
    assert [(i["text"].split(":")[0], i["due"] is not None) for i in out["open_items"]] == [
        ("gone.com", True), ("held.com", True), ("lapsed.com", True), ("soon.com", True)]
    assert "soon.com: expires in 12 days; renew or restore at Acme Registrar" in out["open_items"][3]["text"]


def test_audit_honours_retry_after(rdap_server: RdapServer, bg_home: Path) -> None:
    rdap_server.dynamic = fleet(NOW)
    limited = Reply(429, error_object(429, "Too Many Requests"), {"Retry-After": "1"})
    for i in (3, 4, 5):
        rdap_server.routes[f"/rdap/domain/d{i}.com"] = [
            limited,
            rdap_server.dynamic(f"/rdap/domain/d{i}.com"),
        ]
    started = time.monotonic()
    out = audit(rdap_server, [f"d{i}.com" for i in range(1, 21)], concurrency=4, per_server=2).output
    assert out["counts"]["errors"] == 0 and out["counts"]["total"] == 20
    assert time.monotonic() - started >= 0.95
    assert len(rdap_server.log) == 23


def test_rate_limit_beyond_cap_is_a_row_not_a_crash(rdap_server: RdapServer, bg_home: Path) -> None:
    rdap_server.dynamic = fleet(NOW)
    rdap_server.routes["/rdap/domain/d7.com"] = Reply(429, "slow down", {"Retry-After": "3600"})
    out = audit(rdap_server, ["d7.com", "d8.com"], max_retry_after=2).output
    assert {r["domain"]: r["status"] for r in out["domains"]} == {"d7.com": "rate_limited", "d8.com": "ok"}
    assert out["domains"][-1]["urgency"] == "unknown"
