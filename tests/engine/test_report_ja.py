"""A run in Japanese, from its audit log to the report a Japanese reader opens.

The run uses a shipped runbook with its Japanese sidecar. Its audit log has the shape of the same run in
English; its report is Japanese by default (the log says the run's language), in HTML with ``lang="ja"`` and
in Markdown, with dates in JST and UTC kept for machines. The HTML page opened in headless Chromium draws its
Japanese text with a font that has the glyphs: Chromium names, through the DevTools protocol
(``CSS.getPlatformFontsForNode``), each font it actually drew a node's characters with. A tofu box is a
glyph drawn by a font without it, so every font used for the Japanese text must be a CJK one.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine import audit, drill, i18n
from engine.console import JsonReporter
from engine.gates import Terminal
from engine.loader import load_file
from engine.locate import SHIPPED_DIR
from engine.report import from_store
from engine.report_render import render
from engine.session import RunOptions
from engine.store import FileStore

RUNBOOK = SHIPPED_DIR / "customer-data-mis-sent.yaml"
CJK_FONT = "Noto Sans CJK JP"
JAPANESE = re.compile("[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")  # kana, kanji, full-width forms


class _NoTty(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def speaking() -> Iterator[Any]:
    def use(lang: str) -> None:
        i18n.use(lang)

    yield use
    i18n.use("en")


def _drill(lang: str) -> str:
    i18n.use(lang)
    loaded = load_file(RUNBOOK, lang=lang)
    scenario = drill.load_scenario(drill.find_scenario(loaded.path, loaded.runbook.id, None))
    if loaded.translation is not None:
        scenario = loaded.translation.scenario(scenario)
    opts = RunOptions(operator="hanako", yes=True, terminal=Terminal(stdin=_NoTty()))
    return drill.run_drill(loaded, scenario, {}, opts, JsonReporter(io.StringIO())).run_id


def _shape(value: Any) -> Any:
    """A record's structure: keys, nesting and value types. A mapping keyed by runbook text (a manual step's
    checklist and questions, as the operator saw them) has its keys counted, not read."""
    if isinstance(value, dict):
        return sorted((k if re.fullmatch(r"[a-z_][a-z0-9_.]*", k) else "<text>", _shape(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _records(run_id: str) -> list[dict[str, Any]]:
    log = FileStore().root / run_id / "audit.jsonl"
    return [r.to_dict() for r in audit.read(log)[0]]


def test_the_audit_log_of_a_japanese_run_has_the_shape_of_an_english_one(bg_home: Path, speaking: Any) -> None:
    english, japanese = _records(_drill("en")), _records(_drill("ja"))
    assert [_shape(r) for r in japanese] == [_shape(r) for r in english]
    # Same shape, other words: the titles the operator read are recorded as read.
    started = [r for r in japanese if r["type"] == "step.started"]
    assert any("把握" in str(r.get("title")) for r in started), started[:2]
    assert english[0]["lang"] == "en" and japanese[0]["lang"] == "ja"
    # Statuses and outcomes are the machine's words in both.
    assert [r.get("status") for r in japanese] == [r.get("status") for r in english]


def test_the_report_speaks_the_run_language_unless_asked(bg_home: Path, speaking: Any) -> None:
    run_id = _drill("ja")
    speaking("en")  # the reader's CLI is English; the run was Japanese
    report = from_store(FileStore(), run_id)
    assert report.lang == "ja"
    md = render(report, "markdown")
    assert md.startswith("# 障害報告書: 顧客データの誤送信"), md[:200]
    for heading in ("## 概要", "## 実施内容と実施者", "## ゲートでの判断", "## 根本原因"):
        assert heading in md
    assert re.search(r"\| \d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d:\d\d JST \|", md), md[:1500]
    assert "| 状態 | **成功** |" in md
    html = render(report, "html")
    assert '<html lang="ja">' in html
    stamp = re.search(r'<time datetime="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)">(\d{4})年(\d{1,2})月(\d{1,2})日 (\d\d):', html)
    assert stamp, html[:3000]
    utc_hour, jst_hour = int(stamp.group(1)[11:13]), int(stamp.group(5))
    assert (utc_hour + 9) % 24 == jst_hour  # JST is UTC+9: the same moment, for two readers
    english = render(replace(report, lang="en"), "markdown")
    assert english.startswith("# Post-incident report: ") and "## Summary" in english and "JST" not in english


def _has_noto_cjk() -> bool:
    try:
        listed = subprocess.run(["fc-list", ":lang=ja", "family"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return CJK_FONT in listed.stdout


def _fonts(driver: Any, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium drew the text of ``selector``'s first match with (DevTools CSS domain)."""
    root = driver.execute_cdp_cmd("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, f"no element matches {selector}"
    return list(driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"])


def test_the_japanese_html_report_draws_every_glyph_in_chromium(bg_home: Path, tmp_path: Path,
                                                                 speaking: Any) -> None:
    from tests.web.live import browser, screenshot

    if not _has_noto_cjk():
        pytest.skip("fonts-noto-cjk is not installed (Debian package; .ci/run installs it): no Japanese font")
    page = tmp_path / "report-ja.html"
    page.write_text(render(from_store(FileStore(), _drill("ja")), "html"), encoding="utf-8")
    driver = browser(tmp_path)
    try:
        driver.get(page.as_uri())
        assert driver.find_element("tag name", "body").get_attribute("data-timeline") == "ok"
        assert driver.find_element("tag name", "h1").text == "障害報告書: 顧客データの誤送信"
        driver.execute_cdp_cmd("DOM.enable", {})
        driver.execute_cdp_cmd("CSS.enable", {})
        # Headings, statuses and the parts to fill in: every character, kana, kanji and the ASCII between
        # them, in the Japanese font (its monospace cut in <code>). Drawn by another font, a kanji is a tofu
        # box or its Chinese form, and the ASCII around it sits on another baseline.
        for selector in ("h1", "h2", "#steps td[data-status]", ".edit"):
            fonts = _fonts(driver, selector)
            others = [f for f in fonts if not f["familyName"].endswith("CJK JP")]
            assert fonts and not others, f"{selector}: drawn with {fonts}"
            assert CJK_FONT in {f["familyName"] for f in fonts}, f"{selector}: drawn with {fonts}"
        # Rows that mix in symbols no CJK font has (the checklist's ☐): at least every Japanese character
        # drawn by the Japanese font.
        for selector in ("#steps tr:nth-child(2) td:nth-child(1)", "#answers li"):
            text = driver.execute_script("return document.querySelector(arguments[0]).textContent", selector)
            japanese = len(JAPANESE.findall(text))
            fonts = _fonts(driver, selector)
            drawn = sum(f["glyphCount"] for f in fonts if f["familyName"].endswith("CJK JP"))
            assert japanese and drawn >= japanese, f"{selector}: {japanese} Japanese characters, drawn with {fonts}"
        screenshot(driver, "report-ja.png")
    finally:
        driver.quit()
