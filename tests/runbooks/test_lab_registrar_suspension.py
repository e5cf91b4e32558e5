"""registrar-suspension end to end: a BIND "TLD" (zone test.) that withdrew the delegation, our own BIND for
example.test, an RDAP server answering clientHold then released, a domain blocklist, a webhook receiver.

Live: the operator answers the registrar questions at a pseudo-terminal; while the run waits for the release,
the "registry" puts the delegation back (an RFC 2136 update to the TLD zone), and the verification steps
see the domain delegated and answering again. The evidence pack probes the phishing URLs we took down. When
the registrar gives no ticket, the escalation ladder climbs rung by rung with the team file's contacts and a
deadline per rung. Dry-run: nothing posted, the TLD zone untouched, verification skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bind import BindServer, zone_text
from tests.lab.rdap import RdapServer, Reply, synthetic_domain
from tests.runbooks.labweb import hook_url, serve, stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, run_json, step_status

DOMAIN = "example.test"
QUESTIONS = {
    "What did the registrar act on (abuse report, unpaid invoice, contact verification, unknown)?": "abuse report",
    "Registrar ticket number": "ACME-4411",
    "Time they promised to lift the hold": "within the hour",
    "Our abuse tickets and when each was taken down": "ABUSE-17, page removed 08:10 UTC",
}
TEAM = """\
contacts:
  registrar_24x7: {name: Acme NOC, phone: "+1 555 0100"}
  registrar_account_manager: {name: Jo Account, phone: "+1 555 0101", email: jo@acme.example}
  registrar_executive: {name: Sam CEO, email: ceo@acme.example}
