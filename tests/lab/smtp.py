"""Real SMTP servers on loopback for tests: aiosmtpd with and without STARTTLS, rejecting, recording, silent.

Usage::

    from tests.lab.smtp import SmtpServer, LabPki, RecordingHandler

    with SmtpServer(RecordingHandler()) as server:   # server.host, server.port, server.handler.messages
        ...
    pki = LabPki.create(tmp_path, names=["mail.test"])   # a CA and a leaf certificate signed by it
    with SmtpServer(RecordingHandler(), tls=pki) as server: ...   # STARTTLS offered with pki's leaf

Certificates are made in the test with ``cryptography``; nothing here touches a public address.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab import free_port


@dataclass
class RecordingHandler:
    """Accepts every message and keeps the envelopes."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 2.0.0 Ok: queued as TEST1"


@dataclass
class RejectingHandler:
    """Refuses recipients (``stage="rcpt"``) or message content (``stage="data"``) with a 554."""

    stage: str = "rcpt"
    reply: str = "554 5.7.1 Relay access denied by policy"

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,  # noqa: N802
        rcpt_options: list[str],
    ) -> str:
        if self.stage == "rcpt":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return self.reply


def _filtered(content: bytes) -> list[str]:
    """The attachments a UTM's mail inspection would single out: macro-enabled Office files, encrypted ZIPs."""
    import email
    import io
    import zipfile
    from email import policy

    message = email.message_from_bytes(content, policy=policy.default)
    found = []
    for part in message.iter_attachments():  # type: ignore[attr-defined]
        kind, data = part.get_content_type(), part.get_payload(decode=True) or b""
        if "macroenabled" in kind.lower():
            found.append(part.get_filename() or kind)
        elif kind == "application/zip":
            try:
                entries = zipfile.ZipFile(io.BytesIO(data)).infolist()
            except zipfile.BadZipFile:
                continue
            if any(entry.flag_bits & 0x1 for entry in entries):
                found.append(part.get_filename() or kind)
    return found


@dataclass
class AttachmentFilterHandler:
    """A firewall/UTM's mail inspection: messages with macro-enabled Office files or password-protected ZIPs
    are dropped by cutting the connection at the end of DATA (the sender sees an error, nothing is delivered,
    nothing is bounced); everything else is delivered to ``messages``."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        caught = _filtered(envelope.content)
        if caught:
            self.dropped.append(caught)
            server.transport.abort()  # a reset, as the inspecting proxy sends it: no reply, no bounce
            return "250 2.0.0 Ok"  # never reaches the client: the connection is already gone
        self.messages.append({"to": list(envelope.rcpt_tos), "data": envelope.content.decode("utf-8", "replace")})
        return "250 2.0.0 Ok: queued as TEST2"


@dataclass(frozen=True)
class LabPki:
    """A throw-away CA and one server certificate it signed, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path, names: list[str], days: int = 30) -> LabPki:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)

        def build(subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool) -> Any:
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(issuer)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if not ca:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
                )
            return builder.sign(issuer_key, hashes.SHA256())

        ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "breakglass test CA")])
        ca = build("breakglass test CA", ca_key, ca_name, ca_key, ca=True)
        leaf = build(names[0], leaf_key, ca_name, ca_key, ca=False)
        directory.mkdir(parents=True, exist_ok=True)
        pki = cls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
        pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        pki.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        pki.key_file.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return pki

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port; STARTTLS is offered when ``tls`` is given, or TLS from the
    first byte with ``implicit_tls``."""

    def __init__(self, handler: Any, tls: LabPki | None = None, ident: str = "breakglass-test ESMTP",
                 implicit_tls: bool = False) -> None:
        from aiosmtpd.controller import Controller

        self.handler = handler
        self.host = "127.0.0.1"
        self.port = free_port()
        kwargs: dict[str, Any] = {"ident": ident}
        if tls is not None and implicit_tls:  # TLS from the first byte, as on port 465 (RFC 8314)
            kwargs.update(ssl_context=tls.server_context())
        elif tls is not None:
            kwargs.update(tls_context=tls.server_context(), require_starttls=False)
        self.controller = Controller(handler, hostname=self.host, port=self.port, **kwargs)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.controller.stop()


class SilentServer:
    """Accepts TCP connections (the kernel completes the handshake) and never speaks: a banner timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", int(self.sock.getsockname()[1])

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> SilentServer:
        self.sock.listen(8)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()
