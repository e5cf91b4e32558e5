"""site-defaced-or-skimmed end to end: a shop's web root on this machine, served over HTTPS for
www.example.test (lab CA) and reached over a real sshd as the web host; its checkout carries an injected
<script src=https://evil.example/...> (test data only: nothing fetches it); a team file with the card
acquirer, the forensic investigator, the DPO and the lawyer, and APPI + GDPR.

Live: the pages are fetched as evidence (hash, script origins), the changed files listed, the web root copied
off the host; the skimmer sends the run down the card path (acquirer, deadlines, customer notice); the
maintenance command takes the checkout offline (gated) and the isolation is checked from outside; the
restore puts the clean release back (gated) and the checkout is verified clean. Customers are told at gates:
the status page once the checkout is offline, the notice to card holders (what to check, what we never ask)
before the restore, "resolved" only after the checkout verified clean. Dry-run: the evidence is taken,
nothing on the host changes, nothing is posted.
"""

from __future__ import annotations

import functools
import ssl
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.lab.https import WWW, make_pki
from tests.lab.sshd import SshServer
from tests.runbooks.labweb import hook_url, serve, stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, run_json, step_status

PAY = "https://js.pay.example"
CLEAN = f'<html><head><script src="/js/shop.js"></script><script src="{PAY}/v3/"></script></head>' \
        "<body>checkout</body></html>\n"
SKIMMED = CLEAN.replace("</head>", '<script src="https://evil.example/s.js?v=2"></script></head>')
MAINTENANCE = "<html><body>Back soon: maintenance</body></html>\n"
TEAM = """\
contacts:
  card_acquirer: {name: Acme Acquiring, phone: "+81 3 5555 0200", email: risk@acquirer.example}
  forensics: {name: PFI Partners, phone: "+81 3 5555 0300"}
  dpo: {name: Hanako Sato, phone: "+81 3 5555 0101", email: dpo@example.jp}
  lawyer: {name: Taro Kobayashi, phone: "+81 3 5555 0102"}
legal:
  regimes: [appi, gdpr]
"""
QUESTIONS = {
    "Acquirer case number": "ACQ-5521",
    "PFI investigation required (yes / no)": "yes",
    "Authority reference or case number": "PPC-0001",
}


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        return None