"""


class Lab:
    def __init__(self, tmp: Path, tld: BindServer, ours: BindServer, rdap: RdapServer) -> None:
        self.tmp, self.tld, self.ours, self.rdap = tmp, tld, ours, rdap
        held = synthetic_domain(DOMAIN, "2026-03-14T04:00:00Z", ["client hold", "client transfer prohibited"])
        released = synthetic_domain(DOMAIN, "2026-03-14T04:00:00Z", ["client transfer prohibited"])
        rdap.routes[f"/rdap/domain/{DOMAIN}"] = [Reply(body=held), Reply(body=released)]
        self.hooks = serve()

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.hooks.server_address[1]}"

    def close(self) -> None:
        stop(self.hooks)

    def inputs(self) -> dict[str, Any]:
        return {
            "domain": DOMAIN,
            "nameservers": [f"ns1.{DOMAIN}"],
            "resolvers": [self.ours.address],
            "tld_server": self.tld.address,
            "authoritative_port": self.ours.port,
            "rdap_url": f"{self.rdap.base}/rdap/",
            "blocklists": [{"zone": "dbl.test", "name": "Lab DBL", "kind": "domain"}],
            "takedown_urls": [f"{self.web}/phish/login.php", f"{self.web}/status/200"],
            "dnsbl_resolver": self.tld.address,
            "webhook_url": hook_url(self.hooks),
        }

    def registry_lifts_the_hold(self) -> str:
        """What the registry does when the hold is lifted: the delegation (and its glue) is back."""
        import dns.query
        import dns.update

        update = dns.update.UpdateMessage("test.")
        update.add(f"{DOMAIN}.", 300, "NS", f"ns1.{DOMAIN}.")
        update.add(f"ns1.{DOMAIN}.", 300, "A", "127.0.0.1")
        reply = dns.query.tcp(update, "127.0.0.1", port=self.tld.port, timeout=5)
        assert reply.rcode() == 0
        return "09:42 UTC"


@pytest.fixture
def lab(tmp_path: Path, bind_factory: Callable[..., BindServer], rdap_server: RdapServer) -> Iterator[Lab]:
    # The TLD zone has no delegation for example.test (withdrawn), and the blocklist lists the domain.
    tld = bind_factory(
        {"test.": zone_text("test.", "example.test.dbl IN A 127.0.1.4", serial=7)}, update_zones=["test."]
    )
    ours = bind_factory({f"{DOMAIN}.": zone_text(f"{DOMAIN}.", "www IN A 192.0.2.10", serial=3)})
    lab = Lab(tmp_path, tld, ours, rdap_server)
    yield lab
    lab.close()


def test_live_run_with_the_registrar_call_answered_at_a_terminal(lab: Lab, bg_home: Path) -> None:
    env = cli_env(bg_home)
    op = Operator(answers={**QUESTIONS, "Time the registrar confirmed the release": lab.registry_lifts_the_hold})
    code = op.run(["run", "registrar-suspension", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    assert op.seen_gates == ["status_first", "notify_incident", "customer_notice", "notify_resolved"]
    records = audit_records(env)
    status = step_status(records)
    assert status["check_tld"] == "failed"  # the TLD's own servers: no delegation to find
    assert status["contact_registrar"] == "succeeded" and status["escalation"] == "skipped"
    assert status["escalate_registry"] == "skipped" and status["restore_domain"] == "skipped"
    assert status["verify_rdap"] == "succeeded" and status["verify_delegation"] == "succeeded"
    outputs = {r["step"]: r.get("output") for r in records if r["type"] == "step.succeeded"}
    assert "The TLD's servers: no delegation" in outputs["facts"]["note"]
    evidence = outputs["evidence_pack"]["note"]
    assert "ABUSE-17, page removed 08:10 UTC" in evidence
    assert f"{lab.web}/phish/login.php: gone (404)" in evidence
    assert f"{lab.web}/status/200: STILL ANSWERS (200)" in evidence
    assert outputs["abuse_blocklists"]["listed_on"] == ["dbl.test"]
    assert "Acme Registrar" in outputs["facts"]["note"] and "abuse@acme-registrar.example" in outputs["facts"]["note"]
    assert "client hold" in outputs["facts"]["note"]
    assert outputs["contact_registrar"]["answers"]["Registrar ticket number"] == "ACME-4411"
    assert outputs["verify_delegation"]["answering"] == [f"127.0.0.1:{lab.ours.port}"]
    texts = [r.json["text"] for r in lab.hooks.received]
    assert len(texts) == 2 and "client hold" in texts[0] and "delegated again" in texts[1]


def test_dry_run_changes_nothing(lab: Lab, bg_home: Path) -> None:
    serial = lab.tld.soa_serial("test.")
    zone = lab.tld.zone_file("test.").read_text()
    result = run_json(
        ["run", "registrar-suspension", "--dry-run", "--yes", *input_args(lab.inputs(), lab.tmp)], cli_env(bg_home)
    )
    assert result.code == 0, result.stderr
    status = result.steps()
    assert status["rdap_status"] == "succeeded" and status["contact_registrar"] == "succeeded"
    assert status["notify_incident"] == "planned"
    assert status["verify_rdap"] == "skipped" and status["verify_delegation"] == "skipped"
    assert lab.hooks.received == []
    assert lab.tld.soa_serial("test.") == serial and lab.tld.zone_file("test.").read_text() == zone
    assert lab.rdap.hits(f"/rdap/domain/{DOMAIN}") == 1


def test_a_silent_registrar_is_escalated_rung_by_rung(lab: Lab, bg_home: Path, tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(TEAM)
    env = cli_env(bg_home, BREAKGLASS_TEAM=str(team))
    answers = {**QUESTIONS, "Registrar ticket number": "", "Who answered, and what they promised": "",
               "Time the registrar confirmed the release": lab.registry_lifts_the_hold}
    code = Operator(answers=answers).run(["run", "registrar-suspension", *input_args(lab.inputs(), lab.tmp)], env)
    records = audit_records(env)
    status = step_status(records)
    assert code == 0
    rungs = [f"escalation[{i}]" for i in range(4)]
    assert [status[r] for r in rungs] == ["succeeded"] * 4
    shown = {r["step"]: r for r in records if r["type"] == "step.started" and r.get("step") in rungs}
    texts = [str(shown[r]) for r in rungs]
    assert "Rung 1 of 4, the 24/7 line" in texts[0] and "Acme NOC, +1 555 0100" in texts[0]
    assert "Jo Account" in texts[1] and "Sam CEO" in texts[2] and "ceo@acme.example" in texts[2]
    assert "ICANN Contractual Compliance" in texts[3]
    # each rung is timeboxed: the deadline is escalation_minutes after the rung was shown
    for rec, text in zip((shown[r] for r in rungs), texts, strict=True):
        h, m = int(rec["ts"][11:13]), int(rec["ts"][14:16])
        deadline = re.search(r"If nobody answers by (\d\d):(\d\d) UTC", text)
        assert deadline is not None, text
        assert (int(deadline[1]) * 60 + int(deadline[2]) - (h * 60 + m + 30)) % 1440 in (0, 1439), (rec["ts"], text)


def test_the_delegation_checks_ask_the_tld_from_root_zone_data() -> None:
    """No .com server as a default: for a .jp or .de domain that would ask the wrong registry."""
    import yaml

    from tests.runbooks.operator import RUNBOOKS

    book = yaml.safe_load((RUNBOOKS / "registrar-suspension.yaml").read_text())
    assert "default" not in book["inputs"]["tld_server"]
    steps = {s["id"]: s for s in book["steps"]}
    steps.update({s["id"]: s for s in steps["first_checks"]["parallel"]})
    for sid in ("check_tld", "verify_delegation"):
        assert steps[sid]["action"] == "dns.authoritative" and steps[sid]["with"]["via_tld"] is True, sid
