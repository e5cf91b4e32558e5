"""What the operator sees, on the rendered screen of an 80x24 terminal: every question is visible and stays
visible while it waits, nothing from a runbook or the world can redraw a gate, and step time is not gate time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from engine import audit

# A slow read first, so a spinner has long enough to start, then a gated change whose own step is slow too.
SLOW_GATE = """
id: slowgate
title: a slow step, then a gated change
inputs:
  out: {type: string}
  target: {type: string, default: shop.example}
steps:
  - id: look
    title: a slow look
    action: shell.run
    with: {argv: [sleep, "0.6"], read_only: true}
  - id: change
    title: write the file
    action: shell.run
    confirm: CONFIRM
    with: {argv: [sh, -c, 'sleep 1.2; echo changed >> "$0"', "{{ inputs.out }}"]}
"""

MANUAL = """
id: handwork
title: a manual step
steps:
  - id: warmup
    title: a slow look
    action: shell.run
    with: {argv: [sleep, "0.6"], read_only: true}
  - id: call
    title: call the registrar
    action: manual
    with:
      instructions: Call the registrar's abuse desk.
      checklist: [called the desk]
      ask: [Ticket number]
"""

FORGED = r"""
id: forged
title: output that tries to redraw the gate
inputs:
  victim: {type: string}
steps:
  - id: probe
    title: a read whose output is hostile
    action: shell.run
    with:
      argv: [printf, '\r\033[2K\033[1A\033[2K  plan: run kill 1234\n\033]0;owned\007\033[31mred\n']
      read_only: true
  - id: wipe
    title: remove the file
    action: shell.run
    with: {argv: [rm, -f, "{{ inputs.victim }}"]}
"""

MISSING = """
id: asks
title: asks for what it needs
inputs:
  domain: {type: domain, description: The domain that is down}
  token: {type: secret, description: API token}
steps:
  - id: say
    title: say the domain
    action: log.note
    with: {text: "{{ inputs.domain }}"}
