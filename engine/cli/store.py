"""``breakglass store`` (migrate, copy) and ``breakglass watch``: the shared run store, and following a run."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.app import HELP, RecordsJsonOpt, RunArg, app, echo_json_lines
from engine.cli.app import store as runs_store
from engine.errors import AuditError, InputError

store_app = typer.Typer(help="The shared run store: create or upgrade its schema, bring file runs in.",
                        no_args_is_help=True, context_settings=HELP)
app.add_typer(store_app, name="store")


def _database() -> Any:
    """The PostgreSQL store --store or BREAKGLASS_STORE names, its schema not yet checked."""
    from engine.store import STORE_ENV, open_store

    url = os.environ.get(STORE_ENV, "").strip()
    if not url:
        raise InputError("this works on a database store: give --store postgresql://user@host:port/database "
                         f"(before the command) or set {STORE_ENV}")
    return open_store(url, check_schema=False)


@store_app.command("migrate")
def migrate() -> None:
    """Create or upgrade the database schema. Safe to run again: an up-to-date schema is left as it is.

    \b
    Example:
      breakglass --store postgresql://oncall@db.internal:5432/breakglass store migrate
    """
    store = _database()
    before, after = store.migrate()
    if before == after:
        typer.echo(f"{store.shown}: schema version {after}, up to date; nothing to do")
    else:
        typer.echo(f"{store.shown}: schema version {before} -> {after}")


@store_app.command("copy")
def copy(
    source: Annotated[Path | None, typer.Option("--from", metavar="DIR", help="The BREAKGLASS_HOME to copy runs from "
                                                "(default: this machine's).")] = None,
) -> None:
    """Copy every run of a file store into the database, each chain verified before and after. Exit 6 when
    a run could not be copied (the others are).

    \b
    Example:
      breakglass --store postgresql://oncall@db.internal:5432/breakglass store copy --from ~/.local/state/breakglass
    """
    from engine.store import FileStore
    from engine.text import visible_line

    target = _database()
    target.require_schema()
    files = FileStore(source) if source is not None else FileStore()
    failed = 0
    runs = files.list_runs()
    for run in runs:
        try:
            how = target.adopt(run.id, run.runbook, files.records(run.id), files.verify(run.id))
        except AuditError as exc:
            failed += 1
            typer.echo(f"not copied: {visible_line(str(exc))}", err=True)
            continue
        typer.echo(f"{how:<8} {run.id}")
    typer.echo(f"{len(runs) - failed} of {len(runs)} runs in {target.shown}", err=True)
    if failed:
        raise typer.Exit(6)


@app.command("watch")
def watch_cmd(
    run_id: RunArg,
    as_json: RecordsJsonOpt = False,
) -> None:
    """Follow a run live, from any machine: each record as it lands, until the run finishes.

    \b
    Example:
      breakglass watch last
    """
    from engine.timeline import timeline_lines
    from engine.watch import watch

    store = runs_store()
    run_id = store.resolve(run_id)
    if not as_json:
        typer.echo(f"following run {run_id}; ends when the run finishes (Ctrl-C stops watching)", err=True)
    told = False
    for rec in watch(store, run_id):
        if rec is None:
            if not told and not store.is_driven(run_id):
                typer.echo(f"nobody drives run {run_id} now; waiting for someone to `breakglass resume` it",
                           err=True)
                told = True
            continue
        told = False
        if as_json:
            echo_json_lines([rec.to_dict()])
        else:
            typer.echo(timeline_lines([rec.to_dict()])[0])
