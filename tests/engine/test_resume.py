"""Resume: a changed runbook is refused unless accepted, and a step in doubt is the operator's call."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

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


# --- two resumes of one run (issue 14, item 7) -----------------------------------------------------------

SLOW_REPLAY = """
import sys, time
from pathlib import Path
from engine import cli, session

replayed, go = Path(sys.argv[1]), Path(sys.argv[2])
original = session.replay

def slow_replay(ids, records):
    # Stop right after the log is replayed: the window in which another resume may act on the same run.
    state = original(ids, records)
    replayed.touch()
    end = time.monotonic() + 30
    while not go.exists() and time.monotonic() < end:
        time.sleep(0.02)
    return state

session.replay = slow_replay
sys.argv = ["breakglass", *sys.argv[3:]]
cli.main()
"""


def _refused_at_the_gate(tmp_path: Path, home: Path) -> tuple[Path, str]:
    """A run stopped by its gate (no terminal, no --approve): step 'change' is still to do."""
    out = tmp_path / "out.txt"
    rb = tmp_path / "two-steps.yaml"
    rb.write_text(TWO_STEPS.format(out=out, sleep=0))
    assert _bg("run", str(rb)).returncode == 3
    assert not out.exists()
    return out, _only_run(home)


def test_two_resumes_of_one_run_apply_the_step_once(tmp_path: Path, bg_home: Path) -> None:
    out, run_id = _refused_at_the_gate(tmp_path, bg_home)
    replayed, go = tmp_path / "replayed", tmp_path / "go"
    script = tmp_path / "slow_resume.py"
    script.write_text(SLOW_REPLAY)
    first = subprocess.Popen([sys.executable, str(script), str(replayed), str(go), "resume", run_id,
                              "--approve", "change"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not replayed.exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first resume never replayed"
            time.sleep(0.02)
        second = _bg("resume", run_id, "--approve", "change")
    finally:
        go.touch()
        first_out, first_err = first.communicate(timeout=60)
    assert out.read_text() == "applied\n", "both resumes applied the step"
    # The first holds the run while it replays: the second is told so and does nothing.
    assert first.returncode == 0, first_out + first_err
    assert second.returncode == 5, second.stdout + second.stderr
    assert "being driven by another process" in second.stderr
    assert _bg("audit", "verify", run_id).returncode == 0


# --- changed inputs on resume (issue 14, item 8) ---------------------------------------------------------

TARGETED = """\
id: targeted
title: Change one target
inputs:
  target: {{type: string}}
steps:
  - id: change
    title: Change the target
    action: shell.run
    with: {{argv: [sh, -c, 'echo "$1" >> "$0"', "{out}", "{{{{ inputs.target }}}}"]}}
"""


def _targeted_run(tmp_path: Path, home: Path) -> tuple[Path, str]:
    out = tmp_path / "out.txt"
    rb = tmp_path / "targeted.yaml"
    rb.write_text(TARGETED.format(out=out))
    assert _bg("run", str(rb), "-i", "target=staging").returncode == 3  # checked on staging, stopped at the gate
    return out, _only_run(home)


def _records(home: Path, run_id: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "runs" / run_id / "audit.jsonl").read_text().splitlines()]


def test_a_changed_input_on_resume_is_refused(tmp_path: Path, bg_home: Path) -> None:
    out, run_id = _targeted_run(tmp_path, bg_home)
    before = (bg_home / "runs" / run_id / "audit.jsonl").read_bytes()
    refused = _bg("resume", run_id, "-i", "target=production", "--approve", "change")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "input 'target' was 'staging' when this run started, now 'production'" in refused.stderr
    assert "--accept-changed-inputs" in refused.stderr and "Traceback" not in refused.stderr
    assert not out.exists()
    assert (bg_home / "runs" / run_id / "audit.jsonl").read_bytes() == before


def test_the_same_input_again_is_not_a_change(tmp_path: Path, bg_home: Path) -> None:
    out, run_id = _targeted_run(tmp_path, bg_home)
    resumed = _bg("resume", run_id, "-i", "target=staging", "--approve", "change")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert out.read_text() == "staging\n"
    assert not [r for r in _records(bg_home, run_id) if r["type"] == "run.inputs_changed"]


def test_an_accepted_input_change_is_recorded_and_shown(tmp_path: Path, bg_home: Path) -> None:
    out, run_id = _targeted_run(tmp_path, bg_home)
    resumed = _bg("resume", run_id, "-i", "target=production", "--approve", "change",
                  "--accept-changed-inputs", "--operator", "ana")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert out.read_text() == "production\n"
    changed = [r for r in _records(bg_home, run_id) if r["type"] == "run.inputs_changed"]
    assert len(changed) == 1
    assert changed[0]["changes"] == {"target": {"old": "staging", "new": "production"}}
    assert changed[0]["by"] == "ana"
    shown = _bg("audit", "show", run_id).stdout
    assert "target: 'staging' → 'production'" in shown
    report = _bg("report", run_id, "--format", "markdown").stdout
    section = report.split("## Inputs changed on resume", 1)[1].split("\n## ", 1)[0]
    assert "`target`" in section and "staging" in section and "production" in section and "ana" in section
    html = _bg("report", run_id, "--format", "html").stdout
    assert 'id="inputs-changed"' in html and "production" in html


# --- an optional input left empty (issue 14, item 11) ----------------------------------------------------

OPTIONAL = """\
id: optional
title: An optional address
inputs:
  address: {{type: ip, required: false}}
steps:
  - id: change
    title: Append a line
    action: shell.run
    with: {{argv: [sh, -c, 'echo applied >> "$0"', "{out}"]}}
"""


def test_resume_with_an_optional_input_left_empty(tmp_path: Path, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    rb = tmp_path / "optional.yaml"
    rb.write_text(OPTIONAL.format(out=out))
    assert _bg("run", str(rb)).returncode == 3
    run_id = _only_run(bg_home)
    assert _records(bg_home, run_id)[0]["inputs"] == {"address": None}
    resumed = _bg("resume", run_id, "--approve", "change")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert out.read_text() == "applied\n"


SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "runbooks" / "scenarios").glob("*/*.yaml"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{p.parent.name}/{p.stem}" for p in SCENARIOS])
def test_every_shipped_drill_resumes(scenario: Path, bg_home: Path) -> None:
    """Stopped at its first gate (CliRunner's stdin is no terminal), then resumed with every gate approved."""
    from typer.testing import CliRunner

    from engine.cli import app

    stopped = CliRunner().invoke(app, ["drill", scenario.parent.name, "--scenario", scenario.stem])
    assert stopped.exception is None or isinstance(stopped.exception, SystemExit), stopped.exception
    run_id = _only_run(bg_home)
    resumed = CliRunner().invoke(app, ["resume", run_id, "--yes"])
    assert resumed.exception is None or isinstance(resumed.exception, SystemExit), resumed.exception
    # 1: the scenario's run fails on purpose; 3: a scripted approver refuses a four-eyes gate (--yes is the
    # operator's answer, never other people's)
    from engine.scenario import load_scenario

    allowed = (0, 1, 3) if load_scenario(scenario).expect.outcome == "refused" else (0, 1)
    assert resumed.exit_code in allowed, resumed.output
    assert _records(bg_home, run_id)[-1]["type"] == "run.finished"
