"""How the HTTP actions connect: TLS settings, pinned addresses, and the certificate the server presents.

``resolve`` pins host names to addresses like ``curl --resolve``: the connection goes to the pinned IP
while the URL, the Host header, SNI and certificate verification keep the real name. That is how the
standby is checked under the production hostname *before* DNS is switched to it. It is done with an httpcore
network backend that only swaps the address it dials, so redirects back to the same host stay pinned.
That transport (SSL context, pool, pinned dialling) is built once per set of settings and shared by every call
(``shared_transport``); it keeps no idle connection, so each call dials afresh.

ssl, httpx, httpcore and cryptography are imported inside functions, so importing an action stays cheap.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

    import httpx

Pins = dict[tuple[str, int | None], str]


def parse_resolve(value: dict[str, str] | list[str] | None) -> Pins:
    """``{"host": ip}``, ``{"host:port": ip}`` or curl's ``["host:port:ip"]`` → {(host, port|None): ip}."""
    if not value:
        return {}
    items = value.items() if isinstance(value, dict) else (_split_curl(v) for v in value)
    pins: Pins = {}
    for name, ip in items:
        host, _, port = name.rpartition(":") if ":" in name else (name, "", "")
        address = ip.strip("[]").split(",")[0]
        ipaddress.ip_address(address)  # raises ValueError: caught by pydantic as a parameter error
        pins[(host.lower(), int(port) if port else None)] = address
    return pins


def _split_curl(entry: str) -> tuple[str, str]:
    host, port, ip = entry.split(":", 2)
    return f"{host}:{port}", ip


def pinned_address(url: str, resolve: dict[str, str] | list[str] | None) -> str | None:
    """The address ``resolve`` pins the URL's host (and port) to, if any."""
    parts = urlsplit(url)
    pins = parse_resolve(resolve)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return pins.get((host, port)) or pins.get((host, None))


def ssl_context(verify_tls: bool, ca_file: str | None) -> ssl.SSLContext:
    """No verification, a private CA bundle, or httpx's default trust store, in that order of precedence."""
    import ssl

    if not verify_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return _default_trust()


@functools.lru_cache(maxsize=1)
def _default_trust() -> ssl.SSLContext:
    # Built once per process: loading the CA bundle takes ~100 ms of CPU under the GIL, which made a
    # concurrent for_each of 1,000 probes run one bundle load at a time. A context is safe to share between
    # connections and threads; its settings are never changed after this.
    import httpx

    return httpx.create_ssl_context()


def shared_transport(verify_tls: bool, ca_file: str | None, pins: Pins) -> httpx.BaseTransport:
    """The one transport (SSL context, pinned dialling) for these settings, shared by every HTTP call of the
    process: building it per call cost a new SSL context (a CA bundle load) and a connection pool, CPU that
    a 1,000-item concurrent ``for_each`` of probes paid under one GIL. Safe across threads (httpcore's pool
    is). Each call still makes its own httpx.Client over it: its cookies, redirect guard, timeout and
    redirect policy stay that call's own."""
    key = (verify_tls, ca_file, _file_stamp(ca_file), tuple(sorted(pins.items(), key=repr)))
    with _SHARED_LOCK:
        transport = _SHARED.get(key)
        if transport is None:
            if len(_SHARED) >= _SHARED_MAX:  # settings rendered per item (pins) must not grow it without end
                _SHARED.clear()  # dropped, not closed: a call in flight may still be using one
            transport = _SHARED[key] = _unclosable(pinning_transport(ssl_context(verify_tls, ca_file), pins))
    return transport


_SHARED: dict[Any, Any] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_MAX = 64


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    """A CA file replaced during a run is read again: the settings key holds its size and mtime."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None  # the SSL context load says what is wrong with it
    return st.st_size, st.st_mtime_ns


def _unclosable(inner: httpx.HTTPTransport) -> httpx.BaseTransport:
    import httpx

    class Shared(httpx.BaseTransport):
        """Closing a call's client closes its transport; this one serves the other calls still."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return inner.handle_request(request)

    return Shared()


def pinning_transport(ssl_ctx: ssl.SSLContext, pins: Pins) -> httpx.HTTPTransport:
    """An httpx transport that dials the pinned address of a host and the host itself otherwise.

    It keeps no idle connection: shared between calls, a kept one would carry the next probe to the
    address and certificate of before (a probe after ``dns.update`` or a certificate swap must dial again)."""
    import httpcore
    import httpx

    class PinningBackend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.NetworkStream:
            key = host.lower()
            address = pins.get((key, port)) or pins.get((key, None)) or host
            return super().connect_tcp(address, port, timeout, local_address, socket_options)

    transport = httpx.HTTPTransport(verify=ssl_ctx)
    # httpx takes no network backend, so swap the pool it built for one that dials the pinned addresses;
    # httpcore still passes the URL's host name as SNI and for the certificate check.
    transport._pool = httpcore.ConnectionPool(ssl_context=ssl_ctx, network_backend=PinningBackend(),
                                              max_keepalive_connections=0, max_connections=None)
    return transport


def tls_of(response: httpx.Response) -> dict[str, Any] | None:
    """Certificate, protocol version and cipher of a streamed response; None over plain HTTP.
    Read while the stream is open: the connection is gone once the body is consumed."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(True)  # positional: httpcore hands out the C-level _ssl._SSLSocket
    info = certificate_fields(der) if der else {}
    return {**info, "version": ssl_object.version(), "cipher": ssl_object.cipher()[0]}


def certificate_fields(der: bytes) -> dict[str, Any]:
    """Issuer, subject, names and validity of a DER certificate; days_to_expiry is negative once expired."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(v) for v in names.get_values_for_type(x509.DNSName)]
        san += [str(v) for v in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        san = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "san": san,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        # whole days, truncated toward zero: 30.5 days left is 30, expired 3.2 days ago is -3
        "days_to_expiry": int((not_after - datetime.now(UTC)).total_seconds() / 86400),
    }


def peek_certificate(
    url: str, resolve: dict[str, str] | list[str] | None, timeout: float
) -> dict[str, Any] | None:
    """The server's certificate fetched without verifying it, to explain a failed verification."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    address = pinned_address(url, resolve) or host
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only to read what the server presents; nothing is sent over it
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return certificate_fields(der) if der else None
