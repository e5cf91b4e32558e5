"""``breakglass audit verify`` and ``audit show``: the hash chain of one run, checked and read."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.app import JsonOpt, RecordsJsonOpt, RunArg, audit_app, echo_json, echo_json_lines, store
from engine.i18n import _
from engine.text import visible_line


@audit_app.command("verify")
def audit_verify(
    run_id: RunArg,
    head: Annotated[str | None, typer.Option("--head", metavar="HASH",
                                             help="The chain head published at the end of the run.")] = None,
    signers_file: Annotated[Path | None, typer.Option(
        "--signers", metavar="FILE", help="The team's allowed_signers: check every approval and the signed head "
                                          "again, offline.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain; name every edited, deleted or reordered line. Exit 6 when it does not verify.

    With --signers, every approval signature and the signed head are checked again with ssh-keygen -Y verify;
    one that the run counted and that does not verify fails the check too.

    \b
    Example:
      breakglass audit verify last --head 3f2a...c9 --signers ~/team/allowed_signers
    """
    runs_store = store()
    run_id = runs_store.resolve(run_id)
    verdict = runs_store.verify(run_id, head)
    checked: list[Any] = []
    bad: list[Any] = []
    if signers_file is not None:
        from engine import evidence, signers

        checked = evidence.check([r.to_dict() for r in runs_store.records(run_id)], signers.load(signers_file))
        bad = evidence.failures(checked)
    if as_json:
        echo_json({"run": run_id, "ok": verdict.ok and not bad, "records": verdict.records, "head": verdict.head,
                   "problems": verdict.problems, "after_head": verdict.after_head,
                   "signatures": [c.to_dict() for c in checked]})
    else:
        for c in checked:
            what = (_("record {seq}: {by} {decision} at gate {gate}") if c.kind == "approval"
                    else _("record {seq}: audit head signed by {by}")).format(seq=c.seq, by=c.by,
                                                                             decision=c.decision, gate=c.gate)
            said = (_("signature verified ({fingerprint})").format(fingerprint=c.fingerprint) if not c.problem
                    else _("NOT verified: {problem}").format(problem=c.problem))
            if c.problem and not c.counted:
                said = _("not counted by the run either: {problem}").format(problem=c.problem)
            typer.echo(visible_line(f"{what}: {said}"), err=bool(c.problem and c.counted))
        for p in verdict.problems:
            typer.echo(f"{runs_store.where(run_id)}: {p}", err=True)
        if verdict.ok:
            typer.echo(f"ok: {verdict.records} records, head {verdict.head}")
            if head and verdict.after_head:
                typer.echo(f"the head you gave is pinned; {len(verdict.after_head)} record(s) were added after it: "
                           f"{', '.join(verdict.after_head)}")
        if bad:
            typer.echo(_("{count} signature(s) the run relied on do not verify against {file}").format(
                count=len(bad), file=signers_file), err=True)
    if not verdict.ok or bad:
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
