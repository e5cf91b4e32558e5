"""An RDAP server on loopback: serves canned answers per path, misbehaves on request, counts concurrency.

Answers are ``Reply`` values (status, body, headers, delay); a path may hold a list of replies served in
turn (the last one repeats), which is how a test says "429 first, then the answer". ``dynamic`` answers
paths no table entry names (the 1,000-domain audit). ``rewrite`` replaces strings in every body at serve
time, so fixtures keep realistic public URLs while the test points them at this server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

RDAP_JSON = "application/rdap+json"


@dataclass(frozen=True)
class Reply:
    """One canned HTTP answer."""

    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = RDAP_JSON


def error_object(code: int, title: str) -> dict[str, Any]:
    """An RFC 9083 section 6 error response body."""
    return {"rdapConformance": ["rdap_level_0"], "errorCode": code, "title": title, "description": [title]}


class RdapServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 and a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Reply | list[Reply]] = {}
        self.dynamic: Callable[[str], Reply | None] | None = None
        self.rewrite: dict[str, str] = {}
        self.log: list[str] = []
        self.peak = 0
        self._active = 0
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = _QuietServer((host, 0), _handler(self))
        self._httpd.daemon_threads = True
        self.base = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> RdapServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def bootstrap(self, *tlds: str, path: str = "/rdap/") -> dict[str, Any]:
        """An RFC 9224 bootstrap file sending ``tlds`` to this server."""
        return {
            "description": "lab bootstrap",
            "publication": "2024-01-01T00:00:00Z",
            "services": [[list(tlds), [self.base + path]]],
            "version": "1.0",
        }

    def hits(self, path: str) -> int:
        return sum(1 for p in self.log if p == path)

    def reply_for(self, path: str) -> Reply:
        with self._lock:
            self.log.append(path)
            entry = self.routes.get(path)
            if isinstance(entry, list):
                turn = self._served.get(path, 0)
                self._served[path] = turn + 1
                return entry[min(turn, len(entry) - 1)]
        if entry is not None:
            return entry
        found = self.dynamic(path) if self.dynamic else None
        return found or Reply(404, error_object(404, "Not Found"))

    def render(self, reply: Reply) -> bytes:
        body = reply.body
        text = body if isinstance(body, str | bytes) else json.dumps(body) if body is not None else ""
        raw = text.encode() if isinstance(text, str) else text
        for old, new in self.rewrite.items():
            raw = raw.replace(old.encode(), new.encode())
        return raw

    def enter(self) -> None:
        with self._lock:
            self._active += 1
            self.peak = max(self.peak, self._active)

    def leave(self) -> None:
        with self._lock:
            self._active -= 1


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # the audit tests open many connections at once
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (timeout tests) is expected; anything else is still printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(server: RdapServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real RDAP servers do

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            server.enter()
            try:
                reply = server.reply_for(self.path)
                if reply.delay:
                    time.sleep(reply.delay)
                raw = server.render(reply)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer
            finally:
                server.leave()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return None

    return Handler


def synthetic_domain(name: str, expires: str, statuses: list[str]) -> dict[str, Any]:
    """A compact Verisign-shaped domain answer for fleet tests (RFC 9083 section 5.3)."""
    return {
        "objectClassName": "domain",
        "ldhName": name.upper(),
        "status": statuses,
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "1068",
                "roles": ["registrar"],
                "vcardArray": [
                    "vcard",
                    [["version", {}, "text", "4.0"], ["fn", {}, "text", "Acme Registrar"]],
                ],
                "entities": [
                    {
                        "objectClassName": "entity",
                        "roles": ["abuse"],
                        "vcardArray": ["vcard", [["email", {}, "text", "abuse@acme-registrar.example"]]],
                    }
                ],
            }
        ],
        "events": [
            {"eventAction": "registration", "eventDate": "2015-01-01T00:00:00Z"},
            {"eventAction": "expiration", "eventDate": expires},
        ],
        "secureDNS": {"delegationSigned": False},
        "nameservers": [{"objectClassName": "nameserver", "ldhName": "NS1.ACME-DNS.EXAMPLE"}],
        "rdapConformance": ["rdap_level_0"],
    }


def fleet(now: datetime, delay: float = 0.0) -> Callable[[str], Reply | None]:
    """Answers /rdap/domain/d<i>.com for any i: expiries spread over two years (some past), every 97th
    on clientHold, every 89th in its redemption period, every 101st unregistered (404)."""

    def answer(path: str) -> Reply | None:
        name = path.rsplit("/", 1)[-1]
        if not (path.startswith("/rdap/domain/d") and name[1:].split(".")[0].isdigit()):
            return None
        i = int(name[1:].split(".")[0])
        if i % 101 == 0:
            return Reply(404, error_object(404, "Not Found"), delay=delay)
        statuses = ["client hold"] if i % 97 == 0 else ["redemption period"] if i % 89 == 0 else []
        expires = (now + timedelta(days=(i * 37) % 700 - 30, hours=1)).isoformat().replace("+00:00", "Z")
        return Reply(
            body=synthetic_domain(name, expires, statuses or ["client transfer prohibited"]), delay=delay
        )

    return answer


@pytest.fixture
def rdap_server() -> Iterator[RdapServer]:
    """A fresh RDAP server per test."""
    server = RdapServer().start()
    try:
        yield server
    finally:
        server.stop()
