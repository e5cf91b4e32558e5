"""Runbooks written in English, run in Japanese through their sidecar, on the rendered 80x24 screen.

A live run: the step titles, the checklist and the gate's long message come from ``i18n/<id>.ja.yaml``, wrap
at 80 columns and stay readable while the question waits; the sidecar's template is filled once, so an input
holding ``{{ 7*7 }}`` is shown as typed; what must be typed to pass the gate is still the runbook's. A drill of
a shipped runbook: its scenario and every question it asks are the sidecar's Japanese.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from engine.locate import SHIPPED_DIR
from engine.text import width
from tests.cli.screen import COLS, Screen

RUNBOOK = """
id: web-restart
title: Restart the web server
inputs:
  site: {type: string}
  out: {type: string}
steps:
  - id: call
    title: Tell the monitoring team
    action: manual
    with:
      instructions: Call the monitoring team and give them the time of the restart.
      checklist: [The monitoring team knows the time and muted the alerts]
  - id: restart
    title: Restart the web server of {{ inputs.site }}
    action: shell.run
    confirm:
      message: Restart the production web server of {{ inputs.site }}? The site is down for about 30 seconds.
      type_to_confirm: restart
    with: {argv: [sh, -c, 'echo restarted >> "$0"', "{{ inputs.out }}"]}
"""

SIDECAR = """
title: ウェブサーバーの再起動
steps:
  call:
    title: 監視チームに連絡する
    with:
      instructions: 監視チームに電話し、再起動の予定時刻を伝える。
      checklist: [監視チームに再起動の予定時刻を伝え、アラートを一時的に抑止してもらったことを確認した]
  restart:
    title: "{{ inputs.site }} のウェブサーバーを再起動する"
    confirm: "{{ inputs.site }} の本番ウェブサーバーを再起動します。再起動中の約三十秒間、お客様のサイトには接続できなくなります。よろしいですか"
"""


def _joined(s: Screen) -> str:
    return "".join(s.lines())


def _fits(s: Screen) -> None:
    too_wide = [line for line in s.lines() if width(line) > COLS]
    assert not too_wide, too_wide


def _write(tmp_path: Path) -> Path:
    book = tmp_path / "web-restart.yaml"
    book.write_text(RUNBOOK, encoding="utf-8")
    (tmp_path / "i18n").mkdir()
    (tmp_path / "i18n" / "web-restart.ja.yaml").write_text(SIDECAR, encoding="utf-8")
    return book


def test_a_live_run_shows_the_sidecar_text_wrapped_and_rendered_once(screens: Any, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    s = screens("--lang", "ja", "run", str(_write(tmp_path)), "-i", "site={{ 7*7 }}", "-i", f"out={out}",
                env={"BREAKGLASS_HOME": str(tmp_path / "home")})
    s.wait_for("完了しましたか\\? \\[y/n\\]:$")
    s.stays("完了しましたか\\? \\[y/n\\]:$", 0.8)
    _fits(s)
    screen = _joined(s)
    assert "監視チームに電話し、再起動の予定時刻を伝える。" in screen, s.text()
    assert "アラートを一時的に抑止してもらったことを確認した" in screen
    s.send("y")
    s.wait_for("Enter\\)?:?.*$")
    s.send("")
    confirm = "承認するには 'restart' と入力 \\(それ以外は拒否\\):"  # the runbook's word, in every language
    s.wait_for(confirm)
    s.stays(confirm, 1.0)
    _fits(s)
    screen = _joined(s)
    assert "{{ 7*7 }} の本番ウェブサーバーを再起動します。再起動中の約三十秒間、お客様のサイトには接続できなくなります。" \
           "よろしいですか" in screen, s.text()
    # Rendered once: never "49 の本番..." (the screen also shows paths, whose digits say nothing here).
    assert "49 の本番" not in screen and "Restart the" not in screen
    s.send("restart")
    assert s.finish() == 0, s.text()
    assert out.read_text() == "restarted\n"
    screen = _joined(s)
    assert "✔ call: 監視チームに連絡する" in screen and "✔ restart: {{ 7*7 }} のウェブサーバーを再起動する" in screen


def test_the_same_runbook_in_english_ignores_the_sidecar(screens: Any, tmp_path: Path) -> None:
    s = screens("--lang", "en", "run", str(_write(tmp_path)), "-i", "site=www", "-i", f"out={tmp_path / 'o'}",
                env={"BREAKGLASS_HOME": str(tmp_path / "home")})
    s.wait_for("done\\? \\[y/n\\]:$")
    assert "Call the monitoring team" in _joined(s) and "監視" not in _joined(s)
    s.close()


def _answered(s: Screen, before: str, question: str, timeout: float = 10) -> None:
    """Wait until the screen moved on from the question just answered: an empty answer (Enter at the memo)
    leaves the question as the last line written until the next output comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = next((line for line in reversed(s.lines()) if line.strip()), "")
        if s.text() != before and last != question:
            return
        time.sleep(0.05)


def _asked(sidecar: dict[str, Any]) -> list[str]:
    """Every question the sidecar asks at manual steps (``ask``)."""
    return [q for step in sidecar["steps"].values() for q in (step.get("with") or {}).get("ask", [])]


def test_a_drill_of_a_shipped_runbook_asks_in_the_sidecar_japanese(screens: Any, tmp_path: Path) -> None:
    sidecar = yaml.safe_load((SHIPPED_DIR / "i18n" / "customer-data-mis-sent.ja.yaml").read_text(encoding="utf-8"))
    scenario = sidecar["scenarios"]["billing-run"]["title"]
    s = screens("--lang", "ja", "drill", "customer-data-mis-sent", "--scenario", "billing-run",
                env={"BREAKGLASS_HOME": str(tmp_path / "home")})
    s.wait_for(f"^訓練 customer-data-mis-sent — シナリオ billing-run: {re.escape(scenario)}")
    questions = [re.escape(q) + ":" for q in _asked(sidecar)] + [
        r"承認するには '[^']+' と入力 \(それ以外は拒否\):",
        r"承認しますか\? \[yes / no = 中止 / skip = この手順を飛ばす\]:",
        r"送信しますか\? \[yes / no = 送らず次へ / abort = 中止\]:",
        r"完了しましたか\? \[y/n\]:",
        r"レポート用のメモ \(なければ Enter\):",
    ]
    pattern = re.compile("(" + "|".join(questions) + r")\s*$")
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        screen = s.text()
        if re.search(r"^訓練の評価: \d+ 件中 \d+ 件が想定どおり", screen, re.M):
            break
        last = next((line for line in reversed(s.lines()) if line.strip()), "")
        match = pattern.search(last)
        if not match:
            time.sleep(0.05)
            continue
        s.stays(re.escape(last.strip()) + r"\s*$", 0.3)  # the question is readable, and stays
        assert width(last) <= COLS, last
        seen.append(screen)
        asked = match.group(1)
        typed = re.search(r"'([^']+)'", asked)
        s.send(typed.group(1) if typed else "y" if "[y/n]" in asked else "yes" if "[yes" in asked
               else "" if "メモ" in asked else "回答")
        _answered(s, screen, last)
    else:
        raise AssertionError(f"the drill did not finish:\n{s.text()}")
    assert s.finish() == 0, s.text()
    printed = bytes(s.raw).decode("utf-8", "replace")
    assert "billing1.example.com の送信を止めますか (systemctl stop billing-mailer)?" in printed.replace("\r\n", "")
    for question in _asked(sidecar):
        assert question in printed, question
    assert len(seen) >= 6
