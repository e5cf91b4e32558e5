"""dnssec-broken end to end against real BIND: an authoritative ``named`` serving a signed parent (``test.``)
and a signed child (``example.test.``), and a second ``named`` that recurses and validates with the parent's
key as its trust anchor, so SERVFAIL-versus-CD is what a real validating resolver answers.

Expired signatures: the symptom and the cause are found, the re-sign command runs behind the gate, and the
resolver validates again. A DS left at the parent after a nameserver move: the runbook computes the DS to
submit from the live key, the "registrar" (the test, answering the ticket question) publishes it, and the
resolver validates again once the old DS's TTL has run out.

Both flush the zone from the resolver after the fix (``rndc flushtree``, the runbook's flush_command), as an
operator does on their own resolvers: BIND keeps a failed validation in its bad cache for 30 s whatever the
cache TTLs say (tests/lab/dnssec.py). The verification then validates at its first attempt, which each test
asserts; without the flush it would poll for 50 s. Each run posts the status page at the diagnosis, after the
fix (monitoring) and after the verification (resolved), at gates the operator answers.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bind import BindServer, zone_text
from tests.lab.dnssec import ValidatingResolver, ZoneKeys, require_tools
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, step_status

PARENT, CHILD = "test.", "example.test."
PARENT_TTL = 1  # the DS's TTL: how long the resolver keeps the stale one once the registrar fixed it
# The re-sign command returns once the server serves the new serial, as `rndc signing`/`rndc reload` followed by
# a check would: a verification racing named's reload would meet the old signatures (and the bad cache again).
WAIT_SERIAL = """\
import sys, time
import dns.message, dns.query
host, port, zone, serial = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        reply = dns.query.udp(dns.message.make_query(zone, "SOA"), host, port=port, timeout=0.5)
        if reply.answer and reply.answer[0][0].serial >= serial:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(f"{zone} not at serial {serial} after 10 s")
"""


class Lab:
    def __init__(self, tmp: Path, bind_factory: Callable[..., BindServer], *, stale_ds: bool, expired: bool) -> None:
        require_tools()
        self.tmp = tmp
        self.parent_keys = ZoneKeys.generate(tmp / "keys-parent", PARENT)
        self.child_keys = ZoneKeys.generate(tmp / "keys-child", CHILD)
        old = ZoneKeys.generate(tmp / "keys-old-provider", CHILD, algorithm="RSASHA256")
        child_text = zone_text(CHILD, "www IN A 192.0.2.7\n", serial=10)
        window = {"start": -32, "end": -2} if expired else {}
        self.auth = bind_factory({PARENT: self.parent_zone(old.ds if stale_ds else self.child_keys.ds),
                                  CHILD: self.child_keys.sign(child_text, **window)})
        self.resolver = ValidatingResolver(tmp / "resolver", self.auth, self.parent_keys).start()
        self.fixed_child = self.child_keys.sign(zone_text(CHILD, "www IN A 192.0.2.7\n", serial=11))

    def parent_zone(self, ds: str, serial: int = 1) -> str:
        records = f"example IN NS ns1.example.test.\nns1.example IN A 127.0.0.1\n{ds}\n"
        return self.parent_keys.sign(zone_text(PARENT, records, ttl=PARENT_TTL, serial=serial))

    def reload(self) -> None:
        assert self.auth._proc is not None
        os.kill(self.auth._proc.pid, signal.SIGHUP)  # named re-reads changed zone files on SIGHUP

    def resign_script(self) -> str:
        """The operator's re-sign command: the signer's fresh output put in place, then named reloaded."""
        fresh = self.tmp / "fresh.signed"
        fresh.write_text(self.fixed_child)
        assert self.auth._proc is not None
        wait = self.tmp / "wait_serial.py"
        wait.write_text(WAIT_SERIAL)
        script = self.tmp / "resign.sh"
        script.write_text(f"set -e\ncp {fresh} {self.auth.zone_file(CHILD)}\nkill -HUP {self.auth._proc.pid}\n"
                          f"{sys.executable} {wait} {self.auth.host} {self.auth.port} {CHILD} 11\n")
        return f"sh {script}"

    def registrar_publishes(self, ds: str) -> str:
        self.auth.zone_file(PARENT).write_text(self.parent_zone(ds, serial=2))
        self.reload()
        deadline = time.monotonic() + 10
        while self.auth.soa_serial(PARENT) != 2:  # the registry publishes before the registrar says it is done
            assert time.monotonic() < deadline, self.auth.log[-2000:]
            time.sleep(0.05)
        return "REG-4711"

    def inputs(self, **extra: Any) -> dict[str, Any]:
        return {"zone": "example.test", "nameservers": [self.auth.address], "parent_server": self.auth.address,
                "resolver": self.resolver.address, "names": ["www.example.test"],
                "flush_command": shlex.join(self.resolver.rndc("flushtree", "example.test")), **extra}

    def close(self) -> None:
        self.resolver.stop()


@pytest.fixture
def make_lab(tmp_path: Path, bind_factory: Callable[..., BindServer]) -> Iterator[Callable[..., Lab]]:
    labs: list[Lab] = []

    def make(**kwargs: bool) -> Lab:
        labs.append(Lab(tmp_path, bind_factory, **kwargs))
        return labs[-1]

    yield make
    for lab in labs:
        lab.close()


def _output(records: list[dict[str, Any]], step: str) -> dict[str, Any]:
    return next(r["output"] for r in records if r.get("step") == step and r["type"] in ("step.succeeded",
                                                                                        "step.failed"))


def _validated_at_once(records: list[dict[str, Any]]) -> bool:
    """The verification's first attempt found the resolver validating: the flush emptied its bad cache."""
    return not any(r["type"] == "step.retried" and r.get("step") == "verify" for r in records)


