"""Web servers for the runbook labs that a test can stop mid-run: tests/lab/https.py's handler (pages, the
status routes, recorded webhook posts), one server per call, plain HTTP or HTTPS with a lab certificate."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

from tests.lab.https import LabHandler, LabServer


def serve(cert: tuple[Path, Path] | None = None) -> LabServer:
    """Start a server on 127.0.0.1 and a free port; HTTPS when ``cert`` (certificate, key) is given."""
    server = LabServer(("127.0.0.1", 0), LabHandler)
    server.received = []
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop(server: LabServer) -> None:
    """Stop a server; stopping one twice is harmless."""
    try:
        server.shutdown()
        server.server_close()
    except OSError:
        pass


def hook_url(server: LabServer) -> str:
    """A Slack-shaped webhook URL on ``server`` (its path is a secret to breakglass)."""
    return f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/lab-secret"
