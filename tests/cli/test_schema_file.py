"""The committed engine/runbook.schema.json is what `breakglass schema` prints: editors and `validate` see the
real format."""

from __future__ import annotations

import json
from pathlib import Path

from engine.model import json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    """Byte-equal where the same pydantic release wrote it; elsewhere (CI's lowest versions) the two schemas
    must still judge every shipped runbook and every broken case alike."""
    committed = json.loads((ROOT / "engine" / "runbook.schema.json").read_text())
    fresh = json_schema()
    if committed.get("$comment") == fresh["$comment"]:
        assert committed == fresh, "run: breakglass schema -o engine/runbook.schema.json"
        return
    import jsonschema
    import yaml

    files = sorted((ROOT / "runbooks").glob("*.yaml")) + sorted((ROOT / "tests" / "cases" / "broken").glob("*.yaml"))
    judged = 0
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, ValueError):
            continue
        verdicts = [jsonschema.Draft202012Validator(s).is_valid(doc) for s in (committed, fresh)]
        assert verdicts[0] == verdicts[1], f"{path.name}: committed {verdicts[0]}, generated {verdicts[1]}"
        judged += 1
    assert judged >= 40


def test_shipped_runbooks_point_editors_at_it() -> None:
    for rb in sorted((ROOT / "runbooks").glob("*.yaml")):
        first = rb.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../engine/runbook.schema.json", rb.name
