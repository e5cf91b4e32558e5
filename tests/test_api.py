"""The public API (`import breakglass`): load, validate, run without a terminal, read the records."""

from __future__ import annotations

from pathlib import Path

import pytest

import breakglass
from engine.store.file import FileStore


def test_validate_names_file_line_and_column(tmp_path: Path) -> None:
    book = tmp_path / "bad.yaml"
    book.write_text("id: bad\ntitle: Bad\nsteps:\n  - id: a\n    title: A\n    action: dns.lookpu\n")
    problems = breakglass.validate(book)
    assert problems and problems[0].startswith(f"{book}:6:")
    assert "dns.lookup" in problems[0]  # did-you-mean
    assert breakglass.validate("domain-expiry") == []


def test_a_dry_run_records_a_chain_that_reads_back(tmp_path: Path) -> None:
    book = tmp_path / "hello.yaml"
    book.write_text(
        "id: hello\ntitle: Hello\nseverity: low\ninputs:\n  who: {type: string}\nsteps:\n"
        "  - id: greet\n    title: Greet\n    action: log.note\n    with: {text: 'hello {{ inputs.who }}'}\n"
        "  - id: change\n    title: Change\n    action: shell.run\n    with: {argv: [/bin/true]}\n")
    store = FileStore(tmp_path / "home")
    outcome = breakglass.run(book, {"who": "ops"}, mode="dry-run", operator="api", store=store)
    assert outcome.status is breakglass.RunStatus.SUCCEEDED
    kinds = [r.type for r in breakglass.records(outcome.run_id, store=store)]
    assert kinds[0] == breakglass.RecordType.RUN_STARTED and kinds[-1] == breakglass.RecordType.RUN_FINISHED
    assert "step.planned" in kinds


def test_a_live_gate_without_approval_says_no(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    book = tmp_path / "gate.yaml"
    book.write_text(
        "id: gate\ntitle: Gate\nseverity: low\nsteps:\n"
        f"  - id: touch\n    title: Touch\n    action: shell.run\n    with: {{argv: [/usr/bin/touch, '{marker}']}}\n")
    store = FileStore(tmp_path / "home")
    outcome = breakglass.run(book, mode="live", operator="api", store=store)
    assert outcome.status is breakglass.RunStatus.REFUSED and not marker.exists()
    done = breakglass.run(book, mode="live", operator="api", approve=["touch"], store=store)
    assert done.status is breakglass.RunStatus.SUCCEEDED and marker.exists()


def test_drills_are_not_a_mode_of_run() -> None:
    with pytest.raises(breakglass.InputError, match="drill"):
        breakglass.run("domain-expiry", mode="drill")
