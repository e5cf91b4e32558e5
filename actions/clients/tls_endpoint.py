"""One TLS endpoint, inspected the way a client sees it: reached directly or after STARTTLS (SMTP, IMAP), its
certificate chain as served, and what is wrong with it for a client that verifies.

Two handshakes at most. The first verifies, as browsers and mail servers do (hostname included); when that
fails, a second one without verification reads what the server presents, so the report can say *why*
(expired, another name, a chain without its intermediate, self-signed) instead of OpenSSL's one line alone.
Certificates are parsed with ``cryptography`` (imported inside ``certificate_fields``).

The trap this module keeps in view: an *incomplete chain* (the leaf served without its intermediate) works in
a desktop browser that cached or fetched the intermediate (AIA), and fails in phones, curl, and every MTA. The
check is done against the served chain and the trust store only, like those clients.

OCSP: the stdlib's ``ssl`` cannot ask for or read a stapled OCSP response, so a leaf that demands one
(must-staple, RFC 7633) is reported as such and the operator is told to check the staple with
``openssl s_client -status``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from actions.clients.http_tls import certificate_fields, ssl_context

if TYPE_CHECKING:
    import ssl

StartTls = Literal["none", "smtp", "imap"]

# scheme → (default port, STARTTLS dialect); implicit TLS is "none" (RFC 8314 for 465/993).
SCHEMES: dict[str, tuple[int, StartTls]] = {
    "https": (443, "none"),
    "smtp": (25, "smtp"),
    "submission": (587, "smtp"),
    "smtps": (465, "none"),
    "imap": (143, "imap"),
    "imaps": (993, "none"),
}
MAX_REPLY = 16_384  # bytes of a protocol greeting or reply we read before giving up on it

# problem names in the order an operator should read them
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
NAME_MISMATCH = "name_mismatch"
INCOMPLETE_CHAIN = "incomplete_chain"
SELF_SIGNED = "self_signed"
UNTRUSTED = "untrusted"
EXPIRES_SOON = "expires_soon"
MUST_STAPLE = "must_staple"


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and what to say first: ``host`` is the name checked (SNI, SAN), ``address`` where to
    dial (a pinned IP, like curl --resolve; None = the host itself)."""

    host: str
    port: int
    starttls: StartTls = "none"
    address: str | None = None

    @classmethod
    def parse(cls, text: str, port: int | None = None, starttls: StartTls | None = None,
              address: str | None = None) -> Endpoint:
        """``host``, ``host:port`` or ``scheme://host[:port]`` (https, smtp, submission, smtps, imap, imaps);
        ``port`` and ``starttls`` given explicitly win. ValueError says what is wrong."""
        scheme, sep, rest = text.strip().partition("://")
        if not sep:
            scheme, rest = "https", text.strip()
        if scheme.lower() not in SCHEMES:
            raise ValueError(f"unknown scheme '{scheme}' in '{text}': use one of {', '.join(SCHEMES)}")
        default_port, dialect = SCHEMES[scheme.lower()]
        rest = rest.rstrip("/")
        host, colon, port_text = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        if not colon:
            host = rest
        if not host or "/" in host:
            raise ValueError(f"'{text}' is not host[:port] or scheme://host[:port]")
        if port_text and not port_text.isdigit():
            raise ValueError(f"port '{port_text}' in '{text}' is not a number")
        chosen = port or (int(port_text) if port_text else default_port)
        return cls(host.lower().rstrip("."), chosen, starttls or dialect, address)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" + (f" (STARTTLS {self.starttls})" if self.starttls != "none" else "")


class _Refused(Exception):
    """The server did not offer or accept STARTTLS."""


def _read_until(sock: socket.socket, done: Any) -> str:
    data = b""
    while len(data) < MAX_REPLY:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        text = data.decode("utf-8", "replace")
        if done(text):
            return text
    raise _Refused(f"connection closed or reply too long: {data[:200]!r}")


def _smtp_done(text: str) -> bool:
    # a reply is complete when its last line has a space after the code (RFC 5321 4.2)
    lines = text.split("\r\n")
    return len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3] == " "


def _starttls(sock: socket.socket, dialect: StartTls) -> None:
    if dialect == "smtp":
        for command, want in ((None, "220"), (b"EHLO breakglass.invalid\r\n", "250"), (b"STARTTLS\r\n", "220")):
            if command:
                sock.sendall(command)
            reply = _read_until(sock, _smtp_done)
            if not reply.split("\r\n")[-2].startswith(want):
                raise _Refused(f"{(command or b'greeting').decode().strip()}: {reply.strip()[:200]}")
    elif dialect == "imap":
        _read_until(sock, lambda t: t.endswith("\r\n"))
        sock.sendall(b"a1 STARTTLS\r\n")
        reply = _read_until(sock, lambda t: "\r\na1 " in "\r\n" + t and t.endswith("\r\n"))
        if "a1 OK" not in reply:
            raise _Refused(f"STARTTLS: {reply.strip()[:200]}")


def _connect(endpoint: Endpoint, ctx: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection((endpoint.address or endpoint.host, endpoint.port), timeout=timeout)
    try:
        _starttls(raw, endpoint.starttls)
        return ctx.wrap_socket(raw, server_hostname=endpoint.host)
    except BaseException:
        raw.close()
        raise


def _served_chain(tls: ssl.SSLSocket) -> list[bytes]:
    import _ssl

    # public from Python 3.13; the same method on the C object before that (3.10+)
    getter = getattr(tls, "get_unverified_chain", None) or tls._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in getter() or []]


