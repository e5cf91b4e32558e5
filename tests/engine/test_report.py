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

from engine import drill
from engine.cli import app
from engine.console import JsonReporter, NullReporter
from engine.gates import Terminal
from engine.loader import load_file
from engine.notes import append_note
from engine.report import Report, from_store
from engine.report_render import render
from engine.session import RunOptions, start
from engine.store import FileStore

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
    assert [(n["by"], n["step"], n["text"]) for n in report.notes] == [
        ("the runbook", "remember", "checked example.com using token ***"),  # log.note: nobody typed it
        ("bob", "", "paged the registrar"),
    ]
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
    cmd = [exe] if exe else [sys.executable, "-c", "from engine.cli import main; main()"]
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
    nasty = "<img src=x onerror=alert(1)> | **bold** {{ 7*7 }}\nsecond line \x1b]0;pwned\x07\x1b[2J \u202egnp.exe"
    append_note(FileStore(), run_id, nasty, "eve")
    _, md, html, data = _all(run_id)
    for text in (md, html):  # control characters are shown, not obeyed, wherever a person reads the report
        assert not re.search("[\x1b\x07\u202e]", text)
    assert "^\\[\\]0;pwned\\\\x07^\\[\\[2J \\<U\\+202E\\>gnp.exe" in md  # then markdown-escaped
    assert "^[]0;pwned\\x07^[[2J &lt;U+202E&gt;gnp.exe" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    note = html.split("<h2>Operator notes</h2>")[1].split("</ul>")[0].split("eve: ")[1]  # after its timestamp
    assert "{{ 7*7 }}" in note and "49" not in note
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


# --- the run's own truth: answers, in-doubt decisions, command output, who wrote what ---------------------

ANSWERED = """id: answered
title: Answers, doubts and output
steps:
  - id: diag
    title: Look at the box
    action: shell.run
    with:
      argv:
        - sh
        - -c
        - >-
          i=1; while [ $i -le 150 ]; do echo "line $i"; i=$((i+1)); done;
          printf "\\033[2J\\033[31mred\\n\\342\\200\\256evil\\n%s\\n" "$0"
        - '````'
      read_only: true
  - id: change
    title: Flip the switch
    action: shell.run
    confirm: false
    with: {argv: ["true"]}
  - id: call
    title: Call the registrar
    action: manual
    with:
      instructions: Call them.
      checklist: [Called the registrar, Posted on the status page]
      ask: [Registrar ticket number]
      required: false
"""


class _Tty(io.StringIO):
    """Answers typed at an operator's terminal."""

    def isatty(self) -> bool:
        return True


class _CutOffWhileApplying(NullReporter):
    """A reporter whose run dies (Ctrl-C) just as ``step`` starts to change the world."""

    def __init__(self, step: str) -> None:
        self.step = step

    def event(self, rec: dict[str, Any]) -> None:
        if rec["type"] == "step.applying" and rec["step"] == self.step:
            raise KeyboardInterrupt



def _answered_run(tmp_path: Path, typed: str) -> str:
    """alice starts the run, which is cut off while ``change`` applies; bob resumes it, marks ``change`` done
    and answers the manual step."""
    from engine.session import resume

    path = tmp_path / "answered.yaml"
    path.write_text(ANSWERED)
    first = start(load_file(path), {}, RunOptions(operator="alice", terminal=Terminal(stdin=_NoTty())),
                  _CutOffWhileApplying("change"))
    assert first.status == "interrupted"
    opts = RunOptions(operator="bob", in_doubt="done", terminal=Terminal(stdin=_Tty(typed), stderr=io.StringIO()))
    again = resume(FileStore(), first.run_id, {}, opts, JsonReporter(io.StringIO()))
    assert again.status == "succeeded"
    return first.run_id


