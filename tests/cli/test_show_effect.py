"""``breakglass show`` marks what the run will gate, and says when one approval applies a change repeatedly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import app


def _marks(out: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(r"^ +\d+\. \[(...)\] (\w+) ", out, re.M)}


def test_show_marks_the_test_message_that_sends_mail_as_gated() -> None:
    """mail-ip-blacklisted's test_message writes send_to as a template: it sends mail and is gated."""
    result = CliRunner().invoke(app, ["show", "mail-ip-blacklisted"])
    assert result.exit_code == 0, result.output
    marks = _marks(result.stdout)
    assert marks["test_message"] == "GW "
    assert marks["probe_relay"] == "   "  # the same action without send_to only reads


def test_validate_refuses_a_read_only_written_as_yes(tmp_path: Path) -> None:
    path = tmp_path / "yes-read-only.yaml"
    path.write_text("id: yes-read-only\ntitle: t\nsteps:\n  - id: change\n    title: change\n"
                    "    action: shell.run\n    with:\n      argv: [touch, /nonexistent]\n      read_only: \"yes\"\n",
                    encoding="utf-8")
    script = shutil.which("breakglass")
    cmd = [script] if script else [sys.executable, "-c", "from engine.cli import main; main()"]
    proc = subprocess.run([*cmd, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert re.search(rf"^{re.escape(str(path))}:9:\d+: 'read_only' must be a literal true or false", proc.stderr,
                     re.M), proc.stderr


def test_show_says_how_often_one_approval_applies(tmp_path: Path) -> None:
    path = tmp_path / "repeat.yaml"
    path.write_text("""\
id: repeat
title: repeats
steps:
  - id: push
    title: push the config
    action: shell.run
    retries: {attempts: 4, delay: 1}
    with: {argv: [touch, /nonexistent]}
  - id: poll
    title: poll the status
    action: shell.run
    retries: {attempts: 4, delay: 1}
    with: {argv: ["true"], read_only: true}
""", encoding="utf-8")
    result = CliRunner().invoke(app, ["show", str(path)])
    assert result.exit_code == 0, result.output
    push, poll = re.split(r"^ +\d+\. ", result.stdout, flags=re.M)[1:]  # one block per step
    assert "repeats: may apply up to 4 times (retries)" in push
    assert "repeats" not in poll  # a read repeats harmlessly
