"""What the driving operator sees at a four-eyes gate, on the rendered 80x24 screen: the gate and its plan stay
on the screen while other people's approvals arrive, each one a new line with who and how many are still
needed, and the operator's own question comes only when the others have approved."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.cli.screen import Screen
from tests.lab.team import Team, make_team

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")


def _pending(team: Team) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = json.loads(team.bg("alice", "pending", "--json").stdout or "[]")
        if rows:
            return dict(rows[0])
        time.sleep(0.1)
    raise AssertionError("the gate never showed in `breakglass pending`")


def _approve(team: Team, who: str, gate: dict[str, str]) -> None:
    done = team.bg(who, "approve", gate["run"], "change", "--key", str(team.key(who)), "--digest", gate["digest"])
    assert done.returncode == 0, done.stderr


def test_the_approval_count_updates_while_the_gate_stays_on_the_screen(tmp_path: Path, screens: object) -> None:
    team = make_team(tmp_path)
    team.write_runbook(needed=2, timeout=120)
    screen: Screen = screens("run", str(team.runbook), "--operator", "oscar@bastion", env=team.env("oscar"))  # type: ignore[operator]
    gate_line = r"GATE change: change it\?"
    screen.wait_for(r"waiting for 2 approval\(s\) from @oncall \(not oscar@bastion\)")
    screen.wait_for(gate_line)
    gate = _pending(team)

    _approve(team, "alice", gate)
    screen.wait_for(r"approved by alice \(signature verified\): 1 of 2, 1 still needed")
    screen.stays(gate_line, 1.0)  # the count grew beneath the gate; the gate did not scroll or redraw away
    screen.stays(r"waiting for 2 approval", 0.2)
    assert "Approve?" not in screen.text()  # the operator is not asked before the others have approved

    _approve(team, "bob", gate)
    screen.wait_for(r"approved by bob \(signature verified\): 2 of 2, 0 still needed")
    screen.wait_for(r"Approve\? \[yes / no = abort / skip\]:")
    screen.stays(r"Approve\? \[yes", 1.0)
    assert re.search(r"approved by alice .* 1 of 2", screen.text()), screen.text()
    screen.send("yes")
    assert screen.finish() == 0, screen.text()
