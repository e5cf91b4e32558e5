"""domain-expiry end to end: a BIND "TLD" (zone test.) delegating example.test with a 2-hour NS TTL, our own
BIND for example.test standing in for the public resolvers, an RDAP server with the renewed record.

Fixed means the resolvers see our nameservers, and the run says until when caches may still hold the old
answer: from the NS TTL the TLD itself served (not a .com guess) and the TLD's SOA (the negative TTL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.lab.bind import BindServer, zone_text
from tests.lab.rdap import RdapServer, Reply, synthetic_domain
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, step_status

DOMAIN = "example.test"


def test_renewed_domain_is_fixed_when_resolvers_see_it(
    tmp_path: Path, bind_factory: Callable[..., BindServer], rdap_server: RdapServer, bg_home: Path
) -> None:
    tld = bind_factory({"test.": zone_text(
        "test.", f"{DOMAIN}. 7200 IN NS ns1.{DOMAIN}.\nns1.{DOMAIN}. 7200 IN A 127.0.0.1", serial=7)})
    ours = bind_factory({f"{DOMAIN}.": zone_text(f"{DOMAIN}.", "www IN A 192.0.2.10", serial=3)})
    renewed = synthetic_domain(DOMAIN, "2028-03-14T04:00:00Z", ["client transfer prohibited"])
    rdap_server.routes[f"/rdap/domain/{DOMAIN}"] = [Reply(body=renewed), Reply(body=renewed)]
    inputs = {
        "domain": DOMAIN,
        "nameservers": [f"ns1.{DOMAIN}"],
        "tld_server": tld.address,
        "authoritative_port": ours.port,
        "resolvers": [ours.address],
        "rdap_url": f"{rdap_server.base}/rdap/",
    }
    env = cli_env(bg_home)
    op = Operator(answers={"Registrar order number": "ORD-7731"})
    code = op.run(["run", "domain-expiry", *input_args(inputs, tmp_path)], env)
    assert code == 0, op.transcript
    records = audit_records(env)
    status = step_status(records)
    assert status["renew"] == "succeeded"
    assert status["restore"] == "skipped" and status["catch_drop"] == "skipped"
    assert status["verify_delegation"] == "succeeded" and status["watch_resolvers"] == "succeeded"
    assert status["bounced_mail"] == "succeeded"
    assert status["status_first"] == "succeeded" and status["customer_notice"] == "succeeded"
    outputs = {r["step"]: r.get("output") for r in records if r["type"] == "step.succeeded"}
    assert outputs["verify_delegation"]["delegation_ttl"] == 7200
    assert outputs["watch_resolvers"]["all_match"] is True
    note = outputs["cache_horizon"]["note"]
    assert "1 of 1 public resolvers see our nameservers." in note
    assert "lives 7200 s (NS TTL at the TLD)" in note  # read from the TLD, not the .com default
    assert '"no such domain" 60 s' in note  # min(SOA TTL 300, SOA minimum 60), RFC 2308
    started = next(r["ts"] for r in records if r.get("step") == "cache_horizon" and r["type"] == "step.started")
    h, m = int(started[11:13]), int(started[14:16])
    until = re.search(r"until (\d\d):(\d\d) UTC", note)
    assert until is not None, note
    # two hours after the note was written (a minute of slack for a run crossing a minute boundary)
    assert (int(until[1]) * 60 + int(until[2]) - (h * 60 + m + 120)) % 1440 in (0, 1), (started, note)
