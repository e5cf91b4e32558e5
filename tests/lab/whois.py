"""A WHOIS server (RFC 3912) on loopback: one query line in, canned text out, then close."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

NO_MATCH = 'No match for "{domain}".\r\n>>> Last update of WHOIS database: 2024-11-20T10:00:00Z <<<\r\n'


class WhoisServer:
    """Answers ``answers[domain]`` (case-insensitive), else a Verisign-style "No match"; ``delay`` stalls."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.answers: dict[str, str | bytes] = {}  # bytes go out as they are (JPRS's ISO-2022-JP)
        self.delay = 0.0
        self.queries: list[str] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(512).decode("ascii", "replace").strip()
                outer.queries.append(line)
                if outer.delay:
                    time.sleep(outer.delay)
                text = outer.answers.get(line.lower(), NO_MATCH.format(domain=line.upper()))
                try:
                    self.wfile.write(text if isinstance(text, bytes) else text.encode())
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.address = f"{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def whois_server() -> Iterator[WhoisServer]:
    server = WhoisServer()
    try:
        yield server
    finally:
        server.stop()
