"""tls-certificate-expired end to end: real TLS servers on 127.0.0.1 (HTTPS with HSTS, SMTP and IMAP with
STARTTLS) serving broken certificates from a lab CA (root → intermediate → leaf), an install command run
behind the gate, and verification on every endpoint, mail ports included.

Live: every problem is named for its endpoint, the renewal instructions keep HSTS and say why, the gate runs
the install command, every endpoint then serves the new certificate, and the next renewal date is left open.
A server the install command forgets keeps serving the old certificate, and the run fails at verification.
The status page (gated, as the operator posts it) says what visitors see once the checks found a certificate
clients refuse, and is resolved only after every endpoint verified: never while one still fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.certs import ImapStartTls, Leaf, Pki, ServedFiles, serve_web
from tests.lab.smtp import RecordingHandler, SmtpServer
from tests.runbooks.labweb import stop
from tests.runbooks.operator import Operator, audit_records, cli_env, input_args, step_status

WWW, APEX, MAIL = "www.example.test", "example.test", "mail.example.test"
HSTS = "max-age=63072000; includeSubDomains; preload"


class Lab:
    """Four endpoints, each wrong in its own way, and a renewed certificate for all of them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pki = Pki(tmp / "pki")
        self.www = ServedFiles(tmp / "www", self.pki.leaf(WWW, days=-2, names=[WWW, APEX]))
        self.apex = ServedFiles(tmp / "apex", self.pki.leaf(APEX, names=[WWW, APEX], chain=False))
        self.smtp_files = ServedFiles(tmp / "smtp", self.pki.leaf(MAIL, days=-2))
        self.imap_files = ServedFiles(tmp / "imap", self.pki.leaf("imap.other.test"))
        self.renewed: Leaf = self.pki.leaf(WWW, days=90, names=[WWW, APEX, MAIL])
        self.web = serve_web(self.www, hsts=HSTS)
        self.apex_web = serve_web(self.apex)
        self.smtp = SmtpServer(RecordingHandler(), tls=self.smtp_files).__enter__()  # type: ignore[arg-type]
        self.imap = ImapStartTls(self.imap_files)

    def close(self) -> None:
        stop(self.web)
        stop(self.apex_web)
        self.smtp.__exit__()
        self.imap.close()

    def install_script(self, forget_imap: bool = False) -> str:
        """What the operator's deploy script does: copy the renewed files where each server reads them."""
        served = [self.www, self.apex, self.smtp_files] + ([] if forget_imap else [self.imap_files])
        lines = [f"cp {self.renewed.key} {f.key} && cp {self.renewed.cert} {f.cert}" for f in served]
        script = self.tmp / "install-cert.sh"
        script.write_text("set -e\n" + "\n".join(lines) + "\necho installed and reloaded\n")
        return f"sh {script}"

    def inputs(self, **extra: Any) -> dict[str, Any]:
        return {
            "domain": APEX,
            "web_hosts": [f"{WWW}:{self.web.server_address[1]}", f"{APEX}:{self.apex_web.server_address[1]}"],
            "mail_hosts": [f"smtp://{MAIL}:{self.smtp.port}", f"imap://{MAIL}:{self.imap.port}"],
            "connect_to": "127.0.0.1",
            "ca_file": str(self.pki.root_file),
            **extra,
        }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def _outputs(records: list[dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    return {r["step"]: r["output"] for r in records
            if r.get("step", "").startswith(prefix + "[") and r["type"] in ("step.succeeded", "step.failed")}


def test_every_endpoint_named_fixed_and_verified(lab: Lab, bg_home: Path) -> None:
    env = cli_env(bg_home)
    op = Operator()
    code = op.run(["run", "tls-certificate-expired", *input_args(lab.inputs(reload_command=lab.install_script()),
                                                                  lab.tmp)], env)
    assert code == 0, op.transcript
    assert op.seen_gates == ["status_first", "install", "status_resolved"]
    records = audit_records(env)
    status = step_status(records)
    assert status["check"] == "failed" and status["verify"] == "succeeded" and status["install"] == "succeeded"

    found = {o["host"] + ":" + o["starttls"]: o for o in _outputs(records, "check").values()}
    assert found[f"{WWW}:none"]["problems"] == ["expired"]
    assert found[f"{WWW}:none"]["hsts"]["preload"] is True
    assert found[f"{APEX}:none"]["problems"] == ["incomplete_chain"]
    assert found[f"{APEX}:none"]["missing_issuer"] == "CN=breakglass lab intermediate R1"
    assert found[f"{MAIL}:smtp"]["problems"] == ["expired"]
    assert found[f"{MAIL}:imap"]["problems"] == ["name_mismatch"]

    renew = next(r for r in records if r.get("step") == "renew" and r["type"] == "step.started")
    text = renew["args"]["instructions"]
    assert f"HSTS is on for {WWW}" in text and "Do NOT remove HSTS" in text
    assert "incomplete_chain" in text and "fullchain.pem" in text

    verified = _outputs(records, "verify").values()
    assert len(verified) == 4 and all(o["verified"] and o["days_left"] >= 89 for o in verified)
    finished = next(r for r in records if r["type"] == "run.finished")
    due = [i for i in finished["open"] if i["kind"] == "due"]
    assert len(due) == 4 and all("renew the certificate" in i["text"] for i in due)
    first, resolved = (next(r["output"]["texts"] for r in records
                            if r.get("step") == s and r["type"] == "step.succeeded")
                       for s in ("status_first", "status_resolved"))
    assert first["en"].startswith(f"[Identified] Some visitors to {APEX} see a security warning")
    assert first["ja"].startswith(f"【原因特定】 {APEX} にアクセスすると") and "次回の更新は" in first["ja"]
    assert resolved["en"].startswith("[Resolved]") and "Next update" not in resolved["en"]


def test_a_server_left_out_of_the_install_fails_verification(lab: Lab, bg_home: Path) -> None:
    env = cli_env(bg_home)
    op = Operator()
    script = lab.install_script(forget_imap=True)
    code = op.run(["run", "tls-certificate-expired", *input_args(lab.inputs(reload_command=script), lab.tmp)], env)
    assert code == 1, op.transcript
    assert op.seen_gates == ["status_first", "install"]  # no "resolved" while IMAP still fails
    records = audit_records(env)
    status = step_status(records)
    assert status["install"] == "succeeded" and status["verify"] == "failed"
    assert "status_resolved" not in status
    failed = [o for s, o in _outputs(records, "verify").items() if status[s] == "failed"]
    assert [(o["host"], o["starttls"], o["problems"]) for o in failed] == [(MAIL, "imap", ["name_mismatch"])]
