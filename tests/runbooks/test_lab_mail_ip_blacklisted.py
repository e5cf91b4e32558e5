"""mail-ip-blacklisted end to end: BIND serving our domain, its reverse zone and a blocklist (bl.test) that
lists the relay's IP; a real sshd standing in for the mail host (log, queue and spool as files); aiosmtpd as
our relay and as the outside receiver of the test message; a webhook receiver.

Live: Gmail's rejection in the "log" is named, the source is found there, only the offending sender's queued
mail is held over SSH at a typed-confirmation gate (the sender reaches the script as its own argument), the
list operator delists us while we answer the delisting question, the test message lands in the outside
mailbox, and the status-page texts are in the log.
Dry-run: the spool, the mailbox and the webhook are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.bind import BindServer, zone_text
from tests.lab.smtp import RecordingHandler, SmtpServer
from tests.lab.sshd import SshServer
from tests.runbooks.labweb import hook_url, serve, stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, run_json, step_status

IP = "203.0.113.25"  # data in DNS only: nothing connects to it
LOG = f"""\
Nov  2 09:12:01 mail postfix/smtp[2211]: 4XyZ1: to=<a@customer.example>, status=bounced (host said: 554 5.7.1 \
Client host [{IP}] blocked using bl.test)
Nov  2 09:13:00 mail postfix/smtpd[2300]: 4XyZ2: client=unknown[192.0.2.99], sasl_method=LOGIN, \
sasl_username=newsletter@example.test
Nov  2 09:13:01 mail postfix/smtpd[2300]: 4XyZ3: client=unknown[192.0.2.99], sasl_method=LOGIN, \
sasl_username=newsletter@example.test
Nov  2 09:13:05 mail postfix/smtpd[2301]: 4XyZ4: client=office[192.0.2.5], sasl_method=LOGIN, \
sasl_username=billing@example.test
Nov  2 09:14:00 mail postfix/smtp[2212]: 4XyZ5: to=<x@gmail.example>, relay=gmail-smtp-in.l.google.com[192.0.2.26]:25, \
status=bounced (host said: 550-5.7.1 [{IP}] Our system has detected that this message is likely unsolicited mail. gsmtp)
"""
SENDERS = {"4XyZ2": "newsletter@example.test", "4XyZ3": "newsletter@example.test", "4XyZ4": "billing@example.test"}
# Stand-ins for the Postfix scripts: move the queued files of sender $1 (never pasted into the script).
HOLD = ('cd {d}/spool/active && mkdir -p ../hold && for f in *; do grep -qF -- "from=<$1>" "$f" && mv "$f" ../hold/; '
        'done; true')
RELEASE = 'cd {d}/spool/hold && for f in *; do grep -qF -- "from=<$1>" "$f" && mv "$f" ../active/; done; true'
ZONE = f"""\
@ IN MX 10 mail.example.test.
mail IN A {IP}
@ IN TXT "v=spf1 ip4:{IP} -all"
_dmarc IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.test"
default._domainkey IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
"""


class Lab:
    def __init__(self, tmp: Path, bind: BindServer, ssh: SshServer) -> None:
        self.tmp, self.bind, self.ssh = tmp, bind, ssh
        self.host_dir = tmp / "mailhost"
        (self.host_dir / "spool" / "active").mkdir(parents=True)
        (self.host_dir / "mail.log").write_text(LOG)
        (self.host_dir / "mailq.txt").write_text(
            "4XyZ2*  2048 Sat Nov  2 09:13:00  newsletter@example.test\n-- 6 Kbytes in 3 Requests.\nqueued: 3\n"
        )
        for name, sender in SENDERS.items():
            (self.host_dir / "spool" / "active" / name).write_text(f"queued message {name} from=<{sender}>\n")
        self.relay = SmtpServer(RecordingHandler(), ident="relay.example.test ESMTP").__enter__()
        self.receiver = SmtpServer(RecordingHandler(), ident="mx.receiver.test ESMTP").__enter__()
        self.hooks = serve()

    def close(self) -> None:
        self.relay.__exit__()
        self.receiver.__exit__()
        stop(self.hooks)

    def spool(self) -> dict[str, list[str]]:
        root = self.host_dir / "spool"
        return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted(root.iterdir())}

    def inputs(self) -> dict[str, Any]:
        d = self.host_dir
        return {
            "domain": "example.test",
            "sending_ips": [IP],
            "mail_host": self.ssh.host,
            "ssh_port": self.ssh.port,
            "ssh_user": self.ssh.user,
            "ssh_key_file": str(self.ssh.key_file),
            "known_hosts": str(self.ssh.known_hosts),
            "relay": self.relay.address,
            "bounce_command": f"grep -hiE 'blocked|listed|status=bounced' {d}/mail.log | tail -n 30",
            "queue_command": f"cat {d}/mailq.txt",
            "senders_command": f"grep -hoE 'sasl_username=[^ ,]+' {d}/mail.log | sort | uniq -c | sort -rn",
            "offending_sender": "newsletter@example.test",  # from the alert; the operator's answer wins
            "hold_script": HOLD.format(d=d),
            "release_script": RELEASE.format(d=d),
            "resolver": self.bind.address,
            "blocklists": ["bl.test"],
            "test_recipient": "deliverability@receiver.test",
            "probe_mx": self.receiver.address,
            "webhook_url": hook_url(self.hooks),
        }

    def list_operator_delists(self) -> str:
        import dns.query
        import dns.update

        update = dns.update.UpdateMessage("bl.test.")
        update.delete("25.113.0.203.bl.test.")
        assert dns.query.tcp(update, "127.0.0.1", port=self.bind.port, timeout=5).rcode() == 0
        return "BL-TEST-1234"


@pytest.fixture
def lab(tmp_path: Path, bind_factory: Callable[..., BindServer], sshd: SshServer) -> Iterator[Lab]:
    bind = bind_factory(
        {
            "example.test.": zone_text("example.test.", ZONE),
            "113.0.203.in-addr.arpa.": zone_text("113.0.203.in-addr.arpa.", "25 IN PTR mail.example.test."),
            "bl.test.": zone_text("bl.test.", '25.113.0.203 IN A 127.0.0.2\n25.113.0.203 IN TXT "spam trap hits"'),
        },
        update_zones=["bl.test."],
    )
    lab = Lab(tmp_path, bind, sshd)
    yield lab
    lab.close()


def test_live_run_holds_the_queue_and_proves_delivery(lab: Lab, bg_home: Path) -> None:
    env = cli_env(bg_home)
    answers = {
        "Source (open relay, compromised account, web form, none found)": "compromised account",
        "Envelope sender to hold (e.g. newsletter@example.com)": "newsletter@example.test",
        "Shared with other tenants (yes / no)": "no",
        "Ticket or reference number": lab.list_operator_delists,  # asked per listing (a loop item)
        "Case or ticket number at the receiver": "GPT-1",  # asked per rejecting receiver: Gmail here
    }
    # The held mail stays held: the operator skips the release until the spam is sorted out.
    op = Operator(answers=answers, gates={"release_queue": "skip"})
    code = op.run(["run", "mail-ip-blacklisted", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    assert op.seen_gates == ["status_first", "stop_source", "notify_incident", "test_message", "release_queue",
                             "notify_done", "status_update"]
    # Only the offending sender's mail is held: billing's invoice is still on its way.
    assert lab.spool() == {"active": ["4XyZ4"], "hold": ["4XyZ2", "4XyZ3"]}
    assert len(lab.receiver.handler.messages) == 1
    assert lab.receiver.handler.messages[0]["to"] == ["deliverability@receiver.test"]
    records = audit_records(env)
    status = step_status(records)
    assert status["release_queue"] == "skipped" and status["verify_delisted"] == "succeeded"
    out = {r["step"]: r.get("output") for r in records if r["type"] == "step.succeeded"}
    assert out["blocklists"]["listed_on"] == ["bl.test"]
    assert "newsletter@example.test" in out["top_senders"]["stdout"].splitlines()[0]
    assert out["auth_records"]["reverse"]["fcrdns"] is True and out["auth_records"]["spf"]["status"] == "ok"
    assert "spam trap hits" in out["listing_facts"]["note"]
    gate = next(r for r in records if r["type"] == "gate.approved" and r["gate"] == "stop_source")
    assert gate["how"] == "tty" and gate["answer"] == lab.ssh.host
    assert len(lab.hooks.received) == 2
    rejected = out["rejections"]
    assert [(r["id"], r["count"], r["codes"]) for r in rejected["receivers"]] == [("gmail", 1, ["550 5.7.1"])]
    assert status["delist_receivers[0]"] == "succeeded" and status["warm_up"] == "succeeded"
    hold = next(r for r in records if r["type"] == "step.started" and r["step"] == "stop_source")
    assert hold["args"]["command"][-2:] == ["hold", "newsletter@example.test"]
    posted = [out[s]["texts"] for s in ("status_first", "status_update")]
    assert posted[0]["en"].startswith("[Investigating] Some e-mail from example.test")
    assert posted[1]["ja"].startswith("【解決】") and "次回" not in posted[1]["ja"]  # resolved: no next update


def test_a_sender_is_an_argument_never_shell(lab: Lab, bg_home: Path) -> None:
    """A sender typed with shell syntax in it reaches the script as one argument: nothing runs, nothing moves."""
    env = cli_env(bg_home)
    evil = f"x@example.test; touch {lab.tmp}/pwned"
    answers = {
        "Source (open relay, compromised account, web form, none found)": "web form",
        "Envelope sender to hold (e.g. newsletter@example.com)": evil,
        "Shared with other tenants (yes / no)": "no",
        "Ticket or reference number": lab.list_operator_delists,
        "Case or ticket number at the receiver": "C-1",
    }
    op = Operator(answers=answers, gates={"release_queue": "skip"})
    assert op.run(["run", "mail-ip-blacklisted", *input_args(lab.inputs(), lab.tmp)], env) == 0, op.transcript
    assert "stop_source" in op.seen_gates
    assert not (lab.tmp / "pwned").exists()
    assert lab.spool()["active"] == ["4XyZ2", "4XyZ3", "4XyZ4"]


def test_dry_run_changes_nothing(lab: Lab, bg_home: Path) -> None:
    spool = lab.spool()
    result = run_json(
        ["run", "mail-ip-blacklisted", "--dry-run", "--yes", *input_args(lab.inputs(), lab.tmp)], cli_env(bg_home)
    )
    assert result.code == 0, result.stderr
    status = result.steps()
    assert status["outbound_queue"] == "succeeded" and status["blocklists"] == "succeeded"
    assert status["stop_source"] == "planned" and status["test_message"] == "planned"
    assert status["verify_delisted"] == "skipped"
    assert lab.spool() == spool
    assert lab.receiver.handler.messages == [] and lab.relay.handler.messages == []
    assert lab.hooks.received == []
