"""dns-failover end to end against a real BIND primary (TSIG), an HTTPS standby and a webhook receiver.

Live: gates answered at a pseudo-terminal, the A record moves to the standby with its TTL lowered first.
Dry-run: the zone is byte-for-byte the same and no webhook was posted. Rollback: the standby dies while the
switch gate is open, the post-switch check fails, and the zone serves the original A record (and TTL) again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import free_port
from tests.lab.bind import BindServer, TsigKey, zone_text
from tests.lab.https import WWW, make_pki
from tests.runbooks.labweb import hook_url, serve, stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, run_json, step_status

ZONE = "example.test."
PRIMARY_IP, STANDBY_IP = "192.0.2.10", "198.51.100.7"  # data in the zone only: nothing connects to them


class Lab:
    def __init__(self, tmp: Path, bind: BindServer) -> None:
        self.tmp = tmp
        self.bind = bind
        self.pki = make_pki(tmp)
        self.standby = serve(self.pki.www)
        self.hooks = serve(None)
        self.dead_port = free_port()  # the primary origin: nothing listens here

    def close(self) -> None:
        for server in (self.standby, self.hooks):
            stop(server)

    def inputs(self) -> dict[str, Any]:
        port = self.standby.server_address[1]
        assert self.bind.tsig is not None
        return {
            "domain": "example.test",
            "hostname": WWW,
            "url": f"https://{WWW}:{port}/",
            "public_address": "127.0.0.1",
            "primary_ip": PRIMARY_IP,
            "standby_ip": STANDBY_IP,
            "primary_check_url": f"https://{WWW}:{self.dead_port}/",
            "primary_address": "127.0.0.1",
            "standby_address": "127.0.0.1",
            "expect_text": "standby www.example.test",
            "ca_file": str(self.pki.ca_file),
            "dns_primary": self.bind.address,
            "nameservers": [self.bind.address],
            "tsig_name": self.bind.tsig.name,
            "low_ttl": 60,
            "ttl_wait_max": 0,
            "resolvers": [self.bind.address],
            "webhook_url": hook_url(self.hooks),
        }

    def env(self, home: Path) -> dict[str, str]:
        assert self.bind.tsig is not None
        return cli_env(home, BREAKGLASS_TSIG_SECRET=self.bind.tsig.secret)

    def a_record(self) -> tuple[list[str], int | None]:
        import dns.message
        import dns.query

        reply = dns.query.udp(dns.message.make_query(f"{WWW}.", "A"), "127.0.0.1", port=self.bind.port, timeout=2)
        rrsets = [r for r in reply.answer if r.rdtype == 1]
        return sorted(rd.address for r in rrsets for rd in r), (rrsets[0].ttl if rrsets else None)


@pytest.fixture
def lab(tmp_path: Path, bind_factory: Callable[..., BindServer]) -> Iterator[Lab]:
    key = TsigKey.generate("failover-key.")
    records = f"www IN A {PRIMARY_IP}\n@ IN MX 10 mail.example.test.\nmail IN A 127.0.0.1\n"
    bind = bind_factory({ZONE: zone_text(ZONE, records, serial=10, ttl=300)}, tsig=key, update_zones=[ZONE])
    lab = Lab(tmp_path, bind)
    yield lab
    lab.close()


def test_live_failover_through_a_terminal(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)
    op = Operator()
    code = op.run(["run", "dns-failover", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    assert lab.a_record() == ([STANDBY_IP], 60)
    assert op.seen_gates == ["status_first", "notify_start", "lower_ttl", "switch_a", "status_fixed", "customer_notice",
                             "notify_done"]
    status = step_status(audit_records(env))
    assert status["probe_origin"] == "failed" and status["primary_is_down"] == "succeeded"
    assert status["switch_a"] == "succeeded" and status["verify_site"] == "succeeded"
    assert status["switch_aaaa"] == "skipped" and status["switch_mx"] == "skipped"
    texts = [r.json["text"] for r in lab.hooks.received]
    assert len(texts) == 2 and "failing over" in texts[0] and STANDBY_IP in texts[1]
    # Customers were told, in order: identified before the switch, monitoring after it, and resolved once the
    # resolvers follow (the texts are recorded for the operator to post: the lab gives no status-page URL).
    told = {r["step"]: r["output"] for r in audit_records(env) if r["type"] == "step.succeeded"
            and r["step"] in ("status_first", "status_fixed", "customer_notice")}
    assert [o["stage"] for o in told.values()] == ["identified", "monitoring", "resolved"]
    assert told["customer_notice"]["texts"]["en"].startswith(f"[Resolved] {WWW} was unavailable")
    approved = [r for r in audit_records(env) if r["type"] == "gate.approved"]
    assert {r["gate"]: r["how"] for r in approved}["switch_a"] == "tty"
    secret = lab.bind.tsig.secret if lab.bind.tsig else ""
    log = (bg_home).rglob("*.jsonl")
    assert all(secret not in p.read_text() for p in log)


def test_dry_run_changes_nothing(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)
    zone_before = lab.bind.zone_file(ZONE).read_text()
    serial_before = lab.bind.soa_serial(ZONE)
    result = run_json(["run", "dns-failover", "--dry-run", "--yes", *input_args(lab.inputs(), lab.tmp)], env)
    assert result.code == 0, result.stderr
    status = result.steps()
    assert status["lower_ttl"] == "planned" and status["switch_a"] == "planned"
    assert status["notify_start"] == "planned"
    assert status["verify_authoritative"] == "skipped" and status["verify_site"] == "skipped"
    plan = next(e for e in result.events if e.get("type") == "step.planned" and e["step"] == "switch_a")
    # the TTL was not lowered (only planned), so the switch plan shows that change too
    assert plan["summary"] == f"A {WWW} {PRIMARY_IP} → {STANDBY_IP} (ttl 300 → 60)"
    assert lab.a_record() == ([PRIMARY_IP], 300)
    assert lab.bind.soa_serial(ZONE) == serial_before
    assert lab.bind.zone_file(ZONE).read_text() == zone_before
    assert lab.hooks.received == []


def test_failed_verification_rolls_the_zone_back(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)

    def standby_dies(gate: str) -> None:
        if gate == "switch_a":
            stop(lab.standby)  # the standby falls over just as we switch to it

    op = Operator(on_gate=standby_dies)
    code = op.run(["run", "dns-failover", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 1, op.transcript
    assert "switch_a.rollback" in op.seen_gates and "lower_ttl.rollback" in op.seen_gates
    assert lab.a_record() == ([PRIMARY_IP], 300)
    records = audit_records(env)
    status = step_status(records)
    assert status["verify_site"] == "failed"
    assert status["switch_a"] == "rollback.succeeded" and status["lower_ttl"] == "rollback.succeeded"
    assert records[-1]["status"] == "rolled_back"
