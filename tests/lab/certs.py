"""A certificate authority of the kind the public ones are (a root that signs an intermediate that signs
leaves) and TLS servers that read their certificate files at every handshake, so a test can "renew" a
certificate by writing new files and the next client sees it, as after ``systemctl reload nginx``.

    pki = Pki(tmp_path)                                   # root.pem is the trust store
    leaf = pki.leaf("www.example.test", days=-3)          # expired three days ago; .pem has leaf+intermediate
    bare = pki.leaf("www.example.test", chain=False)      # the leaf alone: an incomplete chain
    web = TlsWeb(leaf.cert, leaf.key, hsts="max-age=63072000; includeSubDomains; preload")
    smtp = SmtpServer(RecordingHandler(), tls=ReloadingTls(...))   # STARTTLS with the same files
    imap = ImapStartTls(leaf.cert, leaf.key)               # a greeting, STARTTLS, then TLS; nothing more

Everything listens on 127.0.0.1 and a free port; the names (RFC 6761 .test) resolve nowhere, so clients pin
them to 127.0.0.1.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.https import LabHandler, LabServer

ROOT_NAME = "breakglass lab root"
INTERMEDIATE_NAME = "breakglass lab intermediate R1"


@dataclass(frozen=True)
class Leaf:
    cert: Path  # PEM: the leaf, then the intermediate unless made with chain=False
    key: Path


class Pki:
    """A root, an intermediate signed by it, and leaves signed by the intermediate, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.UTC)
        self._root_key = ec.generate_private_key(ec.SECP256R1())
        self._int_key = ec.generate_private_key(ec.SECP256R1())
        root = self._build(ROOT_NAME, self._root_key, ROOT_NAME, self._root_key, ca=True, days=3650)
        self._intermediate = self._build(INTERMEDIATE_NAME, self._int_key, ROOT_NAME, self._root_key, ca=True,
                                         days=1000)
        self.root_file = directory / "root.pem"
        self.root_file.write_bytes(_pem(root))
        self._count = 0

    def _build(self, subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool, days: float,
               names: list[str] | None = None, valid_for: float = 90, must_staple: bool = False) -> Any:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        not_after = self.now + datetime.timedelta(days=days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(not_after - datetime.timedelta(days=valid_for),
                                  self.now - datetime.timedelta(hours=1)))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names or [subject]]), critical=False)
        if must_staple:  # RFC 7633: clients must insist on a stapled OCSP response
            builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def leaf(self, name: str, *, days: float = 60, names: list[str] | None = None, chain: bool = True,
             self_signed: bool = False, must_staple: bool = False) -> Leaf:
        """A leaf for ``name`` (and ``names``) expiring in ``days`` (negative: already expired)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        if self_signed:
            cert = self._build(name, key, name, key, ca=False, days=days, names=names)
        else:
            cert = self._build(name, key, INTERMEDIATE_NAME, self._int_key, ca=False, days=days, names=names,
                               must_staple=must_staple)
        self._count += 1
        leaf = Leaf(self.directory / f"leaf{self._count}.pem", self.directory / f"leaf{self._count}.key")
        pem = _pem(cert) + (_pem(self._intermediate) if chain and not self_signed else b"")
        leaf.cert.write_bytes(pem)
        leaf.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return leaf


def _pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


class ServedFiles:
    """The certificate and key files a server presents, read again at every handshake."""

    def __init__(self, directory: Path, leaf: Leaf) -> None:
        self.cert, self.key = directory / "served.pem", directory / "served.key"
        directory.mkdir(parents=True, exist_ok=True)
        self.install(leaf)

    def install(self, leaf: Leaf) -> None:
        shutil.copyfile(leaf.key, self.key)
        shutil.copyfile(leaf.cert, self.cert)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)

        def reload(sock: Any, _name: str | None, _ctx: ssl.SSLContext) -> None:
            fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            fresh.load_cert_chain(self.cert, self.key)
            sock.context = fresh

        ctx.sni_callback = reload
        return ctx

    server_context = context  # what tests/lab/smtp.py's SmtpServer asks its `tls` for


def serve_web(files: ServedFiles, hsts: str | None = None) -> LabServer:
    """tests/lab/https.py's pages over HTTPS with ``files``; every reply carries ``hsts`` when given."""

    class Handler(LabHandler):
        def end_headers(self) -> None:
            if hsts:
                self.send_header("Strict-Transport-Security", hsts)
            super().end_headers()

    server = LabServer(("127.0.0.1", 0), Handler)
    server.received, server.seen = [], []
    server.socket = files.context().wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


class ImapStartTls:
    """An IMAP greeting and STARTTLS (RFC 9051 6.2.1), then a TLS handshake; no mailbox behind it."""

    def __init__(self, files: ServedFiles) -> None:
        self.files = files
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] lab IMAP ready\r\n")
                line = conn.recv(1024)
                tag = line.split(b" ", 1)[0]
                if b"STARTTLS" not in line.upper():
                    conn.sendall(tag + b" BAD only STARTTLS here\r\n")
                    return
                conn.sendall(tag + b" OK Begin TLS negotiation now\r\n")
                with self.files.context().wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                return

    def close(self) -> None:
        self.sock.close()
