"""registrar-suspension end to end: a BIND "TLD" (zone test.) that withdrew the delegation, our own BIND for
example.test, an RDAP server answering clientHold then released, a domain blocklist, a webhook receiver.

Live: the operator answers the registrar questions at a pseudo-terminal; while the run waits for the release,
the "registry" puts the delegation back (an RFC 2136 update to the TLD zone), and the verification steps
see the domain delegated and answering again. Dry-run: nothing posted, the TLD zone untouched, verification
skipped.
"""

from __future__ import annotations

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
}


class Lab:
    def __init__(self, tmp: Path, tld: BindServer, ours: BindServer, rdap: RdapServer) -> None:
        self.tmp, self.tld, self.ours, self.rdap = tmp, tld, ours, rdap
        held = synthetic_domain(DOMAIN, "2026-03-14T04:00:00Z", ["client hold", "client transfer prohibited"])
        released = synthetic_domain(DOMAIN, "2026-03-14T04:00:00Z", ["client transfer prohibited"])
        rdap.routes[f"/rdap/domain/{DOMAIN}"] = [Reply(body=held), Reply(body=released)]
        self.hooks = serve()

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
    assert op.seen_gates == ["notify_incident", "notify_resolved"]
    records = audit_records(env)
    status = step_status(records)
    assert status["check_tld"] == "succeeded"
    assert status["contact_registrar"] == "succeeded"
    assert status["escalate_registry"] == "skipped" and status["restore_domain"] == "skipped"
    assert status["verify_rdap"] == "succeeded" and status["verify_delegation"] == "succeeded"
    outputs = {r["step"]: r.get("output") for r in records if r["type"] == "step.succeeded"}
    assert outputs["check_tld"]["status"] == "NXDOMAIN"
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
