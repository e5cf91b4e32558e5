"""registrar-account-hijack end to end: a BIND "TLD" (zone test.) that delegates example.test to a foreign
nameserver, that foreign BIND (127.0.0.2) serving a phishing address and its own MX, our own BIND
(127.0.0.1, same port), an RDAP server showing the foreign nameservers with pendingTransfer and later ours
with the transfer lock back, a webhook receiver, a team file with the registrar's 24/7 line.

Live: the evidence steps see the foreign delegation and what it answers; the pending transfer brings the
step that refuses it; while the run waits for the registrar, the "registry" puts our delegation back and the
verification sees our nameserver answer. Customers are told at gates the operator answers: the status page
at once, a notice of what to change (with the time of the registry's change) once the exposure is known, and
"monitoring" after the verification, with "resolved" left as a follow-up for when caches have caught up.
Dry-run: nothing posted, verification skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bind import BindServer, zone_text
from tests.lab.rdap import RdapServer, Reply, synthetic_domain
from tests.runbooks.labweb import hook_url, serve, stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, run_json, step_status

DOMAIN = "example.test"
PHISH = "203.0.113.66"  # data in the foreign zone only: nothing connects to it
QUESTIONS = {
    "Registrar ticket number": "ACME-7001",
    "What changed and when, according to the registrar": "NS changed 02:10 UTC from a new login",
    "Time the registrar confirmed the denial": "03:05 UTC",
    "Account or contact e-mail found changed to (address, or unchanged)": "admin@evil.example",
}
OURS = zone_text(f"{DOMAIN}.", "www IN A 192.0.2.10\n@ IN MX 10 mx1\nmx1 IN A 192.0.2.25\nns1 IN A 127.0.0.1", serial=3)
TEAM = """\
contacts:
  registrar_24x7: {name: Acme Registrar NOC, phone: "+81 3 5555 0100", email: noc@acme-registrar.example}
  registrar_account_manager: {name: Ken Ito, phone: "+81 3 5555 0111"}
