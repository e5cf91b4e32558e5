"""Web servers for the runbook labs that a test can stop mid-run: tests/lab/https.py's handler (pages, the
status routes, recorded webhook posts), one server per call, plain HTTP or HTTPS with a lab certificate."""

from __future__ import annotations

from tests.lab.https import LabServer, serve  # noqa: F401  (serve is re-exported for the lab tests)


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
