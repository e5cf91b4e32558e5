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


def test_committed_record_schema_is_current() -> None:
    from engine.events import json_schema as records_schema

    committed = json.loads((ROOT / "engine" / "records.schema.json").read_text())
    assert committed == records_schema(), "run: breakglass schema --records -o engine/records.schema.json"


def test_every_record_a_run_a_drill_and_audit_show_print_fits_the_record_schema(tmp_path: Path) -> None:
    """Real JSON Lines from `run --json` (a step, a refused gate, a failure rolled back), a note,
    `drill --json` of a shipped runbook and `audit show --json`: each line validates, and a line that lost a
    field its type requires, or names no known type, does not."""
    import os
    import subprocess
    import sys

    import jsonschema

    schema = json.loads((ROOT / "engine" / "records.schema.json").read_text())
    check = jsonschema.Draft202012Validator(schema)
    bg = str(Path(sys.executable).with_name("breakglass"))
    env = {**os.environ, "BREAKGLASS_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    book = tmp_path / "rb.yaml"
    book.write_text("""id: rb
title: records of every kind
steps:
  - id: look
    title: look
    action: log.note
    with: {text: looking}
  - id: change
    title: change
    action: shell.run
    with: {argv: ["true"]}
    rollback: {action: shell.run, with: {argv: ["true"]}}
  - id: fail
    title: fail
    action: shell.run
    with: {argv: ["false"]}
    on_failure: rollback
""")

    def lines(*args: str) -> list[dict[str, object]]:
        done = subprocess.run([bg, *args], env=env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    records = lines("run", str(book), "--json", "--approve", "change", "--approve", "fail",
                    "--approve", "change.rollback")
    records += lines("run", str(book), "--json")  # no approval, no terminal: refused
    subprocess.run([bg, "note", "last", "a note"], env=env, check=True, capture_output=True, timeout=60)
    records += lines("audit", "show", "last", "--json")
    records += lines("drill", "dns-failover", "--json", "--yes")
    kinds = {r["type"] for r in records}
    assert {"run.started", "step.succeeded", "step.failed", "rollback.succeeded", "gate.approved", "step.refused",
            "note", "drill.graded", "run.finished"} <= kinds, kinds
    for rec in records:
        errors = list(check.iter_errors(rec))
        assert not errors, (rec["type"], [e.message for e in errors][:3])
    broken = dict(next(r for r in records if r["type"] == "step.started"))
    del broken["action"]
    assert not check.is_valid(broken)
    assert not check.is_valid({**broken, "action": "x", "type": "step.exploded"})
