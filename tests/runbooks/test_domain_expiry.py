"""domain-expiry on a .jp domain: a failed first lookup does not stop the run, unknown fields are not polled for."""

from __future__ import annotations

import re
from pathlib import Path

from tests.runbooks.operator import cli_env, run_json


def test_unknown_registry_fields_fail_at_once_and_the_run_goes_on(bg_home: Path) -> None:
    result = run_json(["drill", "domain-expiry", "--scenario", "jp-whois-only", "--yes"], cli_env(bg_home),
                      timeout=120)
    by_step = {e["step"]: e for e in result.events if e.get("type") == "step.failed"}
    assert set(by_step) == {"rdap_status", "verify_rdap"}
    # 20 attempts with backoff would be ~75 minutes of polling for an expiry WHOIS will never print
    assert by_step["verify_rdap"]["attempts"] == 1
    assert not [e for e in result.events if e.get("type") == "step.retried" and e.get("step") == "verify_rdap"]
    facts = next(e for e in result.events if e.get("type") == "step.succeeded" and e["step"] == "facts")
    text = str(facts["output"])
    assert "does not say: statuses, expires, registrar" in text and "None" not in text
    assert result.finished["status"] == "succeeded"  # the TLD delegates to our nameservers: the real check


def test_pending_delete_is_not_promised_a_restore(bg_home: Path) -> None:
    """Only redemptionPeriod can be restored for a fee; pendingDelete alone is caught when it drops."""
    result = run_json(["drill", "domain-expiry", "--scenario", "pending-delete", "--yes"], cli_env(bg_home),
                      timeout=120)
    status = result.steps()
    assert status["catch_drop"] == "succeeded"
    assert status["renew"] == "skipped" and status["restore"] == "skipped"
    # nothing to wait for at the TLD or the resolvers: the delegation cannot come back in this run
    assert status["verify_delegation"] == "skipped" and status["watch_resolvers"] == "skipped"
    assert status["notify_done"] == "skipped"
    # Customers are told the domain is lost and what we do instead, never that it was renewed.
    told = result.outputs()["status_first"]["texts"]
    assert "can no longer be renewed" in told["en"] and "renewed it" not in told["en"]
    assert "もう更新できない" in told["ja"] and status["customer_notice"] == "skipped"


def test_redemption_is_restored_not_renewed(bg_home: Path) -> None:
    result = run_json(["drill", "domain-expiry", "--scenario", "redemption", "--yes"], cli_env(bg_home),
                      timeout=120)
    status = result.steps()
    assert status["restore"] == "succeeded"
    assert status["renew"] == "skipped" and status["catch_drop"] == "skipped"


def test_right_at_the_tld_is_not_fixed_until_resolvers_see_it(bg_home: Path) -> None:
    result = run_json(["drill", "domain-expiry", "--scenario", "resolvers-still-cached", "--yes"], cli_env(bg_home),
                      timeout=120)
    status = result.steps()
    assert status["verify_delegation"] == "succeeded" and status["watch_resolvers"] == "failed"
    note = result.outputs()["cache_horizon"]["note"]
    assert "2 of 4 public resolvers see our nameservers." in note
    assert "lives 172800 s (NS TTL at the TLD)" in note and '"no such domain" 900 s' in note
    assert re.search(r"Caches may hold the old answer until \d\d:\d\d UTC \(\+2 d\)\.", note), note
    started = next(e for e in result.events if e.get("type") == "step.started" and e.get("step") == "notify_done")
    assert "only 2 of 4 public resolvers see it" in str(started), started
    # Right at the TLD is not resolved for customers either: monitoring, with the next update promised.
    notice = result.outputs()["customer_notice"]
    assert notice["stage"] == "monitoring" and notice["next_update"] and "We have renewed it" in (
        result.outputs()["status_first"]["texts"]["en"])
