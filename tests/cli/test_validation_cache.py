"""`breakglass validate` remembers clean files, and forgets them when the file or breakglass changes."""

from __future__ import annotations

from pathlib import Path

from breakglass.engine import validation_cache
from breakglass.engine.catalog import validate_paths

GOOD = """\
id: cached
title: A runbook that validates
steps:
  - id: note
    title: Note
    action: log.note
    with: {text: "{{ run.id }}"}
"""


def test_clean_file_is_remembered_then_rechecked_after_an_edit(tmp_path: Path, bg_home: Path) -> None:
    rb = tmp_path / "cached.yaml"
    rb.write_text(GOOD)
    assert validate_paths([str(rb)]) == [{"file": str(rb), "ok": True, "problems": []}]
    assert validate_paths([str(rb)])[0].get("cached") is True
    rb.write_text(GOOD.replace("log.note", "log.nope"))
    result = validate_paths([str(rb)])[0]
    assert result["ok"] is False and "unknown action 'log.nope'" in result["problems"][0]
    assert not result.get("cached")


def test_broken_file_is_never_remembered(tmp_path: Path, bg_home: Path) -> None:
    rb = tmp_path / "cached.yaml"
    rb.write_text(GOOD.replace("log.note", "log.nope"))
    for _ in range(2):
        assert validate_paths([str(rb)])[0]["ok"] is False


def test_same_bytes_under_another_name_are_judged_again(tmp_path: Path, bg_home: Path) -> None:
    (tmp_path / "cached.yaml").write_text(GOOD)
    assert validate_paths([str(tmp_path / "cached.yaml")])[0]["ok"]
    other = tmp_path / "other.yaml"
    other.write_text(GOOD)
    result = validate_paths([str(other)])[0]
    assert result["ok"] is False and "must equal the file name 'other'" in result["problems"][0]


def test_a_change_to_breakglass_invalidates_entries(tmp_path: Path, bg_home: Path, monkeypatch) -> None:
    rb = tmp_path / "cached.yaml"
    rb.write_text(GOOD)
    validate_paths([str(rb)])
    monkeypatch.setattr(validation_cache, "_code_fingerprint", lambda: "another build")
    assert not validate_paths([str(rb)])[0].get("cached")
    assert validate_paths([str(rb)], use_cache=False)[0].get("cached") is None