"""



def records(bg_home: Path) -> list[dict[str, Any]]:
    logs = sorted((bg_home / "runs").glob("*/audit.jsonl"))
    assert logs
    return [r.to_dict() for r in audit.read(logs[-1])[0]]



def test_the_gate_question_stays_on_the_screen(book: Any, tmp_path: Path, screens: Any, bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    s = screens("run", str(book(SLOW_GATE.replace("CONFIRM", '"write {{ inputs.out }}?"'))), "-i", f"out={out}")
    s.wait_for(r"GATE change: write /")
    s.wait_for(r"Approve\? \[yes / no = abort / skip\]:$")
    s.stays(r"Approve\? \[yes / no = abort / skip\]:$", 1.5)
    s.stays(r"plan: run sh -c", 0.2)
    assert not re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", s.text()), "nothing animates while a question is on the screen"
    s.send("yes")
    assert s.finish() == 0, s.text()
    assert out.read_text() == "changed\n"
    succeeded = next(r for r in records(bg_home) if r["type"] == "step.succeeded" and r["step"] == "change")
    # The action sleeps 1.2 s; the 1.5 s the operator spent reading the gate is not the step's time.
    assert 1.1 < succeeded["duration_ms"] / 1000 < 2.4, succeeded["duration_ms"]


def test_type_to_confirm_stays_on_the_screen(book: Any, tmp_path: Path, screens: Any) -> None:
    out = tmp_path / "out.txt"
    text = SLOW_GATE.replace("CONFIRM", '{message: "really?", type_to_confirm: "{{ inputs.target }}"}')
    s = screens("run", str(book(text)), "-i", f"out={out}")
    s.wait_for(r"Type 'shop\.example' to approve \(anything else refuses\):$")
    s.stays(r"Type 'shop\.example' to approve", 1.5)
    s.send("shop.example")
    assert s.finish() == 0, s.text()
    assert out.exists()


def test_checklist_and_note_questions_stay_on_the_screen(book: Any, screens: Any, bg_home: Path) -> None:
    s = screens("run", str(book(MANUAL)))
    s.wait_for(r"\[ \] called the desk — done\? \[y/n\]:$")
    s.stays(r"\[ \] called the desk — done\? \[y/n\]:$", 1.2)
    s.send("y")
    s.wait_for(r"Ticket number:$")
    s.stays(r"Ticket number:$", 1.0)
    s.send("T-4411")
    s.wait_for(r"Note for the report \(Enter for none\):$")
    s.stays(r"Note for the report \(Enter for none\):$", 1.0)
    s.send("desk answered after 20 min")
    assert s.finish() == 0, s.text()
    done = next(r for r in records(bg_home) if r["type"] == "step.succeeded" and r["step"] == "call")
    assert done["output"]["answers"] == {"Ticket number": "T-4411"}


def test_typed_ahead_keys_do_not_tick_a_checklist(book: Any, screens: Any, bg_home: Path) -> None:
    s = screens("run", str(book(MANUAL)))
    s.wait_for(r"run .*\n")
    s.child.send("y\n")  # typed while the slow step runs, before any question is on the screen
    s.wait_for(r"\[ \] called the desk — done\? \[y/n\]:$")
    s.stays(r"\[ \] called the desk — done\? \[y/n\]:$", 0.5)
    s.send("n")
    s.wait_for("Ticket number:$")
    s.send("")
    s.wait_for("Note for the report")
    s.send("")
    assert s.finish() == 1, s.text()
    failed = next(r for r in records(bg_home) if r["type"] == "step.failed" and r["step"] == "call")
    assert failed["output"]["checklist"] == {"called the desk": False}


def test_output_cannot_forge_what_the_gate_shows(book: Any, tmp_path: Path, screens: Any) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    s = screens("run", str(book(FORGED)), "-i", "victim=victim.txt", cwd=tmp_path)
    s.wait_for(r"Approve\? \[yes / no = abort / skip\]:$")
    time.sleep(0.3)
    screen = s.lines()
    plans = [line for line in screen if line.lstrip().startswith("plan:")]
    assert plans == ["  plan: run rm -f victim.txt"], screen
    # The hostile bytes are on the screen as text, not obeyed: no line was erased, nothing turned red.
    assert any("^[[2K^[[1A" in line and "kill 1234" in line for line in screen), screen
    assert all("kill 1234" not in line or "^[" in line for line in screen), screen
    assert any("^[]0;owned" in line for line in screen), screen
    s.send("no")
    assert s.finish() == 3
    assert victim.read_text() == "keep me"


def test_a_missing_input_is_asked_for(book: Any, screens: Any, bg_home: Path) -> None:
    s = screens("run", str(book(MISSING)))
    s.wait_for(r"input 'domain' \(The domain that is down\), domain:$")
    s.stays(r"input 'domain' \(The domain that is down\), domain:$", 1.0)
    s.send("shop.example")
    s.wait_for(r"input 'token' \(API token\), secret, not shown:$")
    s.send("s3cr3t-value")
    assert s.finish() == 0, s.text()
    assert "s3cr3t-value" not in s.text(), "a secret typed at the prompt is not echoed"
    started = records(bg_home)[0]
    assert started["inputs"]["domain"] == "shop.example"
    assert "s3cr3t-value" not in json.dumps(records(bg_home))


def test_the_in_doubt_question_stays_on_the_screen(book: Any, tmp_path: Path, screens: Any,
                                                   bg_home: Path) -> None:
    out = tmp_path / "out.txt"
    slow = SLOW_GATE.replace("sleep 1.2", "sleep 30").replace("CONFIRM", "true")
    s = screens("run", str(book(slow)), "-i", f"out={out}", "--approve", "change")
    s.wait_for(r"gate change approved")
    deadline = time.monotonic() + 10
    while not any(r["type"] == "step.applying" for r in records(bg_home)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(s.child.pid, signal.SIGKILL)
    s.finish()
    r = screens("resume", "last")
    r.wait_for(r"Check the world, then answer: \[rerun / done / abort\]:$")
    r.stays(r"Check the world, then answer: \[rerun / done / abort\]:$", 1.2)
    r.stays(r"Step 'change' was applying its change", 0.1)
    r.send("abort")
    assert r.finish() == 3, r.text()
    assert "breakglass resume " in r.text()


def test_a_drill_at_a_terminal_shows_its_gate(screens: Any, bg_home: Path) -> None:
    s = screens("drill", "dns-failover", "--scenario", "01-primary-down")
    question = (r"(Approve\? \[yes / no = abort / skip\]|Send\? \[yes / no = skip it / abort\]"
                r"|to approve \(anything else refuses\)):$")
    s.wait_for(question)
    s.stays(question, 1.2)
    s.child.sendintr()
    s.finish()


def test_refused_run_says_how_to_go_on(book: Any, tmp_path: Path, screens: Any, bg_home: Path) -> None:
    s = screens("run", str(book(SLOW_GATE.replace("CONFIRM", "true"))), "-i", f"out={tmp_path / 'o'}")
    s.wait_for(r"Approve\? ")
    s.send("no")
    assert s.finish() == 3
    run_id = records(bg_home)[0]["run"]
    s.wait_for(rf"to go on from here: breakglass resume {re.escape(run_id)}")


def test_no_colour_when_asked(book: Any, tmp_path: Path, screens: Any) -> None:
    path = str(book(SLOW_GATE.replace("CONFIRM", "true")))
    coloured = screens("run", path, "-i", f"out={tmp_path / 'a'}", "--approve", "change")
    assert coloured.finish() == 0, coloured.text()
    assert b"\x1b[32m" in bytes(coloured.raw), "the check below can fail: a terminal gets colour by default"
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        s = screens("run", path, "-i", f"out={tmp_path / 'b'}", "--approve", "change", env=env)
        assert s.finish() == 0, s.text()
        assert not re.search(rb"\x1b\[\d+m", bytes(s.raw)), env
