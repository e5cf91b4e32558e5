"""Every `breakglass <command>` that a runbook or the engine tells an operator to type exists in the real CLI.

A follow-up that names a command the CLI does not have (`breakglass domain.expiry_audit` said "No such
command" at the end of an incident) sends the operator hunting at the worst moment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from engine.cli import app
from engine.followups import next_commands

ROOT = Path(__file__).resolve().parents[2]
MENTION = re.compile(r"(?<![\w./$-])breakglass ([a-z][a-z0-9_.-]*)(?: ([a-z][a-z0-9_-]*))?")
# Words that follow "breakglass" in prose ("breakglass raises on purpose"), never a command the reader types.
PROSE = frozenset({"raises", "knows", "delivery", "plain", "runbook", "is", "cannot", "namespace", "computes",
                   "approval", "uses", "does", "needs", "on", "can", "itself", "attachment", "test", "package", "still",
                   "speaks"})
PROSE_AFTER = frozenset({("audit", "records")})  # "breakglass audit records are append-only" (a SQL message)
SUFFIXES = (".yaml", ".py", ".j2", ".js", ".html")


def mentions() -> list[tuple[str, str, str | None]]:
    """(file:line, command, next word) for every mention in runbooks/, engine/ and actions/."""
    found = []
    for top in ("runbooks", "engine", "actions"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in SUFFIXES or "__pycache__" in path.parts:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for m in MENTION.finditer(line):
                    word = m.group(1).rstrip(".")
                    if word not in PROSE and (word, m.group(2)) not in PROSE_AFTER:
                        found.append((f"{path.relative_to(ROOT)}:{n}", word, m.group(2)))
    return found


def is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")  # typer's groups are click groups, whichever click typer ships


def resolves(command: str, sub: str | None) -> bool:
    cli: Any = typer.main.get_command(app)
    ctx = cli.context_class(cli)
    found = cli.get_command(ctx, command)
    if found is None:
        return False
    if is_group(found) and sub is not None:
        return found.get_command(found.context_class(found, parent=ctx), sub) is not None
    return True


def test_the_scan_finds_the_mentions() -> None:
    words = {word for _, word, _ in mentions()}
    assert {"resume", "note", "report", "contacts", "audit"} <= words


def test_every_named_command_exists() -> None:
    missing = [f"{where}: breakglass {word}" + (f" {sub}" if sub else "") for where, word, sub in mentions()
               if not resolves(word, sub)]
    assert missing == []


@pytest.mark.parametrize("status", ["succeeded", "failed", "refused", "interrupted"])
def test_the_end_of_run_commands_parse(status: str) -> None:
    for _, command in next_commands("20241120T101500Z-domain-expiry-abc123", status):
        words = command.split()
        assert words[0] == "breakglass" and resolves(words[1], None), command
        cli: Any = typer.main.get_command(app)
        with cli.context_class(cli) as ctx:
            sub = cli.get_command(ctx, words[1])
            assert sub is not None
            sub.make_context(words[1], words[2:])  # raises click.UsageError when the arguments do not parse


def test_a_command_that_does_not_exist_is_caught() -> None:
    assert not resolves("domain.expiry_audit", None)
    assert not resolves("audit", "verfy")
    assert resolves("audit", "verify")
