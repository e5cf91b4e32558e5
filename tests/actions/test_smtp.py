"""mail.smtp_probe against real aiosmtpd servers on loopback (plain, STARTTLS, rejecting, silent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.base import ActionContext, Effect
from actions.smtp import SmtpProbe, SmtpProbeParams, name_matches
from tests.lab import free_port
from tests.lab.bind import zone_text
from tests.lab.smtp import (
    AttachmentFilterHandler,
    LabPki,
    RecordingHandler,
    RejectingHandler,
    SilentServer,
    SmtpServer,
)

CTX = ActionContext(run_id="run42", step_id="probe")


def probe(**kwargs: object) -> tuple[bool, dict]:
    result = SmtpProbe().run(SmtpProbeParams(**{"timeout": 5, **kwargs}), CTX)
    return result.ok, result.output


def stages(output: dict) -> list[str]:
    return [s["stage"] for s in output["stages"]]


@pytest.fixture
def pki(tmp_path: Path) -> LabPki:
    return LabPki.create(tmp_path / "pki", names=["mail.test"])


def test_plain_server_banner_and_ehlo() -> None:
    with SmtpServer(RecordingHandler(), ident="plain-test ESMTP") as server:
        ok, out = probe(host=server.address)
    assert ok, out
    assert "plain-test ESMTP" in out["banner"]
    assert stages(out) == ["connect", "banner", "ehlo"]
    assert all(s["ms"] >= 0 for s in out["stages"])
    assert "starttls" not in out["ehlo"]["extensions"]
    assert out["failed_stage"] is None


def test_starttls_certificate_verified_with_ca_file(pki: LabPki) -> None:
    with SmtpServer(RecordingHandler(), tls=pki) as server:
        ok, out = probe(host=f"127.0.0.1:{server.port}", ca_file=str(pki.ca_file), verify_tls=False)
        ok_named, out_named = probe(host=f"mail.test:{server.port}", ca_file=str(pki.ca_file))
    assert ok, out
    assert stages(out) == ["connect", "banner", "ehlo", "starttls", "tls_handshake", "ehlo_tls"]
    cert = out["certificate"]
    assert "breakglass test CA" in cert["issuer"]
    assert 28 <= cert["expires_in_days"] <= 30
    assert cert["names"] == ["mail.test"] and cert["name_match"] is False  # connected as 127.0.0.1
    assert out["tls"]["version"].startswith("TLS")
    # mail.test does not resolve: the probe reports a connect failure, not a traceback.
    assert not ok_named and out_named["failed_stage"] == "connect"


def test_starttls_verification_failure_is_the_failure_point(pki: LabPki) -> None:
    with SmtpServer(RecordingHandler(), tls=pki) as server:
        ok, out = probe(host=server.address)  # default trust store does not know the test CA
    assert not ok
    assert out["failed_stage"] == "tls_handshake"
    assert "CERTIFICATE_VERIFY_FAILED" in out["text"]


def test_starttls_verified_by_name_through_mx(pki: LabPki, bind_factory) -> None:
    server_dns = bind_factory({"test.": zone_text("test.", "@ MX 10 mail.test.\nmail A 127.0.0.1")})
    with SmtpServer(RecordingHandler(), tls=pki) as server:
        ok, out = probe(domain="test", port=server.port, resolver=server_dns.address, ca_file=str(pki.ca_file))
    assert ok, out
    assert out["mx"] == ["mail.test"]
    assert out["certificate"]["name_match"] is True
    assert out["tls"]["verified"] is True


def test_implicit_tls_submission_port(pki: LabPki) -> None:
    """Port 465 (RFC 8314): TLS from the first byte, then the banner inside it; a message goes through."""
    handler = RecordingHandler()
    with SmtpServer(handler, tls=pki, implicit_tls=True) as server:
        ok, out = probe(host=server.address, implicit_tls=True, ca_file=str(pki.ca_file), verify_tls=False)
        params = SmtpProbeParams(host=server.address, implicit_tls=True, verify_tls=False, timeout=5,
                                 send_to="ops@example.test", mail_from="probe@example.test")
        sent = SmtpProbe().apply(params, CTX, SmtpProbe().plan(params, CTX))
        # The same server spoken to in plain text: the handshake never comes, the banner stage fails.
        plain_ok, plain = probe(host=server.address, implicit_tls=False, timeout=1)
    assert ok, out
    assert stages(out) == ["connect", "tls_handshake", "banner", "ehlo"]
    assert out["implicit_tls"] is True and out["tls"]["version"].startswith("TLS")
    assert out["certificate"]["names"] == ["mail.test"]
    assert sent.ok, sent.output
    assert handler.messages and handler.messages[0]["to"] == ["ops@example.test"]
    assert not plain_ok and plain["failed_stage"] == "banner"


def test_implicit_tls_is_the_default_on_port_465(pki: LabPki) -> None:
    server = SmtpServer(RecordingHandler(), tls=pki, implicit_tls=True)
    server.port = server.controller.port = 465  # a privileged port: the CI runs as root
    try:
        server.__enter__()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"cannot listen on 127.0.0.1:465 here: {exc}")
    try:
        ok, out = probe(host="127.0.0.1:465", verify_tls=False)
    finally:
        server.__exit__(None, None, None)
    assert ok, out
    assert out["implicit_tls"] is True and stages(out)[:2] == ["connect", "tls_handshake"]


def test_require_starttls_on_plain_server_fails() -> None:
    with SmtpServer(RecordingHandler()) as server:
        ok, out = probe(host=server.address, require_starttls=True)
    assert not ok and out["failed_stage"] == "starttls"


def test_rejecting_server_reports_rcpt_code_and_text() -> None:
    with SmtpServer(RejectingHandler(stage="rcpt")) as server:
        params = SmtpProbeParams(host=server.address, send_to="ops@example.test", timeout=5)
        action = SmtpProbe()
        result = action.apply(params, CTX, action.plan(params, CTX))
    assert not result.ok
    assert result.output["failed_stage"] == "rcpt"
    assert result.output["code"] == 554
    assert "Relay access denied" in result.output["text"]
    assert "554" in result.message


def test_rejecting_at_data() -> None:
    with SmtpServer(RejectingHandler(stage="data")) as server:
        params = SmtpProbeParams(host=server.address, send_to="ops@example.test", timeout=5)
        result = SmtpProbe().apply(params, CTX, SmtpProbe().plan(params, CTX))
    assert result.output["failed_stage"] == "data" and result.output["code"] == 554


def test_send_message_is_received(pki: LabPki) -> None:
    handler = RecordingHandler()
    with SmtpServer(handler, tls=pki) as server:
        params = SmtpProbeParams(
            host=server.address,
            send_to="ops@example.test",
            mail_from="probe@example.test",
            ca_file=str(pki.ca_file),
            verify_tls=False,
            timeout=5,
        )
        action = SmtpProbe()
        plan = action.plan(params, CTX)
        result = action.apply(params, CTX, plan)
    assert result.ok, result.output
    assert [s["stage"] for s in result.output["stages"]][-3:] == ["mail", "rcpt", "data"]
    assert len(handler.messages) == 1
    received = handler.messages[0]
    assert received["from"] == "probe@example.test" and received["to"] == ["ops@example.test"]
    assert "run42" in received["data"] and result.output["sent"]["message_id"] in received["data"]
    assert result.output["sent"]["message_id"] == plan.changes[0]["message_id"]  # the planned message was sent


def test_send_to_makes_the_invocation_mutating_and_plans_the_message() -> None:
    action = SmtpProbe()
    write = SmtpProbeParams(host="127.0.0.1:25", send_to="ops@example.test")
    assert SmtpProbe.effect_of({"host": "127.0.0.1:25"}) is Effect.READ
    assert SmtpProbe.effect_of({"host": "127.0.0.1:25", "send_to": "ops@example.test"}) is Effect.WRITE
    plan = action.plan(write, CTX)
    assert "ops@example.test" in plan.summary
    assert plan.changes[0]["to"] == "ops@example.test"
    assert "run42" in plan.changes[0]["subject"]


def test_read_run_never_sends_even_with_send_to() -> None:
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        result = SmtpProbe().run(SmtpProbeParams(host=server.address, send_to="ops@example.test"), CTX)
    assert result.ok and handler.messages == [] and "sent" not in result.output


def test_refused_connection_is_a_finding() -> None:
    port = free_port()  # nothing listens there
    ok, out = probe(host=f"127.0.0.1:{port}")
    assert not ok and out["failed_stage"] == "connect"
    assert "refused" in out["text"].lower()


def test_silent_server_times_out_at_banner() -> None:
    with SilentServer() as server:
        result = SmtpProbe().run(SmtpProbeParams(host=server.address, timeout=0.5), CTX)
    assert not result.ok
    assert result.output["failed_stage"] == "banner" and result.output["text"] == "timed out"
    first, second = result.output["stages"]
    assert (first["stage"], first["ok"], second["stage"], second["ok"]) == ("connect", True, "banner", False)
    assert second["ms"] >= 450


def test_params_need_exactly_one_target() -> None:
    with pytest.raises(ValueError):
        SmtpProbeParams()
    with pytest.raises(ValueError):
        SmtpProbeParams(host="a:25", domain="b")


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mail.test", "MAIL.test.", True),
        ("*.test", "mail.test", True),
        ("*.test", "a.mail.test", False),
        ("*.test", "test", False),
        ("other.test", "mail.test", False),
    ],
)
def test_name_matching(pattern: str, host: str, expected: bool) -> None:
    assert name_matches(pattern, host) is expected


# --- the attachment series: the firewall/UTM that ate macro files and password ZIPs

SERIES = ["none", "pdf", "docx", "zip", "docm", "xlsm", "zip_encrypted"]


def send_series(server: SmtpServer, kinds: list[str]) -> tuple[SmtpProbe, object, object]:
    params = SmtpProbeParams(host=server.address, send_to="ops@example.test", mail_from="probe@example.test",
                             attachments=kinds, timeout=5)
    action = SmtpProbe()
    plan = action.plan(params, CTX)
    return action, plan, action.apply(params, CTX, plan)


def test_the_series_finds_what_an_inspecting_filter_drops() -> None:
    handler = AttachmentFilterHandler()
    with SmtpServer(handler) as server:
        _, plan, result = send_series(server, SERIES)
    out = result.output  # type: ignore[attr-defined]
    assert out["lost"] == ["docm", "xlsm", "zip_encrypted"]
    assert out["accepted"] == ["none", "pdf", "docx", "zip"]
    assert "lost exactly docm, xlsm, zip_encrypted" in out["pattern"] and "check our own first" in out["pattern"]
    assert not result.ok  # type: ignore[attr-defined]
    lost = [row for row in out["series"] if not row["accepted"]]
    assert {row["failed_stage"] for row in lost} == {"data"}  # cut off at the end of DATA, no SMTP reply
    # the filter really saw the samples and delivered only the controls, numbered and named by kind
    assert handler.dropped == [["breakglass-test.docm"], ["breakglass-test.xlsm"], ["breakglass-test-protected.zip"]]
    subjects = [m["data"].split("Subject: ", 1)[1].split("\n", 1)[0] for m in handler.messages]
    assert [s.split(" (")[0] for s in subjects] == ["breakglass SMTP probe #1 none", "breakglass SMTP probe #2 pdf",
                                                     "breakglass SMTP probe #3 docx", "breakglass SMTP probe #4 zip"]
    # what was planned (and approved) is what was sent: same Message-IDs, attachments named in the plan
    assert [c["message_id"] for c in plan.changes] == [row["message_id"] for row in out["series"]]  # type: ignore[attr-defined]
    assert plan.changes[5]["attachment"]["type"] == "application/vnd.ms-excel.sheet.macroEnabled.12"  # type: ignore[attr-defined]


def test_a_clean_path_accepts_every_kind_and_points_past_smtp() -> None:
    handler = RecordingHandler()
    with SmtpServer(handler) as server:
        _, _, result = send_series(server, SERIES)
    out = result.output  # type: ignore[attr-defined]
    assert result.ok and out["lost"] == [] and len(handler.messages) == len(SERIES)  # type: ignore[attr-defined]
    assert "POP3/IMAP inspection" in out["pattern"]


def test_the_samples_carry_the_marks_filters_read_and_nothing_else() -> None:
    import io
    import zipfile

    from actions.attachments import build

    protected = zipfile.ZipFile(io.BytesIO(build("zip_encrypted").data))  # type: ignore[union-attr]
    assert protected.infolist()[0].flag_bits & 0x1
    with pytest.raises(RuntimeError, match="encrypted"):
        protected.read("readme.txt")
    docm = zipfile.ZipFile(io.BytesIO(build("docm").data))  # type: ignore[union-attr]
    assert docm.read("word/vbaProject.bin") == b""  # the macro container is there, with no macro in it
    assert "macroEnabled" in docm.read("[Content_Types].xml").decode()
    assert build("none") is None
