"""The customer-update reminder on the rendered 80x24 screen: it is shown where the operator is looking (above
the next gate's question) and stays there while the question waits, and the update's text is in the gate."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.screen import Screen
from tests.engine.test_comms import RUNBOOK, SCENARIO


def test_the_reminder_stays_on_screen_above_the_gate_that_posts_the_update(tmp_path: Path, screens: object) -> None:
    book = tmp_path / "site-down.yaml"
    book.write_text(RUNBOOK, encoding="utf-8")
    case = tmp_path / "scenarios" / "site-down" / "01-slow.yaml"
    case.parent.mkdir(parents=True)
    case.write_text(SCENARIO, encoding="utf-8")
    env = {"BREAKGLASS_HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    screen: Screen = screens("drill", str(book), "--scenario", str(case), "--operator", "oscar", env=env)  # type: ignore[operator]
    reminder = r"^  ⏰ customer update due \d\d:\d\d UTC \(every 30 min\): status_page$"
    screen.wait_for(r"GATE post: run 'Tell customers'\?")
    screen.wait_for(r"Send\? \[yes / no = skip it / abort\]:")
    screen.stays(reminder, 1.0)  # the question did not push it away, nor did a spinner redraw over it
    # The texts customers will read, each under its language with its lines together, before it goes; not the
    # bodies and the cadence the engine made them from.
    shown = screen.text()
    assert re.search(r"^      en: \[Investigating\] www\.example\.com is down; 503\.\n"
                     r"          Next update by \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$", shown, re.M), shown
    assert re.search(r"^      ja: 【調査中】 www\.example\.com が停止しています。\n"
                     r"          次回の更新は .* \(日本時間\) までにお知らせします。$", shown, re.M), shown
    assert "templates:" not in shown and "cadence_minutes" not in shown, shown
    screen.send("yes")
    for gate in ("fix", "done"):
        screen.wait_for(rf"GATE {gate}: ")
        screen.wait_for(r"(Approve|Send)\? \[yes")
        screen.send("yes")
    assert screen.finish() == 0, screen.text()
    screen.wait_for(r"drill grade: \d+/\d+ as expected")
