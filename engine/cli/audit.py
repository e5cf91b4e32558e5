"""``breakglass audit verify`` and ``audit show``: the hash chain of one run, checked and read."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

from typing import Annotated

import typer

from engine.cli.app import JsonOpt, RecordsJsonOpt, RunArg, audit_app, echo_json, echo_json_lines, store


@audit_app.command("verify")
def audit_verify(
    run_id: RunArg,
    head: Annotated[str | None, typer.Option("--head", metavar="HASH",
                                             help="The chain head published at the end of the run.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain; name every edited, deleted or reordered line. Exit 6 when it does not verify.

    \b
    Example:
      breakglass audit verify last --head 3f2a...c9
    """
    runs_store = store()
    run_id = runs_store.resolve(run_id)
    verdict = runs_store.verify(run_id, head)
    if as_json:
        echo_json({"run": run_id, "ok": verdict.ok, "records": verdict.records, "head": verdict.head,
                   "problems": verdict.problems, "after_head": verdict.after_head})
    else:
        for p in verdict.problems:
            typer.echo(f"{runs_store.where(run_id)}: {p}", err=True)
        if verdict.ok:
            typer.echo(f"ok: {verdict.records} records, head {verdict.head}")
            if head and verdict.after_head:
                typer.echo(f"the head you gave is pinned; {len(verdict.after_head)} record(s) were added after it: "
                           f"{', '.join(verdict.after_head)}")
    if not verdict.ok:
        raise typer.Exit(6)


@audit_app.command("show")
def audit_show(
    run_id: RunArg,
    as_json: RecordsJsonOpt = False,
) -> None:
    """Print a run's timeline from its audit log.

    \b
    Example:
      breakglass audit show last
    """
    from engine.timeline import timeline_lines

    runs_store = store()
    records = [r.to_dict() for r in runs_store.records(runs_store.resolve(run_id))]
    if as_json:
        echo_json_lines(records)
        return
    for line in timeline_lines(records):
        typer.echo(line)
