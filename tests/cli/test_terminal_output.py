"""The rest of what the operator reads: a command's output under its step, "no" at a notification, and a
reader that goes away (a closed pipe) is not an interruption."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from engine import audit
from tests.cli.screen import BG

OUTPUT = """
id: output
title: a command whose output the operator needs
steps:
  - id: tail
    title: the last lines of the mail log
    action: shell.run
    with: {argv: [seq, "1", "30"], read_only: true}
"""

NOTIFY = """
id: tell
title: tell people, then go on
steps:
  - id: announce
    title: tell the incident channel
    action: notify.webhook
    with: {url: "http://127.0.0.1:9/hook", text: "we are failing over"}
  - id: after
    title: the work goes on
    action: log.note
    with: {text: "still here"}
"""


def _book(tmp_path: Path, text: str) -> Path:
    path = tmp_path / (text.split("id: ", 1)[1].split()[0] + ".yaml")
    path.write_text(text)
    return path


def _records(home: Path) -> list[dict[str, Any]]:
    logs = sorted((home / "runs").glob("*/audit.jsonl"))
    return [r.to_dict() for r in audit.read(logs[-1])[0]]



def test_a_commands_last_lines_are_on_the_screen(tmp_path: Path, bg_home: Path, screens: Any) -> None:
    s = screens("run", str(_book(tmp_path, OUTPUT)))
    assert s.finish() == 0, s.text()
    text = s.text()
    assert "│ 30" in text and "│ 23" in text, text
    assert "│ 22\n" not in text + "\n" and "22 earlier line(s) of stdout in the report" in text, text
    done = next(r for r in _records(bg_home) if r["type"] == "step.succeeded")
    assert done["output"]["stdout"].split() == [str(i) for i in range(1, 31)], "the log keeps all of it"


def test_no_at_a_notification_skips_it_and_the_run_goes_on(tmp_path: Path, bg_home: Path, screens: Any) -> None:
    s = screens("run", str(_book(tmp_path, NOTIFY)))
    s.wait_for(r"Send\? \[yes / no = skip it / abort\]:$")
    s.send("no")
    assert s.finish() == 0, s.text()
    kinds = [(r["type"], r.get("step")) for r in _records(bg_home)]
    assert ("step.skipped", "announce") in kinds and ("step.succeeded", "after") in kinds
    assert ("step.applying", "announce") not in kinds


def test_a_closed_pipe_is_not_an_interruption(tmp_path: Path, bg_home: Path) -> None:
    """`breakglass run ... | head`: the reader goes away, the run does not. It finishes and records so."""
    steps = "".join(f"  - id: s{i}\n    title: step number {i} of a long run\n    action: log.note\n"
                    f"    with: {{text: 'line {i} of a long output that fills the pipe quickly'}}\n"
                    for i in range(600))
    book = _book(tmp_path, "id: long\ntitle: a long run\nsteps:\n" + steps)
    for args in (["run", str(book)], ["audit", "show", "last"]):
        reader = subprocess.Popen([BG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reader.stdout is not None and reader.stderr is not None
        assert reader.stdout.read(20)  # like `| head -c 20`: read a little, then go away
        reader.stdout.close()
        code = reader.wait(timeout=120)
        err = reader.stderr.read().decode()
        assert "internal error" not in err and "interrupted" not in err and "Traceback" not in err, err
        if args[0] == "run":
            assert code == 0, err
            finished = _records(bg_home)[-1]
            assert (finished["type"], finished["status"]) == ("run.finished", "succeeded")
            assert finished["counts"] == {"succeeded": 600}
