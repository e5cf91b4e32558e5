"""Resume: a changed runbook is refused unless accepted, and a step in doubt is the operator's call."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pexpect

from tests.conftest import BREAKGLASS

TWO_STEPS = """\
id: two-steps
title: Append, then note
steps:
  - id: change
    title: Append a line, then take a while
    action: shell.run
    with: {{argv: [sh, -c, 'echo applied >> "$0"; sleep {sleep}', "{out}"]}}
  - id: after
    title: Note the end
    action: log.note
    with: {{text: done}}
"""


def _bg(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BREAKGLASS, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60, **kw)  # type: ignore[call-overload]


def _only_run(home: Path) -> str:
    runs = json.loads(_bg("runs", "--json").stdout)
    assert len(runs) == 1
    return str(runs[0]["id"])


def _killed_while_applying(tmp_path: Path, home: Path) -> tuple[Path, Path, str]:
    out = tmp_path / "out.txt"
    rb = tmp_path / "two-steps.yaml"
    rb.write_text(TWO_STEPS.format(out=out, sleep=30))
    proc = subprocess.Popen([BREAKGLASS, "run", str(rb), "--approve", "change"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    rb.write_text(TWO_STEPS.format(out=out, sleep=0))  # the fix an operator might make before resuming
    return rb, out, _only_run(home)


def test_changed_runbook_is_refused_until_accepted(tmp_path: Path, bg_home: Path) -> None:
    _rb, out, run_id = _killed_while_applying(tmp_path, bg_home)
    refused = _bg("resume", run_id, "--in-doubt", "done")
    assert refused.returncode == 2
    assert "the runbook changed since this run started" in refused.stderr
    assert "--accept-changed" in refused.stderr and "Traceback" not in refused.stderr
    accepted = _bg("resume", run_id, "--in-doubt", "done", "--accept-changed")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert out.read_text() == "applied\n"  # marked done: not applied a second time


def test_in_doubt_without_a_terminal_fails_closed(tmp_path: Path, bg_home: Path) -> None:
    _rb, out, run_id = _killed_while_applying(tmp_path, bg_home)
    result = _bg("resume", run_id, "--accept-changed")
    assert result.returncode == 3
    assert "step 'change' may or may not have changed the world" in result.stderr
    assert out.read_text() == "applied\n"
    assert _bg("audit", "verify", run_id).returncode == 0
    runs = json.loads(_bg("runs", "--json").stdout)
    assert runs[0]["status"] == "refused"


def test_in_doubt_answered_at_the_terminal(tmp_path: Path, bg_home: Path) -> None:
    _rb, out, run_id = _killed_while_applying(tmp_path, bg_home)
    child = pexpect.spawn(BREAKGLASS, ["resume", run_id, "--accept-changed", "--approve", "change"],
                          encoding="utf-8", timeout=30)
    child.expect("may or may not have happened")
    child.expect(r"\[rerun / done / abort\]")
    child.sendline("rerun")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert out.read_text() == "applied\napplied\n"  # the operator chose to run it again
    log = (bg_home / "runs" / run_id / "audit.jsonl").read_text().splitlines()
    decision = [json.loads(line) for line in log if '"step.in_doubt"' in line]
    assert decision and decision[0]["decision"] == "rerun"


def test_resuming_a_finished_run_does_nothing(tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    rb = tmp_path / "two-steps.yaml"
    rb.write_text(TWO_STEPS.format(out=out, sleep=0))
    assert _bg("run", str(rb), "--approve", "change").returncode == 0
    run_id = _only_run(bg_home)
    before = (bg_home / "runs" / run_id / "audit.jsonl").read_bytes()
    again = _bg("resume", run_id)
    assert again.returncode == 0 and "already finished; nothing to resume" in again.stderr
    assert (bg_home / "runs" / run_id / "audit.jsonl").read_bytes() == before
    assert out.read_text() == "applied\n"


def test_accepted_change_that_drops_a_recorded_step_is_explained(tmp_path: Path, bg_home: Path) -> None:
    rb, _out, run_id = _killed_while_applying(tmp_path, bg_home)
    rb.write_text(rb.read_text().replace("id: change", "id: renamed"))
    result = _bg("resume", run_id, "--in-doubt", "done", "--accept-changed")
    assert result.returncode == 2
    assert "no longer has step(s) change that this run already recorded" in result.stderr
    assert "Traceback" not in result.stderr