def _hsts(tls: ssl.SSLSocket, host: str) -> dict[str, Any] | None:
    """The Strict-Transport-Security header of ``HEAD /`` (RFC 6797), parsed; None when absent or unreadable."""
    try:
        tls.sendall(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: breakglass\r\nConnection: close\r\n\r\n".encode())
        head = _read_until(tls, lambda t: "\r\n\r\n" in t)
    except (OSError, _Refused):
        return None
    for line in head.split("\r\n\r\n")[0].split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "strict-transport-security":
            directives = [d.strip().lower() for d in value.split(";")]
            max_age = next((d.split("=", 1)[1].strip('" ') for d in directives if d.startswith("max-age=")), "0")
            return {"max_age": int(max_age) if max_age.isdigit() else 0,
                    "include_subdomains": "includesubdomains" in directives,
                    "preload": "preload" in directives, "header": value.strip()[:300]}
    return None


def name_matches(host: str, san: list[str]) -> bool:
    """Whether ``host`` is one of the certificate's names; a wildcard covers one left-most label (RFC 6125 6.4.3)."""
    host = host.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in san):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _must_staple(der: bytes) -> bool:
    from cryptography import x509

    try:
        feature = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.TLSFeature)
    except x509.ExtensionNotFound:
        return False
    return x509.TLSFeatureType.status_request in feature.value


def _names(der: bytes) -> tuple[str, str]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()


def _fingerprint(der: bytes) -> str:
    import hashlib

    return hashlib.sha256(der).hexdigest()


def _missing_issuer(chain: list[bytes], anchors: set[str]) -> str | None:
    """The issuer the chain needs and neither the server nor the trust store gives; None when it is whole."""
    served = {_names(der)[0] for der in chain}
    for der in chain:
        subject, issuer = _names(der)
        if subject != issuer and issuer not in served and issuer not in anchors:
            return issuer
    return None


def inspect(endpoint: Endpoint, *, ca_file: str | None = None, timeout: float = 10.0, min_days: int = 0,
            read_hsts: bool = False, now: datetime | None = None) -> dict[str, Any]:
    """What ``endpoint`` presents and what is wrong with it; a connection that fails is ``status: error``."""
    import ssl  # here, not at the top: validating a runbook imports this module, and needs no TLS

    verifying = ssl_context(True, ca_file)
    verify_error: str | None = None
    try:
        try:
            tls = _connect(endpoint, verifying, timeout)
        except ssl.SSLCertVerificationError as exc:
            verify_error = str(exc.verify_message or exc)
            lax = ssl.create_default_context()
            lax.check_hostname = False
            lax.verify_mode = ssl.CERT_NONE  # only to read what the server presents, after verification failed
            tls = _connect(endpoint, lax, timeout)
        with tls:
            chain = _served_chain(tls)
            protocol = tls.version()
            hsts = _hsts(tls, endpoint.host) if read_hsts else None
    except (_Refused, OSError) as exc:  # SSLError is an OSError: a handshake that fails outright lands here
        return {"endpoint": str(endpoint), "host": endpoint.host, "port": endpoint.port,
                "starttls": endpoint.starttls, "status": "error", "error": f"{type(exc).__name__}: {exc}",
                "verified": False, "problems": [], "chain": [], "hsts": None}
    anchors = {_names(c)[0] for c in verifying.get_ca_certs(binary_form=True)}
    return _report(endpoint, chain, verify_error, protocol, hsts, anchors, min_days, now or datetime.now(UTC))


def _report(endpoint: Endpoint, chain: list[bytes], verify_error: str | None, protocol: str | None,
            hsts: dict[str, Any] | None, anchors: set[str], min_days: int, now: datetime) -> dict[str, Any]:
    if not chain:
        return {"endpoint": str(endpoint), "host": endpoint.host, "port": endpoint.port,
                "starttls": endpoint.starttls, "status": "error", "error": "the server sent no certificate",
                "verified": False, "problems": [], "chain": [], "hsts": hsts}
    certs = [certificate_fields(der) for der in chain]
    leaf, leaf_der = certs[0], chain[0]
    not_before = datetime.fromisoformat(leaf["not_before"])
    not_after = datetime.fromisoformat(leaf["not_after"])
    days_left = int((not_after - now).total_seconds() / 86400)  # truncated toward zero, as http.probe counts
    missing = _missing_issuer(chain, anchors)
    self_signed = len(chain) == 1 and leaf["subject"] == leaf["issuer"]
    matches = name_matches(endpoint.host, leaf["san"])
    checks = [
        (EXPIRED, not_after <= now),
        (NOT_YET_VALID, not_before > now),
        (NAME_MISMATCH, not matches),
        (INCOMPLETE_CHAIN, missing is not None and not self_signed),
        (SELF_SIGNED, self_signed),
        (UNTRUSTED, verify_error is not None and missing is None and not self_signed and matches
         and not_before <= now < not_after),
        (EXPIRES_SOON, now < not_after and days_left < min_days),
        (MUST_STAPLE, _must_staple(leaf_der)),
    ]
    for cert in certs:
        cert.pop("days_to_expiry", None)  # days_left below is the one figure, counted from `now`
    return {
        "endpoint": str(endpoint), "host": endpoint.host, "port": endpoint.port, "starttls": endpoint.starttls,
        "status": "ok" if verify_error is None else "invalid",
        "verified": verify_error is None,
        "verify_error": verify_error,
        "problems": [name for name, found in checks if found],
        "days_left": days_left,
        "not_after": leaf["not_after"],
        "subject": leaf["subject"],
        "issuer": leaf["issuer"],
        "san": leaf["san"],
        "name_matches": matches,
        "chain_complete": missing is None,
        "missing_issuer": missing,
        "self_signed": self_signed,
        "must_staple": MUST_STAPLE in [n for n, f in checks if f],
        "fingerprint_sha256": _fingerprint(leaf_der),
        "chain": certs,
        "protocol": protocol,
        "hsts": hsts,
    }
