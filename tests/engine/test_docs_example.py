"""The action example in docs/writing-actions.md works as written, against a local HTTP server."""

from __future__ import annotations

import re
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from actions.base import ActionContext, Effect
from actions.registry import Registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-actions.md"


def _example() -> types.ModuleType:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code, "the document lost its example"
    module = types.ModuleType("docs_example")
    exec(compile(code.group(1), str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own document
    return module


def test_documented_action_plans_applies_and_declares_its_secret() -> None:
    seen: list[tuple[str, str]] = []

    class Pager(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            seen.append((self.path, self.headers.get("Authorization", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cls = _example().PagerAck
        registry = Registry()
        registry.register(cls)
        assert registry.get("pager.ack") is cls and cls.effect is Effect.WRITE
        params = cls.Params(incident="INC-7", token="tok-123456",
                            api=f"http://127.0.0.1:{server.server_address[1]}")
        action = cls()
        assert action.secrets_for(params) == ("tok-123456",)
        plan = action.plan(params, ActionContext())
        assert plan.summary.startswith("acknowledge INC-7 at http://127.0.0.1:") and not seen
        result = action.apply(params, ActionContext(), plan)
        assert result.ok and result.output == {"acknowledged": True, "status": 200}
        assert seen == [("/incidents/INC-7/ack", "Bearer tok-123456")]
    finally:
        server.shutdown()
