"""The committed engine/runbook.schema.json is what `breakglass schema` prints: editors and `validate` see the
real format."""

from __future__ import annotations

import json
from pathlib import Path

from breakglass.engine.model import json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "engine" / "runbook.schema.json").read_text())
    assert committed == json_schema(), "run: breakglass schema -o engine/runbook.schema.json"


def test_shipped_runbooks_point_editors_at_it() -> None:
    for rb in sorted((ROOT / "runbooks").glob("*.yaml")):
        first = rb.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../engine/runbook.schema.json", rb.name
