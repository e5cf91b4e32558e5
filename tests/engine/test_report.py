"""Post-incident reports from real runs: every audit event in the timeline, in markdown, HTML and JSON."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from breakglass.engine import drill
from breakglass.engine.cli import app
from breakglass.engine.console import JsonReporter
from breakglass.engine.gates import Terminal
from breakglass.engine.loader import load_file
from breakglass.engine.notes import append_note
from breakglass.engine.report import Report, from_store
from breakglass.engine.report_render import render
from breakglass.engine.session import RunOptions, start
from breakglass.engine.store import FileStore

HERE = Path(__file__).parent
RUNBOOK = HERE / "report_case" / "report-demo.yaml"
DRILL_RUNBOOK = HERE / "drill_case" / "drill-demo.yaml"
TOKEN = "s3cr3t-t0ken-value"


class _NoTty(io.StringIO):
    def isatty(self) -> bool:
        return False


def _run(mode: str = "live", approvals: frozenset[str] = frozenset({"change"}), **given: Any) -> str:
    opts = RunOptions(
        mode=mode,
        operator="alice",
        approvals=approvals,
        yes=mode != "live",
        terminal=Terminal(stdin=_NoTty()),
    )
    outcome = start(load_file(RUNBOOK), {"token": TOKEN, **given}, opts, JsonReporter(io.StringIO()))
    return outcome.run_id


def _drill_run() -> str:
    loaded = load_file(DRILL_RUNBOOK)
    scenario = drill.load_scenario(drill.find_scenario(loaded.path, "drill-demo", None))
    opts = RunOptions(operator="alice", approvals=frozenset({"switch"}), terminal=Terminal(stdin=_NoTty()))
    return drill.run_drill(loaded, scenario, {}, opts, JsonReporter(io.StringIO())).run_id


def _log_lines(run_id: str) -> list[str]:
    return FileStore().log_path(run_id).read_text().splitlines()


def _md_timeline_seqs(md: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\| (\d+) \| \d{4}-\d\d-\d\d ", md, re.M)]


def _html_timeline_seqs(html: str) -> list[int]:
    table = html.split('<table id="events">', 1)[1].split("</table>", 1)[0]
    return [int(m) for m in re.findall(r'<tr><td class="num">(\d+)</td>', table)]


def _all(run_id: str) -> tuple[Report, str, str, dict[str, Any]]:
    report = from_store(FileStore(), run_id)
    return report, render(report, "markdown"), render(report, "html"), json.loads(render(report, "json"))


def _check_common(run_id: str) -> tuple[Report, str, str, dict[str, Any]]:
    """What holds for every report: every event, durations that add up, named approvers, no secret."""
    report, md, html, data = _all(run_id)
    n = len(_log_lines(run_id))
    assert _md_timeline_seqs(md) == list(range(1, n + 1))
    assert _html_timeline_seqs(html) == list(range(1, n + 1))
    assert [e["seq"] for e in data["events"]] == list(range(1, n + 1))
    durations = [s.duration_s for s in report.steps if s.duration_s is not None]
    assert sum(durations) <= report.total_s + 0.002
    for gate in report.gates:
        if gate.approved:
            assert gate.by == "alice" and gate.how in ("flag", "yes", "tty")
            assert gate.waited_s is not None and 0 <= gate.waited_s <= report.total_s
    for text in (md, html, json.dumps(data)):
        assert TOKEN not in text
    assert report.chain.ok and "does not verify" not in md.lower()
    return report, md, html, data


def test_live_run_report(bg_home: Path) -> None:
    run_id = _run()
    append_note(FileStore(), run_id, "paged the registrar", "bob")
    report, md, html, data = _check_common(run_id)
    assert report.status == "succeeded" and report.finished and report.mode == "live"
    assert report.operators == ["alice", "bob"]
    assert report.inputs["token"] == "***" and report.inputs["domain"] == "example.com"
    change = next(s for s in report.steps if s.id == "change")
    assert (change.effect, change.status, change.approved_by) == ("write", "succeeded", "alice (flag)")
    assert change.summary == "run true"
    assert report.time_to_diagnose_s is not None and report.time_to_mitigate_s is not None
    assert 0 <= report.time_to_diagnose_s <= report.time_to_mitigate_s <= report.total_s
    assert [(n["by"], n["text"]) for n in report.notes][-1] == ("bob", "paged the registrar")
    assert "| change | approved | alice | flag |" in md
    assert (
        "checked example.com using token \\*\\*\\*" in md
    )  # the log.note, redacted where it entered the log
    assert data["status"] == "succeeded" and data["chain"]["ok"] is True
    for heading in ("## Root cause", "## Contributing factors", "## Lessons learned", "## Action items"):
        assert heading in md
    assert md.count("<!-- EDIT:") == 4 and "EDIT ME" in html


def test_dry_run_report(bg_home: Path) -> None:
    report, md, _, _ = _check_common(_run("dry-run", frozenset()))
    assert report.mode == "dry-run" and "**DRY-RUN**" in md
    change = next(s for s in report.steps if s.id == "change")
    assert change.status == "planned" and report.time_to_mitigate_s is None


def test_drill_report_shows_the_grade(bg_home: Path) -> None:
    report, md, html, data = _check_common(_drill_run())
    assert report.mode == "drill" and report.drill is not None
    assert (report.drill["score"], report.drill["total"]) == (7, 7)
    assert "**DRILL**" in md and "**7/7** as expected" in md
    assert 'id="drill-grade"' in html and data["drill"]["scenario"] == "dead-origin"


def test_aborted_run_report(bg_home: Path) -> None:
    report, md, _, _ = _check_common(_run(fail="abort"))
    assert report.status == "failed"
    assert [f["subject"] for f in report.failures] == ["breaks"]
    assert "step.failed breaks: the switch did not help" in md


def test_rolled_back_run_report(bg_home: Path) -> None:
    report, md, _, _ = _check_common(_run(fail="rollback"))
    assert report.status == "rolled_back"
    assert [b["type"] for b in report.rollback] == [
        "rollback.begun",
        "rollback.started",
        "rollback.succeeded",
    ]
    assert next(s for s in report.steps if s.id == "change").status == "rolled_back"
    assert "rollback.succeeded change" in md


def test_refused_run_report(bg_home: Path) -> None:
    report, md, _, _ = _check_common(_run(approvals=frozenset()))
    assert report.status == "refused"
    gate = report.gates[0]
    assert (gate.gate, gate.approved, gate.how, gate.by) == ("change", False, "no-tty", "alice")
    assert "| change | refused \\(abort\\) | alice | no-tty |" in md


def test_interrupted_run_live_view_then_killed(bg_home: Path) -> None:
    exe = shutil.which("breakglass")
    cmd = [exe] if exe else [sys.executable, "-c", "from breakglass.engine.cli import main; main()"]
    proc = subprocess.Popen(
        [*cmd, "run", str(RUNBOOK), "-i", "pause=60", "--approve", "change", "--operator", "alice"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "REPORT_DEMO_TOKEN": TOKEN},
    )
    try:
        deadline = time.monotonic() + 60
        run_id = ""
        while time.monotonic() < deadline:
            runs = FileStore().list_runs()
            if runs and '"step":"pause"' in FileStore().log_path(runs[0].id).read_text():
                run_id = runs[0].id
                break
            time.sleep(0.1)
        assert run_id, "the run never reached its pause step"
        live, live_md, live_html, _ = _check_common(run_id)
        assert (live.status, live.finished, live.at_step) == ("in_progress", False, "pause")
        assert "**Run still in progress** at step `pause`" in live_md and 'id="live-status"' in live_html
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    dead, md, _, _ = _check_common(run_id)
    assert (dead.status, dead.finished, dead.at_step) == ("interrupted", False, "pause")
    assert "**Run interrupted** at step `pause`" in md
    assert not any(e.type == "run.finished" for e in dead.events)


def test_tampered_log_is_flagged_and_still_rendered(bg_home: Path) -> None:
    run_id = _run()
    path = FileStore().log_path(run_id)
    lines = path.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["output"] = {"forged": True}
    lines[2] = json.dumps(edited, sort_keys=True, separators=(",", ":"))
    del lines[5]
    lines.insert(7, "{not json")
    path.write_text("\n".join(lines) + "\n")
    report, md, html, data = _all(run_id)
    assert not report.chain.ok and data["chain"]["ok"] is False
    problems = " ".join(report.chain.problems)
    assert "line 3: content does not match its hash" in problems and "line 8: unreadable" in problems
    assert "**The audit log does not verify" in md.split("## Summary")[0]  # prominent: above everything
    assert 'id="tampered"' in html.split("<h2>Summary</h2>")[0]
    assert len(_md_timeline_seqs(md)) == len(lines) - 1  # everything readable is still shown


def test_values_are_escaped_and_never_rendered_as_templates(bg_home: Path) -> None:
    run_id = _run()
    nasty = "<img src=x onerror=alert(1)> | **bold** {{ 7*7 }}\nsecond line"
    append_note(FileStore(), run_id, nasty, "eve")
    _, md, html, data = _all(run_id)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in html.split("<h2>Operator notes</h2>")[1].split("</ul>")[0]
    row = next(line for line in md.splitlines() if "onerror" in line and line.startswith("| "))
    assert not re.search(r"(?<!\\)<img", md)
    assert len(re.findall(r"(?<!\\)\|", row)) == 8  # 7 cells: the value's own | cannot split the row
    assert "\\{\\{ 7\\*7 \\}\\}" in md
    assert data["notes"][-1]["text"] == nasty


def test_html_is_self_contained(bg_home: Path) -> None:
    _, _, html, _ = _all(_run())
    assert not re.search(r"https?:|ftp:|//[a-z0-9]", html, re.I)
    assert not re.search(r"<[^>]*\s(?:src|href|action|srcset|poster|data|background)\s*=", html, re.I)
    for loader in ("url(", "@import", "<link", "<iframe", "<img", "fetch(", "XMLHttpRequest", "import("):
        assert loader not in html
    assert "default-src 'none'" in html


def test_cli_report_formats_and_file(bg_home: Path, tmp_path: Path) -> None:
    run_id = _run()
    runner = CliRunner()
    for fmt in ("markdown", "html", "json"):
        out = tmp_path / f"r.{fmt}"
        result = runner.invoke(app, ["report", run_id[:20], "--format", fmt, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 1000
    shown = runner.invoke(app, ["report", "last"])
    assert shown.exit_code == 0 and shown.output.startswith("# Post-incident report: Demo outage")
    bad = runner.invoke(app, ["report", "last", "--format", "pdf"])
    assert bad.exit_code != 0
