"""HTTP and HTTPS servers on 127.0.0.1 with a CA made for the test, plus a webhook receiver.

The HTTPS server presents a certificate for ``www.example.test`` (a name that resolves nowhere, RFC 6761),
so a probe only reaches it by pinning the name to 127.0.0.1; a second one presents an expired certificate.
Every POST/PUT/PATCH/DELETE is recorded (path, headers, JSON) so tests can check what a webhook received, and
every request at all in ``seen``. ``elsewhere`` is one more plain HTTP server on 127.0.0.2 (loopback too on
Linux): another origin for redirect tests.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

WWW = "www.example.test"
EXPIRED = "expired.example.test"
CA_NAME = "breakglass lab CA"
BODY = b"<html><body>standby www.example.test build 2024.11</body></html>\n"
# A shop's checkout: its own script, its payment provider's, and (skimmed) one injected from evil.example,
# test data only: nothing ever fetches it (RFC 2606 names).
CHECKOUT = (b'<html><head><script src="/js/shop.js"></script>'
            b'<script src="https://js.pay.example/v3/"></script></head><body>checkout</body></html>\n')
SKIMMED = CHECKOUT.replace(b"</head>", b'<script src="https://evil.example/s.js?v=2"></script></head>')


@dataclass(frozen=True)
class Received:
    """One request with a body, as the lab server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class CertFiles:
    ca_file: Path
    www: tuple[Path, Path]  # (certificate, key) for WWW, valid
    expired: tuple[Path, Path]  # for EXPIRED, expired three days ago


def make_pki(directory: Path) -> CertFiles:
    """A CA and two server certificates signed by it, written as PEM files."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca = _cert(
        CA_NAME,
        ca_key,
        ca_key,
        CA_NAME,
        now - datetime.timedelta(days=1),
        now + datetime.timedelta(days=3650),
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, not_before: datetime.datetime, not_after: datetime.datetime) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, key, ca_key, CA_NAME, not_before, not_after)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    www = leaf(WWW, now - datetime.timedelta(days=1), now + datetime.timedelta(days=30, hours=12))
    expired = leaf(EXPIRED, now - datetime.timedelta(days=90), now - datetime.timedelta(days=3))
    return CertFiles(ca_file, www, expired)


def _cert(
    subject: str,
    key: Any,
    issuer_key: Any,
    issuer: str,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    is_ca = subject == issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class LabHandler(BaseHTTPRequestHandler):
    """Routes: / (page), /checkout and /checkout-skimmed (a skimmer script),
    /redirect → /hop → /, /loop, /status/N, /big, /away?to=URL (302 to URL),
    /copy?to=URL&... (302 to URL with this request's whole query appended), any write method (recorded)."""

    protocol_version = "HTTP/1.1"
    server: LabServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        return None  # keep test output quiet

    def do_GET(self) -> None:
        self._see(None)
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._see(None)
        self._route(send_body=False)

    def do_POST(self) -> None:
        if self.path.startswith(("/away", "/copy")):
            self._see(None)
            self._route(send_body=True)
        else:
            self._record()

    def _see(self, payload: Any) -> None:
        self.server.seen.append(Received(self.command, self.path, dict(self.headers.items()), payload))

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _route(self, send_body: bool) -> None:
        path = self.path.split("?")[0]
        if path == "/":
            self._reply(
                200, BODY, "text/html; charset=utf-8", send_body, {"Set-Cookie": "session=lab-cookie-1234"}
            )
        elif path == "/redirect":
            self._reply(302, b"", "text/plain", send_body, {"Location": "/hop"})
        elif path == "/hop":
            self._reply(301, b"", "text/plain", send_body, {"Location": "/"})
        elif path == "/loop":
            self._reply(302, b"", "text/plain", send_body, {"Location": "/loop"})
        elif path.startswith("/status/"):
            self._reply(int(path.rsplit("/", 1)[1]), b"status page\n", "text/plain", send_body)
        elif path in ("/away", "/copy"):
            query = urlsplit(self.path).query
            target = parse_qs(query)["to"][0]
            location = f"{target}?{query}" if path == "/copy" else target
            self._reply(302, b"", "text/plain", send_body, {"Location": location})
        elif path == "/checkout":
            self._reply(200, CHECKOUT, "text/html; charset=utf-8", send_body)
        elif path == "/checkout-skimmed":
            self._reply(200, SKIMMED, "text/html; charset=utf-8", send_body)
        elif path == "/big":
            self._reply(200, b"x" * 300_000, "text/plain", send_body)
        else:
            self._reply(404, b"not found\n", "text/plain", send_body)

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        self.server.received.append(Received(self.command, self.path, dict(self.headers.items()), payload))
        self._see(payload)
        # echoes the Authorization header back, as careless APIs do, so tests see it scrubbed from the output
        answer = {"ok": True, "seen_authorization": self.headers.get("Authorization")}
        status = 500 if self.path.startswith("/fail") else 200
        self._reply(status, json.dumps(answer).encode(), "application/json", True)

    def _reply(
        self, status: int, body: bytes, ctype: str, send_body: bool, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class LabServer(ThreadingHTTPServer):
    daemon_threads = True
    received: list[Received]
    seen: list[Received]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that refuse our certificate hang up mid-handshake on purpose; no traceback for that
        return None


@dataclass
class WebLab:
    """The running servers: plain HTTP, HTTPS for www.example.test, HTTPS with an expired certificate."""

    ca_file: Path
    http_port: int
    https_port: int
    expired_port: int
    servers: list[LabServer] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def www_url(self) -> str:
        return f"https://{WWW}:{self.https_port}"

    @property
    def received(self) -> list[Received]:
        return [r for s in self.servers for r in s.received]


def serve(cert: tuple[Path, Path] | None = None, host: str = "127.0.0.1") -> LabServer:
    """Start a server on ``host`` and a free port; HTTPS when ``cert`` (certificate, key) is given."""
    server = LabServer((host, 0), LabHandler)
    server.received = []
    server.seen = []
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        # handshake in the handler thread, not in accept(): a stuck client cannot block the server
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    """Start the three servers for the module's tests; stop them afterwards."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    servers = [serve(None), serve(pki.www), serve(pki.expired)]
    lab = WebLab(pki.ca_file, *(s.server_address[1] for s in servers), servers=servers)  # type: ignore[misc]
    try:
        yield lab
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[LabServer]:
    """A plain HTTP server on 127.0.0.2: the other origin a redirect leads to; ``seen`` holds what it got."""
    server = serve(None, host="127.0.0.2")
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: LabServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
