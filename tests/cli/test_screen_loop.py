"""A write loop's one gate on the rendered screen (80x24): every item's plan is visible, together with the
question, before anything is applied; one answer applies them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOOP = """
id: screenloop
title: a write loop with one gate
inputs:
  out: {type: string}
steps:
  - id: mark
    title: mark each mailbox
    for_each: [alice, bob, carol]
    action: shell.run
    with:
      argv: [sh, -c, 'echo "$1" >> "$0"', "{{ inputs.out }}", "{{ item }}"]
"""


def test_a_write_loop_asks_once_showing_every_items_plan(book: Any, tmp_path: Path, screens: Any) -> None:
    out = tmp_path / "out.txt"
    s = screens("run", str(book(LOOP)), "-i", f"out={out}")
    s.wait_for(r"GATE mark: ")
    s.wait_for(r"Approve\? \[yes / no = abort / skip\]:$")
    s.stays(r"Approve\? \[yes / no = abort / skip\]:$", 1.0)
    screen = s.text()
    for i, name in enumerate(["alice", "bob", "carol"]):
        assert f"[{i}] run sh -c" in screen and name in screen, screen
    assert "3 item(s)" in screen, screen
    assert not out.exists(), "nothing is applied before the one answer"
    s.send("yes")
    assert s.finish() == 0, s.text()
    assert out.read_text().split() == ["alice", "bob", "carol"]
    assert s.text().count("GATE") == 1, "one gate for the whole loop"
