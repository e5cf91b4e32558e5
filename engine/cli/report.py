"""``breakglass report``: the post-incident report of a run, from its audit log alone."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import RunArg, app, store
from engine.errors import InputError


class ReportFormat(StrEnum):
    markdown = "markdown"
    html = "html"
    json = "json"


@app.command()
def report(
    run_id: RunArg,
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="The report's format.")]
    = ReportFormat.markdown,
    output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write to this file.")] = None,
    lang: Annotated[str | None, typer.Option("--lang", metavar="LANG", help=(
        "The report's language: en or ja (default: the language the run was recorded in)."))] = None,
) -> None:
    """A post-incident report from the run's audit log: summary, timeline, decisions, and sections to edit.

    \b
    Example:
      breakglass report last --format html -o incident.html
      breakglass report last --lang ja
    """
    from dataclasses import replace

    from engine import i18n
    from engine.report import from_store
    from engine.report_render import render

    built = from_store(store(), run_id)
    if lang is not None:
        built = replace(built, lang=i18n.choose(lang, {}))
    text = render(built, fmt.value)
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the report to {output}: {exc.strerror}") from None
        typer.echo(f"report written to {output}", err=True)