def test_answers_doubts_and_notes_are_in_every_report(bg_home: Path, tmp_path: Path) -> None:
    run_id = _answered_run(tmp_path, "y\nn\n  4411 \ncalled, they open a ticket\n")
    report, md, html, data = _all(run_id)
    # Checklist: ticked only what was ticked; answers as typed.
    assert "- [x] Called the registrar\n" in md
    assert "- [ ] Posted on the status page (not done)\n" in md and "[x] Posted" not in md
    assert "- Registrar ticket number: `4411`" in md
    answers = html.split('<div id="answers">', 1)[1].split("</div>", 1)[0]
    assert '<li data-ticked="yes">☑ Called the registrar</li>' in answers
    assert '<li data-ticked="no">☐ Posted on the status page (not done)</li>' in answers
    assert "<code>4411</code>" in answers
    call = next(s for s in data["steps"] if s["id"] == "call")
    assert call["checklist"] == {"Called the registrar": True, "Posted on the status page": False}
    assert call["answers"] == {"Registrar ticket number": "4411"}
    # The note typed at the manual step is bob's: he was driving the run by then.
    assert [(n["by"], n["step"], n["text"]) for n in report.notes] == [("bob", "call", "called, they open a ticket")]
    assert "— bob (step call): called, they open a ticket" in md
    # The in-doubt decision, with who made it.
    assert [(d["step"], d["decision"], d["by"]) for d in data["in_doubt"]] == [("change", "done", "bob")]
    assert "\n| change | marked done \\(not run again\\) | bob | " in md
    assert '<table id="in-doubt"><tr>' in html and "marked done (not run again)</td><td>bob</td>" in html


def test_command_output_is_whole_collapsed_and_shows_control_characters(bg_home: Path, tmp_path: Path) -> None:
    report, md, html, data = _all(_answered_run(tmp_path, "y\ny\n1\n\n"))
    diag = next(s for s in data["steps"] if s["id"] == "diag")
    assert diag["stdout"].count("\n") == 153 and "\x1b[31m" in diag["stdout"]  # JSON keeps the data as it was
    lines = [f"line {i}" for i in range(1, 151)]
    # Markdown: one fenced block, every line, the fence longer than the ```` the command printed.
    block = md.split("`diag` stdout (153 lines):\n\n", 1)[1].split("\n\n", 1)[0]
    assert block.splitlines()[0] == "`````" and block.splitlines()[-1] == "`````"
    assert block.splitlines()[1:151] == lines
    assert block.splitlines()[151:154] == ["^[[2J^[[31mred", "<U+202E>evil", "````"]
    # HTML: collapsed (details without open), escaped, every line.
    shown = html.split('<details data-step="diag" data-stream="stdout">', 1)[1].split("</details>", 1)[0]
    pre = shown.split('<pre class="output">', 1)[1].split("</pre>", 1)[0]
    assert pre.splitlines()[:150] == lines
    assert pre.splitlines()[150:] == ["^[[2J^[[31mred", "&lt;U+202E&gt;evil", "````"]
    for text in (md, html):
        assert "\x1b" not in text and "\u202e" not in text


def test_assumed_checklist_is_not_shown_as_ticked(bg_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "answered.yaml"
    path.write_text(ANSWERED)
    opts = RunOptions(mode="dry-run", operator="alice", yes=True, terminal=Terminal(stdin=_NoTty()))
    run_id = start(load_file(path), {}, opts, JsonReporter(io.StringIO())).run_id
    _, md, html, _ = _all(run_id)
    assert "- [ ] Called the registrar (assumed)" in md and "[x]" not in md
    assert "nobody ticked these items" in md
    assert 'data-ticked="yes"' not in html and '<li data-ticked="no">☐ Called the registrar (assumed)</li>' in html


def test_rollback_incomplete_run_report(bg_home: Path, tmp_path: Path) -> None:
    text = RUNBOOK.read_text().replace(
        "      with: {argv: [\"true\"]}\n      confirm: false", "      with: {argv: [\"false\"]}\n      confirm: false"
    )
    assert text != RUNBOOK.read_text()
    path = tmp_path / "report-demo.yaml"
    path.write_text(text)
    opts = RunOptions(operator="alice", approvals=frozenset({"change"}), terminal=Terminal(stdin=_NoTty()))
    run_id = start(load_file(path), {"token": TOKEN, "fail": "rollback"}, opts, JsonReporter(io.StringIO())).run_id
    report, md, html, data = _check_common(run_id)
    assert report.status == data["status"] == "rollback_incomplete"
    assert "**rollback\\_incomplete**" in md and "rolled back" not in md.split("## Impact window")[0]
    assert '<span class="status-rollback_incomplete">rollback_incomplete</span>' in html
    listed = CliRunner().invoke(app, ["runs"])
    assert "rollback_incomplete" in listed.output


def test_audit_show_makes_control_characters_visible() -> None:
    from engine.timeline import timeline_lines

    rec = {"seq": 1, "ts": "2024-05-01T12:00:00Z", "type": "note", "text": "ok\x1b[2J\r\nforged\u202e", "by": "eve"}
    (line,) = timeline_lines([rec])
    assert "\x1b" not in line and "\r" not in line and "\n" not in line and "\u202e" not in line
    assert "ok^[[2J\\x0d\\nforged<U+202E>" in line
