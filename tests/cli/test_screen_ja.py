"""A live run and a drill in Japanese on the rendered screen of an 80x24 terminal: every question is there in
Japanese and stays there, long lines wrap at 80 columns without losing a character, a word typed the way a
Japanese input method commits it is accepted, and the audit log has the same shape as an English run's."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from engine import audit
from engine.text import width
from tests.cli.screen import COLS, Screen

# Long Japanese text in the gate message and the checklist, so the terminal has to wrap them.
RESTART = """
id: restart-ja
title: ウェブサーバーの再起動
inputs:
  out: {type: string}
steps:
  - id: look
    title: 状態を確認する
    action: shell.run
    with: {argv: [sleep, "0.4"], read_only: true}
  - id: call
    title: 関係者への連絡
    action: manual
    with:
      instructions: 監視チームに電話し、再起動の予定時刻を伝えてください。
      checklist: [監視チームに再起動の予定時刻を伝え、アラートを一時的に抑止してもらったことを確認した]
  - id: restart
    title: ウェブサーバーを再起動する
    action: shell.run
    confirm:
      message: >-
        本番のウェブサーバーを再起動します。再起動中の約三十秒間、お客様のサイトには接続できなくなります。よろしいですか
      type_to_confirm: 再起動
    with: {argv: [sh, -c, 'echo restarted >> "$0"', "{{ inputs.out }}"]}
"""



def _joined(s: Screen) -> str:
    """The screen with the terminal's own line wraps undone: what was written, as one text."""
    return "".join(s.lines())


def _fits(s: Screen) -> None:
    too_wide = [line for line in s.lines() if width(line) > COLS]
    assert not too_wide, too_wide


def _shape(home: Path) -> list[tuple[str, list[str]]]:
    logs = sorted((home / "runs").glob("*/audit.jsonl"))
    assert len(logs) == 1, logs
    return [(r.to_dict()["type"], sorted(r.to_dict())) for r in audit.read(logs[0])[0]]


def _live_run(screens: Any, tmp_path: Path, lang: str, word: str) -> tuple[Screen, Path]:
    home, out = tmp_path / f"home-{lang}", tmp_path / f"out-{lang}.txt"
    book = tmp_path / "restart-ja.yaml"
    book.write_text(RESTART, encoding="utf-8")
    s = screens("--lang", lang, "run", str(book), "-i", f"out={out}", env={"BREAKGLASS_HOME": str(home)})
    done_q = "完了しましたか\\? \\[y/n\\]:" if lang == "ja" else "done\\? \\[y/n\\]:"
    s.wait_for(done_q + "$")
    s.stays(done_q + "$", 0.8)
    _fits(s)
    assert "アラートを一時的に抑止してもらったことを確認した" in _joined(s)
    s.send("ｙ")  # full-width y: the input method was left on
    s.wait_for("Enter" + "\\)?:?.*$")
    s.send("")
    confirm = "承認するには '再起動' と入力 \\(それ以外は拒否\\):" if lang == "ja" else "Type '再起動' to approve"
    s.wait_for(confirm)
    s.stays(confirm, 1.0)
    _fits(s)
    screen = _joined(s)
    assert "再起動中の約三十秒間、お客様のサイトには接続できなくなります。よろしいですか" in screen, s.text()
    s.send(word)
    return s, home


def test_a_live_run_in_japanese(screens: Any, tmp_path: Path) -> None:
    s, _home = _live_run(screens, tmp_path, "ja", " 再起動 ")
    assert s.finish() == 0, s.text()
    s.wait_for(r"^実行結果: 成功: 成功 3$")
    assert re.search(r"監査ログの先頭ハッシュ [0-9a-f]{64}", _joined(s)), s.text()
    assert (tmp_path / "out-ja.txt").read_text() == "restarted\n"
    _fits(s)
    assert not re.search(r"\b(Approve|GATE|run succeeded|audit head)\b", s.text()), s.text()


def test_the_audit_log_has_the_same_shape_in_both_languages(screens: Any, tmp_path: Path) -> None:
    for lang in ("ja", "en"):
        s, _home = _live_run(screens, tmp_path, lang, "再起動")
        assert s.finish() == 0, s.text()
    assert _shape(tmp_path / "home-ja") == _shape(tmp_path / "home-en")


def _on_screen(s: Screen, text: str, seconds: float = 0.3) -> None:
    """``text`` ends what the screen shows (the terminal may have wrapped it), now and for ``seconds``."""
    deadline = time.monotonic() + 20
    while not _joined(s).rstrip().endswith(text) and time.monotonic() < deadline:
        time.sleep(0.05)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert _joined(s).rstrip().endswith(text), f"{text!r} is not the last thing on the screen:\n{s.text()}"
        time.sleep(0.05)


def _next_question(s: Screen, question: str, seen: int, timeout: float = 30) -> str | None:
    """The question after the first ``seen`` ones in everything printed; None once the grade is out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with s._lock:
            printed = bytes(s.raw).decode("utf-8", "replace")
        asked = re.findall(question, printed, re.M)
        if len(asked) > seen:
            return str(asked[seen])
        if "訓練の評価" in printed:
            return None
        time.sleep(0.05)
    raise AssertionError(f"no question and no grade:\n{s.text()}")


def test_a_drill_in_japanese(screens: Any, tmp_path: Path) -> None:
    s = screens("--lang", "ja", "drill", "dns-failover", "--scenario", "primary-down",
                env={"BREAKGLASS_HOME": str(tmp_path / "home")})
    s.wait_for(r"^訓練 dns-failover — シナリオ primary-down")
    question = "(?:" + "|".join([
        r"送信しますか\? \[yes / no = 送らず次へ / abort = 中止\]:",
        r"承認しますか\? \[yes / no = 中止 / skip = この手順を飛ばす\]:",
        r"承認するには '[^']+' と入力 \(それ以外は拒否\):",
        r"完了しましたか\? \[y/n\]:",
        r"レポート用のメモ \(なければ Enter\):",
    ]) + ")"
    answered = 0
    while True:  # answer each question as it comes, until the grade is printed
        asked = _next_question(s, question, answered)
        if asked is None:
            break
        _on_screen(s, asked)  # on the rendered screen, not only in the bytes, and it stays there
        _fits(s)
        typed = re.search(r"'([^']+)'", asked)
        s.send(typed.group(1) if typed else "ｙ" if "[y/n]" in asked else "" if "メモ" in asked else "yes")
        answered += 1
    assert answered >= 2, s.text()
    s.finish()
    _fits(s)
    assert re.search(r"^訓練の評価: \d+ 件中 \d+ 件が想定どおり", s.text(), re.M), s.text()
