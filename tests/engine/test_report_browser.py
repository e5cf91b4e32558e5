"""The HTML report in a real headless Chromium: the timeline draws, and no script error happens.

The page's own script sets ``data-timeline="ok"`` on <body> only after drawing every bar, and its
``window.onerror`` marks <body> with ``data-js-error`` and writes into ``#js-errors``; the DOM Chromium dumps
after load tells both. A screenshot is kept in tests/artifacts/ for people to look at.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine import drill
from engine.console import JsonReporter
from engine.gates import Terminal
from engine.loader import load_file
from engine.report import from_store
from engine.report_render import render
from engine.session import RunOptions
from engine.store import FileStore

HERE = Path(__file__).parent
ARTIFACTS = HERE.parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


class _NoTty(io.StringIO):
    def isatty(self) -> bool:
        return False


def _chromium(tmp_path: Path, page: Path, *extra: str) -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *extra,
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _body(dom: str) -> str:
    match = re.search(r"<body[^>]*>", dom)
    assert match, dom[:500]
    return match.group(0)


def _drill_report(tmp_path: Path) -> tuple[Path, int, int]:
    loaded = load_file(HERE / "drill_case" / "drill-demo.yaml")
    scenario = drill.load_scenario(drill.find_scenario(loaded.path, "drill-demo", "switch-breaks"))
    opts = RunOptions(operator="alice", approvals=frozenset({"switch"}), terminal=Terminal(stdin=_NoTty()))
    run_id = drill.run_drill(loaded, scenario, {}, opts, JsonReporter(io.StringIO())).run_id
    report = from_store(FileStore(), run_id)
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    return page, sum(1 for s in report.steps if s.start_s is not None), len(report.gates)


def test_timeline_renders_without_script_errors(bg_home: Path, tmp_path: Path) -> None:
    page, steps, gates = _drill_report(tmp_path)
    body = _body(_chromium(tmp_path, page, "--dump-dom"))
    assert "data-js-error" not in body
    assert 'data-timeline="ok"' in body
    assert f'data-timeline-bars="{steps}"' in body and f'data-timeline-gates="{gates}"' in body
    assert steps >= 5 and gates >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-timeline.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_script_error_is_caught_by_the_marker(bg_home: Path, tmp_path: Path) -> None:
    """The check above can fail: break the page's data and the error shows in the dumped DOM."""
    page, _, _ = _drill_report(tmp_path)
    html = page.read_text()
    html = re.sub(
        r'(<script type="application/json" id="timeline-data">).*?(</script>)',
        r"\1{broken\2",
        html,
        flags=re.S,
    )
    page.write_text(html)
    dom = _chromium(tmp_path, page, "--dump-dom")
    body = _body(dom)
    assert 'data-js-error="1"' in body and 'data-timeline="pending"' in body
    assert "script error:" in dom