"""


def rdap_record(nameservers: list[str], statuses: list[str]) -> dict[str, Any]:
    record = synthetic_domain(DOMAIN, "2027-03-14T04:00:00Z", statuses)
    record["nameservers"] = [{"objectClassName": "nameserver", "ldhName": ns.upper()} for ns in nameservers]
    record["events"].append({"eventAction": "last changed", "eventDate": "2026-11-30T02:10:00Z"})
    return record


class Lab:
    def __init__(self, tmp: Path, tld: BindServer, foreign: BindServer, rdap: RdapServer,
                 start: Callable[..., BindServer]) -> None:
        self.tmp, self.tld, self.foreign, self.rdap, self.start = tmp, tld, foreign, rdap, start
        self.port = foreign.port
        self.ours: BindServer | None = None
        hijacked = rdap_record(["ns1.evil.test"], ["pending transfer"])
        reverted = rdap_record([f"ns1.{DOMAIN}"], ["client transfer prohibited"])
        rdap.routes[f"/rdap/domain/{DOMAIN}"] = [Reply(body=hijacked), Reply(body=reverted)]
        self.hooks = serve()
        self.team = tmp / "team.yaml"
        self.team.write_text(TEAM)

    def close(self) -> None:
        stop(self.hooks)

    def inputs(self) -> dict[str, Any]:
        return {
            "domain": DOMAIN,
            "nameservers": [f"ns1.{DOMAIN}"],
            "tld_server": self.tld.address,
            "authoritative_port": self.port,
            "rdap_url": f"{self.rdap.base}/rdap/",
            "webhook_url": hook_url(self.hooks),
        }

    def env(self, home: Path) -> dict[str, str]:
        return cli_env(home, BREAKGLASS_TEAM=str(self.team))

    def registry_puts_our_delegation_back(self) -> str:
        import dns.query
        import dns.update

        update = dns.update.UpdateMessage("test.")
        update.replace(f"{DOMAIN}.", 300, "NS", f"ns1.{DOMAIN}.")
        update.add(f"ns1.{DOMAIN}.", 300, "A", "127.0.0.1")
        reply = dns.query.tcp(update, "127.0.0.1", port=self.tld.port, timeout=5)
        assert reply.rcode() == 0
        self.foreign.stop()
        self.ours = self.start({f"{DOMAIN}.": OURS}, port=self.port)
        return "03:40 UTC"


@pytest.fixture
def lab(tmp_path: Path, bind_factory: Callable[..., BindServer], rdap_server: RdapServer) -> Iterator[Lab]:
    foreign = bind_factory({f"{DOMAIN}.": zone_text(f"{DOMAIN}.", f"www IN A {PHISH}\n@ IN MX 10 mx.evil.test.",
                                                    serial=1)})
    # The TLD delegates example.test to the attacker's nameserver.
    tld = bind_factory({"test.": zone_text("test.", f"{DOMAIN}. IN NS ns1.evil.test.\n"
                                                    "ns1.evil.test. IN A 127.0.0.1", serial=7)},
                       update_zones=["test."])
    lab = Lab(tmp_path, tld, foreign, rdap_server, bind_factory)
    yield lab
    lab.close()


def test_live_run_sees_the_hijack_and_the_revert(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)
    revert = lab.registry_puts_our_delegation_back
    op = Operator(answers={**QUESTIONS, "Time the registrar confirmed the revert": revert})
    code = op.run(["run", "registrar-account-hijack", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    assert op.seen_gates == ["notify_incident", "status_first", "customer_notice", "notify_resolved",
                             "status_restored"]
    records = audit_records(env)
    # The registrar's 24/7 line, from the team file by role, in what the operator was shown.
    assert "+81 3 5555 0100" in json.dumps([r for r in records if r.get("step") == "call_registrar"])
    status = step_status(records)
    assert status["refuse_transfer"] == "succeeded"  # RDAP said pendingTransfer
    assert status["exposure"] == "succeeded"  # foreign nameservers answered meanwhile
    assert status["verify_rdap"] == "succeeded" and status["verify_delegation"] == "succeeded"
    outputs = {r["step"]: r.get("output") for r in records if r["type"] == "step.succeeded"}
    facts = outputs["facts"]["note"]
    assert "Registry (RDAP) nameservers: ns1.evil.test; not ours: ns1.evil.test." in facts
    assert "TLD delegates to: ns1.evil.test; not ours: ns1.evil.test." in facts
    assert PHISH in facts and "mx.evil.test" in facts
    assert outputs["verify_delegation"]["answering"] == [f"127.0.0.1:{lab.port}"]
    assert "192.0.2.10" in str(outputs["verify_delegation"]["nameservers"])  # our www, from our server
    follow = [r for r in records if r["type"] == "run.finished"][0]["open"]
    texts = [i["text"] for i in follow if i["step"] == "follow_ups"]
    assert texts[0].startswith("ask the registry for Registry Lock on example.test")
    assert not any("clientTransferProhibited" in t for t in texts)  # the lock was seen back
    assert any(t.startswith('post "resolved" on the status page') for t in texts)
    first, notice, restored = (outputs[s]["texts"] for s in ("status_first", "customer_notice", "status_restored"))
    assert first["en"].startswith("[Investigating] Our domain example.test was changed at our domain registrar")
    assert notice["en"].startswith("[Identified] From 2026-11-30 02:10 UTC, our\ndomain example.test pointed")
    assert "never ask for your password" in notice["en"] and "決してありません" in notice["ja"]
    assert notice["ja"].startswith("【原因特定】 2026-11-30 02:10 (UTC) 以降")
    assert restored["ja"].startswith("【経過観察】")
    posted = [r.json["text"] for r in lab.hooks.received]
    assert len(posted) == 2 and "ns1.evil.test" in posted[0] and "delegated to our nameservers" in posted[1]


def test_dry_run_changes_nothing(lab: Lab, bg_home: Path) -> None:
    result = run_json(["run", "registrar-account-hijack", "--dry-run", "--yes", *input_args(lab.inputs(), lab.tmp)],
                      lab.env(bg_home))
    assert result.code == 0, result.stderr
    status = result.steps()
    assert status["rdap_now"] == "succeeded" and status["delegation_www"] == "succeeded"
    assert status["notify_incident"] == "planned" and status["status_first"] == "planned"
    assert status["verify_rdap"] == "skipped" and status["verify_delegation"] == "skipped"
    assert lab.hooks.received == []
    assert lab.rdap.hits(f"/rdap/domain/{DOMAIN}") == 1
