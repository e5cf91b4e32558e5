"""Who may read the page: loopback by default; elsewhere only with the token; never a change; never for a
Host this server is not (a web page whose name was pointed at 127.0.0.1 must not read the run).

127.0.0.2 stands for "another address": it is loopback to the kernel, so the test stays on this machine, but
``serve`` treats every address other than 127.0.0.1, ::1 and localhost as reachable by others.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from engine.notes import append_note
from engine.store import FileStore
from engine.web.access import new_token_file
from tests.conftest import BREAKGLASS
from tests.web.live import browser, console_errors, serving, wait_for


def _serve_refused(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BREAKGLASS, "serve", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def _one_run(home: Path) -> str:
    """A run with a few records: started, then notes (the store's own append, as `breakglass note` does)."""
    store = FileStore()
    run_id = store.create("demo")
    writer = store.writer(run_id, {"run": run_id, "mode": "live"})
    try:
        writer.append("run.started", {"runbook": {"id": "demo", "title": "a demo", "text": "steps: []"},
                                      "operator": "alice", "mode": "live"})
    finally:
        writer.close()
    for i in range(3):
        append_note(store, run_id, f"note {i}", "alice")
    return run_id


def test_another_address_without_a_token_is_refused_before_listening(bg_home: Path) -> None:
    proc = _serve_refused("--listen", "127.0.0.2:0")
    assert proc.returncode == 2
    assert "refusing to serve runs on 127.0.0.2" in proc.stderr and "--token-file" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_token_file_others_can_read_is_refused(bg_home: Path, tmp_path: Path, mode: int) -> None:
    token = tmp_path / "token"
    new_token_file(token)
    token.chmod(mode)
    proc = _serve_refused("--listen", "127.0.0.2:0", "--token-file", str(token))
    assert proc.returncode == 2 and f"chmod 600 {token}" in proc.stderr, proc.stderr


def test_a_short_token_is_refused(bg_home: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("hunter2\n")
    token.chmod(0o600)
    proc = _serve_refused("--listen", "127.0.0.2:0", "--token-file", str(token))
    assert proc.returncode == 2 and "at least 16" in proc.stderr, proc.stderr


def test_elsewhere_every_request_needs_the_token(bg_home: Path, tmp_path: Path) -> None:
    run_id = _one_run(bg_home)
    token = new_token_file(tmp_path / "token")
    with serving("--token-file", str(tmp_path / "token"), home=bg_home, listen="127.0.0.2:0") as url:
        assert url.startswith("http://127.0.0.2:")
        with httpx.Client(base_url=url, timeout=10) as client:
            for path in ("/", f"/runs/{run_id}", f"/runs/{run_id}/report", f"/runs/{run_id}/events", "/static/live.js"):
                refused = client.get(path)
                assert refused.status_code == 401, path
                assert run_id not in refused.text and "note 0" not in refused.text
                assert client.get(path, headers={"Authorization": "Bearer " + token[:-1] + "x"}).status_code == 401
                with httpx.Client(base_url=url, timeout=10, cookies={"breakglass_token": "x" * 43}) as forged:
                    assert forged.get(path).status_code == 401
            shown = client.get(f"/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
            assert shown.status_code == 200 and "note 0" in shown.text
            # A link with the token trades it for a cookie and drops it from the address.
            traded = client.get(f"/runs/{run_id}?token={token}")
            assert traded.status_code == 303 and traded.headers["location"] == f"/runs/{run_id}"
            assert "httponly" in traded.headers["set-cookie"].lower()
            assert "samesite=strict" in traded.headers["set-cookie"].lower()
            assert client.get(f"/runs/{run_id}").status_code == 200  # the cookie now


def test_the_browser_without_the_token_sees_nothing_and_with_it_the_live_run(bg_home: Path, tmp_path: Path) -> None:
    run_id = _one_run(bg_home)
    token = new_token_file(tmp_path / "token")
    with serving("--token-file", str(tmp_path / "token"), home=bg_home, listen="127.0.0.2:0") as url:
        driver = browser(tmp_path)
        try:
            driver.get(f"{url}runs/{run_id}")
            assert driver.find_element("tag name", "h1").text == "Token needed"
            assert "note 0" not in driver.page_source
            driver.get_log("browser")  # the 401 itself is logged as a failed load; what follows must be clean
            driver.get(f"{url}runs/{run_id}?token={token}")
            assert driver.current_url == f"{url}runs/{run_id}"
            wait_for("the stream to connect", lambda: driver.find_element("id", "conn").text == "live")
            append_note(FileStore(), run_id, "seen through the token", "bob")
            wait_for("the new note", lambda: "seen through the token" in driver.find_element("id", "notes").text)
            assert console_errors(driver) == []
        finally:
            driver.quit()


def test_loopback_answers_only_for_its_own_names_and_changes_nothing(bg_home: Path) -> None:
    run_id = _one_run(bg_home)
    with serving(home=bg_home) as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get(f"/runs/{run_id}").status_code == 200
            port = url.rsplit(":", 1)[1].rstrip("/")
            assert client.get("/", headers={"Host": f"localhost:{port}"}).status_code == 200
            assert client.get(f"/runs/{run_id}", headers={"Host": f"attacker.example:{port}"}).status_code == 421
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                assert client.request(method, f"/runs/{run_id}").status_code == 405
            page = client.get(f"/runs/{run_id}")
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
            assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in csp
            # No asset from anywhere else: every src and href is this server's own.
            assert "http://" not in page.text.replace(url, "") and "https://" not in page.text


def test_a_reconnecting_reader_gets_only_what_it_missed(bg_home: Path) -> None:
    run_id = _one_run(bg_home)  # records 1..4
    with serving(home=bg_home) as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            with client.stream("GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": "2"}) as stream:
                events = _events(stream.iter_lines(), until=lambda ev: ev.get("event") == "state")
            assert [e["id"] for e in events if e.get("event") == "record"] == ["3", "4"]
            with client.stream("GET", f"/runs/{run_id}/events?after=4") as stream:
                lines = stream.iter_lines()
                first = _events(lines, until=lambda ev: ev.get("event") == "state")
                assert not [e for e in first if e.get("event") == "record"]
                append_note(FileStore(), run_id, "<b>late</b>", "bob")
                later = _events(lines, until=lambda ev: ev.get("event") == "state")
            record = next(e for e in later if e.get("event") == "record")
            assert record["id"] == "5"
            assert "&lt;b&gt;late&lt;/b&gt;" in json.loads(record["data"])["html"]


def _events(lines: Iterator[str], until: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
    """Server-sent events as dicts of their fields, up to the first one ``until`` accepts."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
                if until(current):
                    return events
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        current[key] = value
    return events


