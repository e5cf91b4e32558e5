"""Text is wrapped by the columns a terminal gives it: Japanese takes two per character, so `show` of a Japanese
runbook fits 80 columns like an English one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from engine.text import width, wrap


def test_width_counts_columns_not_characters() -> None:
    assert width("再起動") == 6
    assert width("ｻｲｷ") == 3  # half-width katakana are narrow
    assert width("shop") == 4
    assert width("か\u3099") == 2  # a combining voiced mark takes no column of its own


def test_japanese_wraps_between_characters_within_the_columns() -> None:
    text = "障害発生時は、まずレジストラの管理画面でネームサーバーの設定を確認し、変更履歴を記録してください。"
    lines = wrap(text, 30, "  ", "    ")
    assert len(lines) > 1
    assert all(width(line) <= 30 for line in lines)
    assert "".join(line.strip() for line in lines) == text  # nothing lost, nothing added between characters
    assert not any(line.strip()[0] in "、。" for line in lines)  # kinsoku: no line starts with a comma or stop


# Sentences of English words, Japanese runs and spaces; the wrapper must never lose or reorder a character.
_WORDS = st.lists(st.one_of(st.text("abcdefghij", min_size=1, max_size=14),
                            st.text("再起動障害確認、。ネームサーバー", min_size=1, max_size=14)),
                  min_size=1, max_size=30)


@given(_WORDS, st.integers(min_value=8, max_value=80))
def test_no_line_is_wider_than_asked_and_no_character_is_lost(words: list[str], columns: int) -> None:
    text = " ".join(words)
    lines = wrap(text, columns, "  ")
    assert all(width(line) <= columns for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_english_wraps_as_textwrap_did() -> None:
    text = ("Check the registrar's status page, then the domain's EPP status codes, before anyone calls the "
            "registrar's abuse desk about a suspension that may be a payment problem.")
    for columns in (30, 52, 78):
        assert wrap(text, columns, "  ", "    ") == textwrap.wrap(text, columns, initial_indent="  ",
                                                                    subsequent_indent="    ",
                                                                    break_on_hyphens=False)


RUNBOOK = """
id: jp-show
title: ドメインの登録が停止された場合の対応手順(レジストラへの連絡と、ネームサーバーの確認を含む)
description: |
  お名前.comなどのレジストラがドメインを停止すると、ウェブサイトもメールも止まります。まずWHOISとEPPステータスを確認し、
  支払いの問題か不正利用の申告かを切り分けてから、レジストラの窓口に連絡してください。
inputs:
  domain:
    type: domain
    description: 停止されたドメイン名。例えば shop.example のように、サブドメインを含めずに入力してください。
steps:
  - id: look
    title: WHOISとEPPステータスを確認し、停止の理由(clientHold、serverHoldなど)を記録する
    action: shell.run
    with: {argv: [echo, ok], read_only: true}
"""


def test_show_of_a_japanese_runbook_fits_80_columns(tmp_path: Path) -> None:
    book = tmp_path / "jp-show.yaml"
    book.write_text(RUNBOOK, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", "from engine.cli import main; main()", "show", str(book)],
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                                              "BREAKGLASS_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    too_wide = [(width(line), line) for line in lines if width(line) > 80]
    assert not too_wide, too_wide
    shown = unicodedata.normalize("NFC", done.stdout)
    for phrase in ("ドメインの登録が停止", "切り分けて", "サブドメインを含めず", "serverHold"):
        assert phrase in shown.replace("\n", "").replace(" ", "")


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_ascii_is_measured_and_cut_as_the_column_rules_would(text: str) -> None:
    from engine import text as t

    assert t.width(text) == sum(t.char_width(ch) for ch in text)
    assert t._tokens(text) == t._tokens_by_width(text)
