"""domain-expiry on a .jp domain: a failed first lookup does not stop the run, unknown fields are not polled for."""

from __future__ import annotations

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