def serve_root(root: Path, cert: tuple[Path, Path]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


class Lab:
    def __init__(self, tmp: Path, ssh: SshServer) -> None:
        self.tmp, self.ssh = tmp, ssh
        self.root, self.release = tmp / "www", tmp / "release"
        for base, checkout in ((self.root, SKIMMED), (self.release, CLEAN)):
            (base / "checkout").mkdir(parents=True)
            (base / "js").mkdir()
            (base / "index.html").write_text("<html><body>shop</body></html>\n")
            (base / "checkout" / "index.html").write_text(checkout)
            (base / "js" / "shop.js").write_text("// the shop's own script\n")
        (self.root / "maintenance.html").write_text(MAINTENANCE)
        self.pki = make_pki(tmp)
        self.web = serve_root(self.root, self.pki.www)
        self.hooks = serve()
        self.team = tmp / "team.yaml"
        self.team.write_text(TEAM)
        self.evidence = tmp / "evidence"

    def close(self) -> None:
        self.web.shutdown()
        self.web.server_close()
        stop(self.hooks)

    def url(self, path: str) -> str:
        return f"https://{WWW}:{self.web.server_address[1]}{path}"

    def inputs(self) -> dict[str, Any]:
        s, root = self.ssh, self.root
        return {
            "checkout_url": self.url("/checkout/"),
            "shop_url": self.url("/"),
            "allowed_script_origins": [PAY],
            "public_address": "127.0.0.1",
            "ca_file": str(self.pki.ca_file),
            "web_host": s.host,
            "ssh_port": s.port,
            "ssh_user": s.user,
            "ssh_key_file": str(s.key_file),
            "known_hosts": str(s.known_hosts),
            "web_root": str(root),
            "evidence_dir": str(self.evidence),
            # The altered files stay where they are (evidence); the checkout is moved aside, not deleted.
            "maintenance_command": f"mv {root}/checkout {root}/checkout.quarantine && mkdir {root}/checkout"
                                   f" && cp {root}/maintenance.html {root}/checkout/index.html",
            "restore_command": f"rm -r {root}/checkout && cp -r {self.release}/checkout {root}/checkout",
            "discovered_at": "2026-11-30T01:20:00Z",
            "webhook_url": hook_url(self.hooks),
        }

    def env(self, home: Path) -> dict[str, str]:
        return cli_env(home, BREAKGLASS_TEAM=str(self.team))


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Iterator[Lab]:
    lab = Lab(tmp_path, sshd)
    yield lab
    lab.close()


def test_live_evidence_isolation_card_path_and_clean_restore(lab: Lab, bg_home: Path) -> None:
    env = lab.env(bg_home)
    op = Operator(answers=QUESTIONS)
    code = op.run(["run", "site-defaced-or-skimmed", *input_args(lab.inputs(), lab.tmp)], env)
    assert code == 0, op.transcript
    assert op.seen_gates == ["notify_security", "isolate_host", "status_first", "card_notice", "clean_restore",
                             "notify_resolved", "status_resolved"]
    records = audit_records(env)
    status = step_status(records)
    assert status["checkout_clean"] == "failed"  # the skimmer, found in the evidence
    assert status["isolate_dns"] == "skipped" and status["isolate_manual"] == "skipped"
    assert status["isolation_holds"] == "succeeded"
    for step in ("card_acquirer", "forensics", "legal_deadlines", "legal_notification", "customer_notice"):
        assert status[step] == "succeeded", step
    assert status["verify_checkout"] == "succeeded"
    outputs = {r["step"]: r.get("output") for r in records if r["type"] in ("step.succeeded", "step.failed")}
    assert outputs["evidence_pages[0]"]["unexpected_script_origins"] == ["https://evil.example"]
    facts = outputs["facts"]["note"]
    assert "unexpected: https://evil.example" in facts and f"{lab.root}/checkout/index.html" in facts
    # The evidence: the skimmed checkout as it was, off the host; the altered files still on it, aside.
    assert "evil.example" in (lab.evidence / "webroot" / "checkout" / "index.html").read_text()
    assert (lab.root / "checkout.quarantine" / "index.html").read_text() == SKIMMED
    assert (lab.root / "checkout" / "index.html").read_text() == CLEAN
    assert outputs["isolation_probe"]["body_excerpt"] == MAINTENANCE
    assert outputs["verify_checkout"]["script_origins"] == [lab.url(""), PAY]
    finished = [r for r in records if r["type"] == "run.finished"][0]
    due = [i["text"] for i in finished["open"] if i["kind"] == "due"]
    assert any(t.startswith("GDPR notification of the breach") for t in due)
    assert any(t.startswith("Subresource Integrity") for t in due)
    posted = [r.json["text"] for r in lab.hooks.received]
    assert len(posted) == 2 and "card skimmer suspected" in posted[0]
    first, notice, resolved = (outputs[s]["texts"] for s in ("status_first", "card_notice", "status_resolved"))
    shop = lab.inputs()["shop_url"]
    assert first["en"].startswith(f"[Investigating] Our online shop {shop} is offline")
    assert notice["en"].startswith(f"[Identified] If you paid by card in our online shop {shop} recently")
    assert "check your card statements" in notice["en"] and "security code or PIN" in notice["en"]
    assert notice["ja"].startswith("【原因特定】 最近、当社オンラインショップ") and "決してありません" in notice["ja"]
    assert resolved["ja"].startswith("【解決】") and "次回" not in resolved["ja"]
    assert not any("evil.example" in t for texts in (first, notice, resolved) for t in texts.values())


def test_dry_run_takes_the_evidence_and_changes_nothing(lab: Lab, bg_home: Path) -> None:
    result = run_json(["run", "site-defaced-or-skimmed", "--dry-run", "--yes", *input_args(lab.inputs(), lab.tmp)],
                      lab.env(bg_home))
    assert result.code == 0, result.stderr
    status = result.steps()
    assert status["copy_webroot"] == "succeeded" and status["changed_files"] == "succeeded"
    assert status["isolate_host"] == "planned" and status["clean_restore"] == "planned"
    assert status["verify_checkout"] == "skipped"
    assert status["status_first"] == "planned" and status["status_resolved"] == "skipped"
    assert (lab.root / "checkout" / "index.html").read_text() == SKIMMED
    assert not (lab.root / "checkout.quarantine").exists()
    assert lab.hooks.received == []
