"""``yamlsource.load_header``: the top-level keys `list` and scenario headings read, from one pass over the
parser's events. What it returns is what the full loader reads for those keys; what the full loader refuses
for nesting, it refuses too."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.locate import SHIPPED_DIR
from engine.yamlsource import SourceError, load_header, parse

KEYS = frozenset({"id", "title", "severity", "tags", "description", "expect"})


def _full(text: str) -> dict[str, object] | None:
    data = parse(text, "f.yaml").data
    return {k: v for k, v in data.items() if k in KEYS} if isinstance(data, dict) else None


@pytest.mark.parametrize("path", sorted(Path(SHIPPED_DIR).rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_runbook_and_scenario_reads_as_the_full_loader_reads_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert load_header(text, str(path), KEYS) == _full(text)


@pytest.mark.parametrize("text", [
    "id: x\nsteps:\n  - {id: a, with: {nested: [1, [2, {3: 4}]]}}\ntitle: after the steps\n",
    "{a: 1, id: flow, tags: [x, y]}\n",
    "id: &name shared\ntitle: *name\n",  # an alias: read from the whole document's nodes
    "steps: &s [1, 2]\ntags: *s\n",
    "title: !!binary aGVsbG8=\nseverity: 3\n",
    "description: |\n  two\n  lines\nid: 'quoted: colon'\n",
])
def test_values_are_what_the_full_loader_makes_of_them(text: str) -> None:
    assert load_header(text, "f.yaml", KEYS) == _full(text)


@pytest.mark.parametrize(("text", "header"), [
    ("? [a, complex, key]\n: its value\nid: q\n", {"id": "q"}),  # the full loader refuses such a key
    ("id: first\nid: second\n", {"id": "second"}),  # refused there too; a listing shows the last
])
def test_what_the_full_loader_refuses_still_lists(text: str, header: dict[str, str]) -> None:
    with pytest.raises(SourceError):
        parse(text, "f.yaml")
    assert load_header(text, "f.yaml", KEYS) == header


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "", "# only a comment\n"])
def test_a_document_that_is_not_a_mapping_has_no_header(text: str) -> None:
    assert load_header(text, "f.yaml", KEYS) is None


@pytest.mark.parametrize("text", [
    "id: x\nsteps: " + "[" * 60 + "]" * 60 + "\n",
    "id: x\nsteps:\n  " + "- " * 200 + "x\n",
])
def test_nesting_too_deep_is_refused_before_anything_is_built(text: str) -> None:
    with pytest.raises(SourceError) as info:
        load_header(text, "f.yaml", KEYS)
    assert "nested deeper than" in str(info.value.problems[0])


def test_nesting_that_would_crash_libyaml_s_composer_is_refused() -> None:
    text = "id: x\nsteps: " + "[" * 30_000 + "]" * 30_000 + "\n"  # the scanner's own limit or ours: refused
    with pytest.raises(SourceError):
        load_header(text, "f.yaml", KEYS)


def test_two_documents_are_invalid_as_for_the_full_loader() -> None:
    with pytest.raises(SourceError):
        load_header("id: a\n---\nid: b\n", "f.yaml", KEYS)
    with pytest.raises(SourceError):
        parse("id: a\n---\nid: b\n", "f.yaml")
