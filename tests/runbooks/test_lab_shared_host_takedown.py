"""shared-host-takedown end to end: a real sshd as the backup host and the standby (backups as tar files),
an HTTPS standby for www.example.test, a BIND primary with TSIG, a webhook receiver.

Live: the newest site and mail backups and the shop's database dump travel backup host → this machine →
standby (SHA-256 verified), are unpacked or loaded at gated steps (the "database" is a command that writes
what it reads to a marker file), the restored tree is scanned for webshells, the standby is checked under the
real hostname, SPF is checked for the new address, the www and apex A records move (by the runbook
dns-failover, called as step switch_dns: its steps are recorded as switch_dns.<step>), and the final message
says what was restored. Compromised: the backups written after the compromise began are skipped, the older
one holds a webshell, and the operator's "no" at the decision stops the run before DNS moves. Expired
certificate on the standby: the run stops before DNS moves.
Dry-run: nothing lands on the standby, the zone and the webhook are untouched. Rollback: the standby dies at
the last switch gate, the check after the switch fails, and both records point at the shared host again,
with their TTL (the called runbook's `rollback: auto` undoes, against the real BIND).
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bind import BindServer, TsigKey, zone_text
from tests.lab.https import WWW, make_pki
from tests.lab.sshd import SshServer
from tests.runbooks.labweb import hook_url, serve, stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, run_json, step_status

ZONE = "example.test."
OLD, NEW = "192.0.2.80", "198.51.100.20"  # data in the zone only: nothing connects to them
QUESTIONS = {"Provider ticket number": "CHEAP-99812", "Data loss accepted since the backup (who agreed)": "CTO"}
WEBSHELL = "<?php eval(base64_decode($_POST['x'])); ?>\n"
DUMPS = {"shop-2024-11-01.sql.gz": "INSERT INTO orders VALUES (1); -- up to 31 October\n",
         "shop-2024-11-02.sql.gz": "INSERT INTO orders VALUES (1), (2); -- up to 1 November\n"}


def archive(path: Path, files: dict[str, str], mtime: float) -> None:
    src = path.parent / (path.name + ".src")
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    with tarfile.open(path, "w:gz") as tar:
        for name in files:
            tar.add(src / name, arcname=name)
    os.utime(path, (mtime, mtime))


class Lab:
    def __init__(self, tmp: Path, bind: BindServer, ssh: SshServer) -> None:
        self.tmp, self.bind, self.ssh = tmp, bind, ssh
        self.backups = tmp / "backups"
        self.backups.mkdir()
        archive(self.backups / "site-2024-11-01.tar.gz", {"index.html": "old build", "wp/cache.php": WEBSHELL},
                1_730_400_000)
        archive(self.backups / "site-2024-11-02.tar.gz", {"index.html": "bakery build 2024.11.02"}, 1_730_500_000)
        archive(self.backups / "mail-2024-11-02.tar.gz", {"anna/cur/1730500000.M1": "Subject: order\n"}, 1_730_500_000)
        for (name, dump), mtime in zip(DUMPS.items(), (1_730_400_000, 1_730_500_000), strict=True):
            (self.backups / name).write_bytes(gzip.compress(dump.encode()))
            os.utime(self.backups / name, (mtime, mtime))
        self.database = tmp / "database-loaded.sql"  # what the standby's "database" was fed
        self.standby_root = tmp / "standby"
        self.pki = make_pki(tmp)
        self.web = serve(self.pki.www)
        self.hooks = serve()

    def close(self) -> None:
        stop(self.web)
        stop(self.hooks)

    def inputs(self) -> dict[str, Any]:
        assert self.bind.tsig is not None
        s = self.ssh
        return {
            "domain": "example.test",
            "url": f"https://{WWW}:{self.web.server_address[1]}/",
            "public_address": "127.0.0.1",
            "provider_status_url": f"http://127.0.0.1:{self.hooks.server_address[1]}/status/503",
            "shared_host_ip": OLD,
            "backup_host": s.host,
            "backup_port": s.port,
            "backup_user": s.user,
            "backup_dir": str(self.backups),
            "standby_host": s.host,
            "standby_port": s.port,
            "standby_user": s.user,
            "standby_ip": NEW,
            "standby_address": "127.0.0.1",
            "upload_dir": str(self.standby_root / "upload"),
            "site_root": str(self.standby_root / "www"),
            "mail_root": str(self.standby_root / "mail"),
            "workdir": str(self.tmp / "work"),
            "db_backup_glob": "shop-*.sql.gz",
            "db_restore_command": ["sh", "-c", 'cat > "$0"', str(self.database)],
            "ssh_key_file": str(s.key_file),
            "known_hosts": str(s.known_hosts),
            "expect_text": "standby www.example.test",
            "ca_file": str(self.pki.ca_file),
            "dns_primary": self.bind.address,
            "nameservers": [self.bind.address],
            "tsig_name": self.bind.tsig.name,
            "webhook_url": hook_url(self.hooks),
        }

    def env(self, home: Path) -> dict[str, str]:
        assert self.bind.tsig is not None
        return cli_env(home, BREAKGLASS_TSIG_SECRET=self.bind.tsig.secret)

    def ttl(self, name: str) -> int | None:
        import dns.message
        import dns.query

        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.bind.port, timeout=2)
        return next((r.ttl for r in reply.answer if r.rdtype == 1), None)

    def a(self, name: str) -> list[str]:
        import dns.message
        import dns.query

        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.bind.port, timeout=2)
        return sorted(rd.address for r in reply.answer if r.rdtype == 1 for rd in r)


@pytest.fixture
def lab(tmp_path: Path, bind_factory: Callable[..., BindServer], sshd: SshServer) -> Iterator[Lab]:
    key = TsigKey.generate("takeover-key.")
    spf = f'@ IN TXT "v=spf1 ip4:{NEW} -all"'  # the new host may send for the domain
    zone = zone_text(ZONE, f"@ IN A {OLD}\nwww IN A {OLD}\n{spf}\n", serial=40, ttl=3600)
    lab = Lab(tmp_path, bind_factory({ZONE: zone}, tsig=key, update_zones=[ZONE]), sshd)
    yield lab
    lab.close()


def test_live_restore_and_switch_through_a_terminal(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)
    op = Operator(answers=QUESTIONS)
    code = op.run(["run", "shared-host-takedown", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    assert op.seen_gates == [
        "status_first",
        "upload_site",
        "upload_db",
        "upload_mail",
        "restore_site",
        "restore_db",
        "restore_mail",
        "notify_start",
        "switch_dns",
        "switch_dns.lower_ttl",
        "switch_dns.switch_a",
        "switch_dns.switch_apex",
        "customer_notice",
        "notify_done",
    ]
    assert (lab.standby_root / "www" / "index.html").read_text() == "bakery build 2024.11.02"
    assert (lab.standby_root / "mail" / "anna" / "cur" / "1730500000.M1").exists()
    assert lab.database.read_text() == DUMPS["shop-2024-11-02.sql.gz"]  # the newest dump, decompressed
    assert lab.a(f"{WWW}.") == [NEW] and lab.a(ZONE) == [NEW]
    status = step_status(audit_records(env))
    assert status["check_standby"] == "succeeded" and status["switch_dns.verify_authoritative"] == "succeeded"
    assert status["change_nameservers"] == "skipped" and status["switch_dns.switch_mx"] == "skipped"
    assert status["switch_dns"] == "succeeded"
    # This runbook tells customers; the DNS switch it calls posts nothing of its own (one post per stage).
    assert status["switch_dns.status_first"] == status["switch_dns.customer_notice"] == "skipped"
    told = [(r["step"], r["output"]["stage"]) for r in audit_records(env) if r["type"] == "step.succeeded"
            and isinstance(r.get("output"), dict) and "texts" in r["output"]]
    assert told == [("status_first", "identified"), ("customer_notice", "resolved")]
    assert status["scan_webshells"] == "succeeded" and status["webshell_decision"] == "skipped"
    assert status["spf_new_host"] == "succeeded" and status["restore_without_backup"] == "skipped"
    texts = [r.json["text"] for r in lab.hooks.received if r.path.startswith("/services/")]
    assert len(texts) == 2 and "site-2024-11-02.tar.gz" in texts[0]
    assert ("Restored: site from site-2024-11-02.tar.gz, database from shop-2024-11-02.sql.gz, mailboxes."
            in texts[1]) and "Still open" not in texts[1]


def test_dry_run_changes_nothing(lab: Lab, bg_home: Path) -> None:
    zone = lab.bind.zone_file(ZONE).read_text()
    result = run_json(
        ["run", "shared-host-takedown", "--dry-run", "--yes", *input_args(lab.inputs(), lab.tmp)], lab.env(bg_home)
    )
    assert result.code == 0, result.stderr
    status = result.steps()
    assert status["latest_site_backup"] == "succeeded" and status["download_site"] == "succeeded"
    assert status["upload_site"] == "planned" and status["restore_site"] == "planned"
    assert status["restore_db"] == "planned" and status["scan_webshells"] == "skipped"
    assert status["switch_dns.switch_a"] == "planned" and status["switch_dns.verify_authoritative"] == "skipped"
    assert not lab.standby_root.exists(), "nothing may land on the standby in a dry-run"
    assert lab.a(f"{WWW}.") == [OLD] and lab.bind.zone_file(ZONE).read_text() == zone
    assert [r for r in lab.hooks.received if r.path.startswith("/services/")] == []


def test_failed_check_after_the_switch_rolls_dns_back(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)

    def standby_dies(gate: str) -> None:
        if gate == "switch_dns.switch_apex":
            stop(lab.web)

    op = Operator(answers=QUESTIONS, on_gate=standby_dies)
    code = op.run(["run", "shared-host-takedown", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 1, op.transcript
    assert {"switch_dns.switch_apex.rollback", "switch_dns.switch_a.rollback"} <= set(op.seen_gates)
    assert lab.a(f"{WWW}.") == [OLD] and lab.a(ZONE) == [OLD]
    assert lab.ttl(f"{WWW}.") == 3600 and lab.ttl(ZONE) == 3600
    records = audit_records(env)
    status = step_status(records)
    assert status["switch_dns.verify_site"] == "failed" and status["switch_dns"] == "failed"
    assert status["switch_dns.switch_a"] == "rollback.succeeded"
    assert status["switch_dns.switch_apex"] == "rollback.succeeded"
    assert status["switch_dns.lower_ttl"] == "rollback.succeeded"
    assert records[-1]["status"] == "rolled_back"


def test_backups_after_the_compromise_are_skipped_and_a_webshell_stops_the_switch(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)
    inputs = {**lab.inputs(), "compromise_started": "2024-11-01T12:00:00Z", "restore_mail": False}
    op = Operator(answers=QUESTIONS, ticks={"Every finding inspected": "n"})
    code = op.run(["run", "shared-host-takedown", *input_args(inputs, lab.tmp)], env)
    assert code == 1, op.transcript
    records = audit_records(env)
    status = step_status(records)
    outputs = {r["step"]: r.get("output") for r in records if r["type"] in ("step.succeeded", "step.failed")}
    # the 2 November backups were written after the compromise began: the 1 November ones are restored
    assert outputs["latest_site_backup"]["stdout"].split()[1:2] == ["1"]
    assert (lab.standby_root / "www" / "index.html").read_text() == "old build"
    assert lab.database.read_text() == DUMPS["shop-2024-11-01.sql.gz"]
    assert status["scan_webshells"] == "failed"
    assert outputs["scan_webshells"]["stdout"].strip() == str(lab.standby_root / "www" / "wp" / "cache.php")
    assert status["webshell_decision"] == "failed"
    assert "switch_dns" not in op.seen_gates and status.get("switch_dns") is None
    assert lab.a(f"{WWW}.") == [OLD] and lab.a(ZONE) == [OLD]
    assert [r for r in lab.hooks.received if r.path.startswith("/services/")] == []


def test_an_expired_certificate_on_the_standby_stops_before_dns_moves(lab: Lab, bg_home: Path) -> None:
    stop(lab.web)
    lab.web = serve(lab.pki.expired)
    env = lab.env(bg_home)
    op = Operator(answers=QUESTIONS)
    code = op.run(["run", "shared-host-takedown", *input_args({**lab.inputs(), "restore_mail": False}, lab.tmp)], env)
    assert code == 1, op.transcript
    status = step_status(audit_records(env))
    assert status["restore_site"] == "succeeded" and status["check_standby"] == "failed"
    assert "switch_dns" not in op.seen_gates and status.get("switch_dns") is None
    assert lab.a(f"{WWW}.") == [OLD] and lab.a(ZONE) == [OLD]
