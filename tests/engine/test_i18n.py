"""The operator's language: every marked message has a Japanese entry and none is stale, the language is chosen
as documented, type-to-confirm survives a Japanese input method, and what machines read stays in English."""

from __future__ import annotations

import ast
import io
import json
import re
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import i18n
from engine.console import SHOWN_VALUES
from engine.errors import InputError
from engine.gates import Gatekeeper, GateRequest, Terminal

ROOT = Path(__file__).resolve().parents[2]
MARKERS = ("_", "N_")


def marked_messages() -> dict[str, str]:
    """Every literal passed to ``_()`` or ``N_()`` in engine/ and actions/, and to ``_()`` in the report
    templates → where it is first marked.

    The catalog test's own xgettext: an AST walk, so a message split over lines ("a " "b") is one message.
    """
    found: dict[str, str] = {}
    for top in ("engine", "actions"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MARKERS
                        and node.args and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    found.setdefault(node.args[0].value, f"{path.relative_to(ROOT)}:{node.lineno}")
    for path in sorted((ROOT / "engine" / "report_templates").glob("*.j2")):
        text = path.read_text(encoding="utf-8")
        for match in TEMPLATE_MARK.finditer(text):
            found.setdefault(ast.literal_eval(match.group(1)),
                             f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}")
    return found


# The report templates call the same ``_()`` with a double-quoted literal: {{ _("Summary") }}.
TEMPLATE_MARK = re.compile(r'\b_\(("(?:[^"\\]|\\.)*")\)')


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture
def japanese() -> Iterator[None]:
    i18n.use("ja")
    yield
    i18n.use("en")


def test_every_message_in_the_code_has_a_japanese_entry_and_none_is_stale() -> None:
    wanted = {**marked_messages(), **{v: "engine/console.py SHOWN_VALUES" for v in SHOWN_VALUES}}
    assert len(wanted) > 30, "the scan found almost nothing: is the marker still called _()?"
    catalog = i18n.read_po(i18n.catalog_path("ja"))
    missing = [f'#: {where}\nmsgid "{msgid}"\nmsgstr ""' for msgid, where in wanted.items()
               if not catalog.get(msgid)]
    assert not missing, "add these to engine/locale/ja/LC_MESSAGES/breakglass.po:\n\n" + "\n\n".join(missing)
    stale = sorted(set(catalog) - set(wanted))
    assert not stale, f"no longer in the code (changed or removed): {stale}"


def test_a_translation_fills_the_same_fields_as_the_english() -> None:
    """A field renamed in the code but not in a translation would raise KeyError in front of the operator."""
    for msgid, msgstr in i18n.read_po(i18n.catalog_path("ja")).items():
        assert _fields(msgstr) == _fields(msgid), f"{msgid!r} → {msgstr!r}"


@pytest.mark.parametrize(("flag", "env", "expected"), [
    ("ja", {"BREAKGLASS_LANG": "en", "LANG": "en_US.UTF-8"}, "ja"),
    (None, {"BREAKGLASS_LANG": "ja_JP", "LANG": "en_US.UTF-8"}, "ja"),
    (None, {"LC_ALL": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}, "ja"),
    (None, {"LC_ALL": "C", "LANG": "ja_JP.UTF-8"}, "en"),
    (None, {"LC_MESSAGES": "ja_JP.eucJP", "LANG": "C.UTF-8"}, "ja"),
    (None, {"LANG": "ja_JP.UTF-8"}, "ja"),
    (None, {"LANG": "fr_FR.UTF-8"}, "en"),
    (None, {}, "en"),
    ("EN", {"LANG": "ja_JP.UTF-8"}, "en"),
])
def test_the_language_comes_from_the_flag_then_the_variable_then_the_locale(
        flag: str | None, env: dict[str, str], expected: str) -> None:
    assert i18n.choose(flag, env) == expected


@pytest.mark.parametrize(("flag", "env"), [("fr", {}), (None, {"BREAKGLASS_LANG": "klingon"})])
def test_a_language_asked_for_by_name_must_exist(flag: str | None, env: dict[str, str]) -> None:
    with pytest.raises(InputError, match="choose one of en, ja"):
        i18n.choose(flag, env)


def test_a_broken_catalog_names_its_line(tmp_path: Path) -> None:
    po = tmp_path / "x.po"
    po.write_text('msgid "a"\nmsgstr "b"\n\nmsgid "c"\nmsgstr c\n', encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{po}:5:1:")):
        i18n.read_po(po)


def test_the_reader_joins_continued_strings_and_escapes(tmp_path: Path) -> None:
    po = tmp_path / "x.po"
    po.write_text('msgid ""\nmsgstr "Language: ja\\n"\n\n# c\nmsgid "a "\n"b\\"q\\""\nmsgstr ""\n"あ\\n"\n"い"\n',
                  encoding="utf-8")
    assert i18n.read_po(po) == {'a b"q"': "あ\nい"}


class _Typed(io.StringIO):
    def isatty(self) -> bool:
        return True


def _gate(typed: str, word: str) -> tuple[bool, str]:
    screen = io.StringIO()
    keeper = Gatekeeper("op", "live", terminal=Terminal(stdin=_Typed(typed + "\n"), stderr=screen))
    req = GateRequest("restart", "restart", "t", "restart the shop", word, {}, "d", True)
    return keeper.decide(req).approved, screen.getvalue()


@pytest.mark.parametrize(("typed", "word"), [
    ("再起動", "再起動"),
    ("ｻｲｷﾄﾞｳ", "サイキドウ"),  # half-width katakana, as some input methods commit it
    ("ｓｈｏｐ．ｅｘａｍｐｌｅ", "shop.example"),  # the input method left in full-width mode
    ("か\u3099", "が"),  # a decomposed voiced mark
    ("  再起動 ", "再起動"),
])
def test_type_to_confirm_accepts_what_an_input_method_writes(typed: str, word: str) -> None:
    assert _gate(typed, word)[0]


@pytest.mark.parametrize(("typed", "word"), [
    ("再起", "再起動"), ("シャットダウン", "再起動"), ("shop.exampl", "shop.example"),
])
def test_type_to_confirm_still_refuses_another_word(typed: str, word: str) -> None:
    assert not _gate(typed, word)[0]


def test_a_full_width_yes_approves_and_the_question_is_japanese(japanese: None) -> None:
    approved, screen = _gate("ｙｅｓ", "")
    assert approved
    assert "ゲート restart: restart the shop" in screen and "承認しますか?" in screen


def test_english_stays_the_default_text() -> None:
    assert _gate("yes", "")[1].endswith("Approve? [yes / no = abort / skip]: ")


def _bg(*args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "BREAKGLASS_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-c", "from engine.cli import main; main()", *args],
                          capture_output=True, text=True, env={**base, **env}, timeout=120)


def test_an_unknown_language_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _bg("--lang", "xx", "list", env={}, home=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--lang 'xx'" in done.stderr and "Traceback" not in done.stderr


RUNBOOK = """
id: lang
title: 言語の確認
steps:
  - id: look
    title: 見る
    action: shell.run
    with: {argv: [echo, ok], read_only: true}
  - id: change
    title: 変える
    action: shell.run
    with: {argv: [echo, changed]}
"""


def test_json_and_the_summary_follow_the_language_rules(tmp_path: Path) -> None:
    """--json is the same in every language; the human summary is the operator's."""
    rb = tmp_path / "lang.yaml"
    rb.write_text(RUNBOOK, encoding="utf-8")
    shapes = {}
    for lang in ("en", "ja"):
        done = _bg("run", str(rb), "--json", "--dry-run", env={"BREAKGLASS_LANG": lang}, home=tmp_path / lang)
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines()]
        shapes[lang] = [(r["type"], sorted(r), r.get("status"), r.get("summary"), r.get("message"), r.get("counts"))
                        for r in records]
    assert shapes["en"] == shapes["ja"]
    human = _bg("--lang", "ja", "run", str(rb), "--dry-run", env={}, home=tmp_path / "h")
    assert human.returncode == 0, human.stderr
    assert "実行結果: 成功" in human.stdout and "計画のみ 1" in human.stdout
