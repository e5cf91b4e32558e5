"""The end of every run says what is still open: unticked items, deadlines, the next command; so does the report."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from engine.followups import open_items
from tests.runbooks.operator import BREAKGLASS, cli_env

RUNBOOK = """\
id: breach-clock
title: Start the breach clock
steps:
  - id: deadlines
    title: Compute the deadlines
    action: legal.deadlines
    with:
      discovered_at: "2024-11-22T01:20:00Z"
  - id: done
    title: Say so
    action: log.note
    with:
      text: deadlines computed
"""


def test_unticked_items_and_deadlines_in_step_order_then_the_next_commands() -> None:
    steps = {
        "call": {"status": "succeeded", "output": {"checklist": {"Registrar called": True, "Auto-renew on": False}}},
        "skipped": {"status": "skipped", "output": None},
        "law": {"status": "succeeded", "output": {"open_items": [{"text": "GDPR notice", "due": "2024-11-25T01:20:00Z"}]}},
    }
    items = open_items(["call", "skipped", "law"], steps, "R1", "failed")
    assert [(i["kind"], i["step"], i["text"], i["due"]) for i in items] == [
        ("unchecked", "call", "Auto-renew on", None),
        ("due", "law", "GDPR notice", "2024-11-25T01:20:00Z"),
        ("next", "", "breakglass resume R1", None),
        ("next", "", "breakglass report R1", None),
    ]
    assert [i["text"] for i in open_items([], {}, "R2", "succeeded")] == ["breakglass report R2"]


def test_a_run_ends_with_its_deadlines_and_the_report_lists_them(tmp_path: Path) -> None:
    book = tmp_path / "breach-clock.yaml"
    book.write_text(RUNBOOK, encoding="utf-8")
    team = tmp_path / "team.yaml"
    team.write_text("legal:\n  regimes: [gdpr]\n", encoding="utf-8")
    env = cli_env(tmp_path / "home", BREAKGLASS_TEAM=str(team))
    done = subprocess.run([*BREAKGLASS, "run", str(book)], capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    screen = done.stdout
    tail = screen[screen.index("run succeeded"):]
    assert "still open:" in tail
    assert "⏰ GDPR notification of the breach to the lead supervisory authority: due" in tail
    assert "2024-11-25T01:20:00+00:00" in tail
    run_id = re.search(r"report for the record: breakglass report (\S+)", tail)
    assert run_id is not None
    listed = tail[tail.index("still open:"):tail.index("audit head")].splitlines()
    assert len(listed) > 3 and all(len(line) <= 80 for line in listed)  # wrapped to the terminal (COLUMNS=80)

    shown = subprocess.run([*BREAKGLASS, "audit", "show", run_id.group(1), "--json"], capture_output=True, text=True,
                           env=env, timeout=60)
    finished = [json.loads(line) for line in shown.stdout.splitlines() if '"run.finished"' in line][-1]
    assert [i["kind"] for i in finished["open"]] == ["due", "due", "next"]

    report = subprocess.run([*BREAKGLASS, "report", run_id.group(1)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert report.returncode == 0, report.stderr
    section = report.stdout.split("## Still open", 1)[1].split("\n## ", 1)[0]
    assert "GDPR notification of the breach" in section and "2024-11-25T01:20:00" in section
    assert f"next: `breakglass report {run_id.group(1)}`" in section


def test_a_loop_items_open_items_are_open_too() -> None:
    """A for_each over hosts: each item's renewal date is listed under the item's id, after the loop's own."""
    steps = {
        "verify": {"status": "succeeded", "output": {"succeeded": 2},
                   "items": [{"key": 0, "item": "a",
                              "output": {"open_items": [{"text": "renew a", "due": "2025-01-01"}]}},
                             {"key": 1, "item": "b", "output": None},
                             {"key": 2, "item": "c", "output": {"open_items": [{"text": "renew c", "due": None}]}}]},
    }
    items = open_items(["verify"], steps, "R1", "succeeded")
    assert [(i["kind"], i["step"], i["text"], i["due"]) for i in items][:2] == [
        ("due", "verify[0]", "renew a", "2025-01-01"),
        ("due", "verify[2]", "renew c", None),
    ]
