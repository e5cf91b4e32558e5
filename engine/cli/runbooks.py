"""Commands about runbooks and actions: list, show, validate, schema, actions."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import JsonOpt, RunbookArg, RunbooksOpt, app, echo_json
from engine.errors import InputError


@app.command("list")
def list_cmd(runbooks: RunbooksOpt = None, as_json: JsonOpt = False) -> None:
    """List runbooks: shipped ones, $BREAKGLASS_PATH and --runbooks directories.

    \b
    Example:
      breakglass list --runbooks ~/team-runbooks
    """
    from engine.catalog import summaries

    rows = summaries(runbooks or [])
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['id']:<28} {row['severity']:<9} {row['title']}")


@app.command()
def show(runbook: RunbookArg, runbooks: RunbooksOpt = None, as_json: JsonOpt = False,
         expand: Annotated[bool, typer.Option("--expand", help="Also list the steps of the runbooks it calls.")]
         = False) -> None:
    """Show a runbook: its inputs and steps, which are gated and which change the world.

    \b
    Example:
      breakglass show dns-failover
    """
    from engine import i18n
    from engine.catalog import describe, render_description
    from engine.loader import load_file
    from engine.locate import find

    loaded = load_file(find(runbook, runbooks or []), lang=i18n.language())
    info = describe(loaded)
    if as_json:
        echo_json(info)
    else:
        typer.echo(render_description(info, expand))


@app.command()
def validate(
    paths: Annotated[list[str] | None, typer.Argument(metavar="[FILE|DIR]...",
                                                      help="Runbook files or directories.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate runbook files; every problem as file:line:col. Exit 2 when any is invalid.

    \b
    Example:
      breakglass validate runbooks/
    """
    from engine.catalog import validate_paths

    results = validate_paths(paths or [])
    if as_json:
        echo_json(results)
    else:
        for r in results:
            if r["ok"]:
                typer.echo(f"ok  {r['file']}")
            for p in r["problems"] + r["warnings"]:
                typer.echo(p, err=True)
    if not all(r["ok"] for r in results):
        raise typer.Exit(2)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write to this file.")] = None,
    records: Annotated[bool, typer.Option("--records", help="The schema of audit records (the JSON Lines of "
                                          "run/drill/watch/audit show --json) instead.")] = False,
) -> None:
    """Print the JSON Schema of runbook files (for yaml-language-server and other editors).

    \b
    Example:
      breakglass schema -o engine/runbook.schema.json
      breakglass schema --records -o engine/records.schema.json
    """
    if records:
        from engine.events import json_schema as records_schema

        text = json.dumps(records_schema(), indent=2) + "\n"
    else:
        from engine.model import json_schema

        text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        try:
            output.write_text(text)
        except OSError as exc:
            raise InputError(f"cannot write the schema to {output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)


def _complete_action(incomplete: str) -> list[str]:
    from actions.registry import Registry

    return [name for name in Registry().names() if name.startswith(incomplete)]


@app.command()
def actions(
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", autocompletion=_complete_action,
                                               help="One action: its arguments, output fields and effect.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List every action and whether it reads, writes or notifies; with NAME, all it takes and gives.

    \b
    Example:
      breakglass actions dns.update
    """
    from actions.registry import Registry
    from engine.catalog import render_action

    rows = Registry().describe(name)
    if as_json:
        echo_json(rows[0] if name else rows)
    elif name:
        typer.echo(render_action(rows[0]))
    else:
        for row in rows:
            undo = " [rollback: auto]" if row["undo"] else ""
            typer.echo(f"{row['name']:<22} {row['effect']:<7} {row['summary']}{undo}")
            for arg in row["arguments"]:
                need = "required" if arg["required"] else f"default {arg['default']!r}"
                typer.echo(f"    {arg['name']:<20} {arg['type']:<18} {need}")