def _status_page(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The texts posted, in order: what customers read, from the audit log."""
    return [_output(records, s)["texts"] for s in ("status_first", "status_fixed", "status_resolved")]


def test_expired_signatures_are_found_and_re_signed(make_lab: Callable[..., Lab], bg_home: Path) -> None:
    lab = make_lab(stale_ds=False, expired=True)
    env = cli_env(bg_home)
    op = Operator()
    code = op.run(["run", "dnssec-broken", *input_args(lab.inputs(resign_command=lab.resign_script()), lab.tmp)],
                  env)
    assert code == 0, op.transcript
    assert op.seen_gates == ["status_first", "resign_apply", "flush_resolver", "status_fixed", "status_resolved"]
    records = audit_records(env)
    status = step_status(records)
    assert status["chain"] == "failed" and status["servers"] == "succeeded"
    assert status["resign"] == "succeeded" and status["resign_apply"] == "succeeded"
    assert status["replace_ds"] == "skipped" and status["verify"] == "succeeded"
    chain = _output(records, "chain")
    assert chain["problems"] == ["resolver_servfail_cd_works", "signature_expired"]
    assert chain["resolver"]["status"] == "SERVFAIL" and chain["resolver"]["cd_status"] == "NOERROR"
    assert {s["type"] for s in chain["signatures"] if s["status"] == "expired"} == {"DNSKEY", "SOA", "A"}
    verified = _output(records, "verify")
    assert verified["secure"] and verified["resolver"]["authenticated"] is True
    assert status["flush_resolver"] == "succeeded" and _validated_at_once(records)
    first, fixed, resolved = _status_page(records)
    assert first["en"].startswith("[Identified] Visitors whose internet provider checks DNSSEC")
    assert "example.test" in first["en"] and "example.test" in first["ja"]
    assert fixed["ja"].startswith("【経過観察】") and "Next update by" in fixed["en"]
    assert resolved["en"].startswith("[Resolved]") and "Next update" not in resolved["en"]


def test_stale_ds_after_a_nameserver_move_is_replaced(make_lab: Callable[..., Lab], bg_home: Path) -> None:
    lab = make_lab(stale_ds=True, expired=False)
    env = cli_env(bg_home)
    op = Operator(answers={"Registrar ticket or change number": lambda: lab.registrar_publishes(lab.child_keys.ds)})
    code = op.run(["run", "dnssec-broken", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    # the registrar changes the DS; from this machine only the flush and the status page
    assert op.seen_gates == ["status_first", "flush_resolver", "status_fixed", "status_resolved"]
    records = audit_records(env)
    status = step_status(records)
    assert status["resign"] == "skipped" and status["replace_ds"] == "succeeded"
    assert status["verify"] == "succeeded"
    chain = _output(records, "chain")
    assert chain["problems"] == ["resolver_servfail_cd_works", "ds_matches_no_dnskey", "ds_algorithm_not_signing"]
    assert chain["ds_source"] == "parent" and chain["ds"][0]["algorithm"] == 8
    # the DS the runbook told the operator to submit is exactly the one dnssec-dsfromkey makes from the KSK
    expected = lab.child_keys.ds.split()
    suggested = chain["suggested_ds"][0].split()
    assert suggested[0] == expected[0] and suggested[-4:-1] == expected[-4:-1]
    assert suggested[-1].lower() == expected[-1].lower()
    started = next(r for r in records if r.get("step") == "replace_ds" and r["type"] == "step.started")
    assert chain["suggested_ds"][0] in started["args"]["instructions"]
    assert _output(records, "verify")["resolver"]["authenticated"] is True
    assert _validated_at_once(records)
    assert [t["en"].split("]")[0] for t in _status_page(records)] == ["[Identified", "[Monitoring", "[Resolved"]
