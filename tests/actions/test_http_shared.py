"""The HTTP transport shared between calls (``http_tls.shared_transport``): one per set of connection
settings, and nothing of one call reaching the next (a kept connection, a cookie)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from actions.base import ActionContext, ActionResult
from actions.clients.http_tls import parse_resolve, shared_transport
from actions.http import HttpProbe
from tests.lab.https import EXPIRED, WWW, WebLab, make_pki, serve


def probe(**params: Any) -> ActionResult:
    action = HttpProbe()
    return action.run(action.Params(**params), ActionContext())


def test_one_transport_per_settings() -> None:
    pins = parse_resolve({WWW: "127.0.0.1"})
    assert shared_transport(True, None, pins) is shared_transport(True, None, dict(pins))
    assert shared_transport(True, None, pins) is not shared_transport(True, None, {})
    assert shared_transport(False, None, {}) is not shared_transport(True, None, {})


def test_a_replaced_ca_file_is_read_again(tmp_path: Path, web: WebLab) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(web.ca_file.read_bytes())
    before = shared_transport(True, str(ca), {})
    ca.write_bytes(web.ca_file.read_bytes() + b"\n")
    assert shared_transport(True, str(ca), {}) is not before


def test_the_next_probe_dials_again_and_sees_a_swapped_certificate(tmp_path: Path, web: WebLab) -> None:
    # A kept-alive connection would show the certificate of before: the check after a renewal would lie.
    pki = make_pki(tmp_path)
    server = serve(pki.www)
    try:
        url = f"https://{WWW}:{server.server_address[1]}/"
        pin = {WWW: "127.0.0.1"}
        first = probe(url=url, resolve=pin, verify_tls=False)
        assert first.ok, first.message
        assert first.output["tls"]["subject"] == f"CN={WWW}"
        context = server.socket.context  # type: ignore[attr-defined]
        assert isinstance(context, ssl.SSLContext)
        context.load_cert_chain(*pki.expired)
        second = probe(url=url, resolve=pin, verify_tls=False)
        assert second.output["tls"]["subject"] == f"CN={EXPIRED}"
    finally:
        server.shutdown()
        server.server_close()


def test_cookies_of_one_probe_are_not_sent_by_the_next(web: WebLab) -> None:
    server = web.servers[0]
    assert probe(url=f"{web.http_url}/").ok  # answers with Set-Cookie
    assert probe(url=f"{web.http_url}/status/200").ok
    last = [r for r in server.seen if r.path == "/status/200"][-1]
    assert "Cookie" not in last.headers and "cookie" not in {k.lower() for k in last.headers}
