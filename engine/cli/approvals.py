"""pending, approve, deny: other people's signed answers at a multi-party gate (engine.approvals)."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import JsonOpt, RunArg, app, echo_json, store

GateArg = Annotated[str, typer.Argument(metavar="STEP", help="The gate: a step id (or STEP.rollback).")]
KeyOpt = Annotated[Path | None, typer.Option("--key", metavar="FILE",
                                             help="Your SSH private key (default: the ssh-agent, then "
                                                  "~/.ssh/id_ed25519).")]


@app.command()
def pending(as_json: JsonOpt = False) -> None:
    """List gates waiting for other people's approval.

    \b
    Example:
      breakglass pending
    """
    from engine.approvals import pending as open_gates
    from engine.text import visible_line

    rows = open_gates(store())
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("no gate is waiting for approvals")
    for r in rows:
        left = "no timeout" if r["seconds_left"] is None else f"{r['seconds_left']:.0f} s left"
        typer.echo(visible_line(f"{r['run']} {r['gate']}: {r['missing']} of {r['needed']} approval(s) still "
                                f"needed from {', '.join(r['approvers'])}; {left}"))
        typer.echo(visible_line(f"  plan: {r['plan']}"))
        typer.echo(f"  digest {r['digest']}")
        typer.echo(f"  breakglass approve {r['run']} {r['gate']} --digest {r['digest']}")


@app.command()
def approve(
    run_id: RunArg,
    gate: GateArg,
    key: KeyOpt = None,
    digest: Annotated[str | None, typer.Option("--digest", metavar="HASH",
                                               help="The plan digest `pending` showed; needed without a "
                                                    "terminal.")] = None,
) -> None:
    """Approve another operator's gate with a signature by your SSH key, after reading its plan.

    \b
    Example:
      breakglass approve 20260130T031500Z-dns-failover-1a2b switch_ns
    """
    from engine.approvals import APPROVE, answer, find_open
    from engine.errors import InputError
    from engine.gates import Terminal, describe

    runs = store()
    terminal = Terminal()
    if digest is None:
        if not terminal.interactive:
            raise InputError("without a terminal, approve only the plan you saw: give --digest HASH "
                             "as `breakglass pending` shows it")
        run, open_gate, _ = find_open(runs, run_id, gate)
        terminal.say(f"GATE {open_gate.gate} of run {run}, driven by {open_gate.operator}: {open_gate.message}")
        for line in describe(dict(open_gate.shown)):
            terminal.say(f"  {line}")
        terminal.say(f"  plan digest {open_gate.digest}")
        said = terminal.ask("Approve and sign? [yes / no]: ")
        if (said or "").strip().lower() not in ("y", "yes"):
            typer.echo("not approved; nothing recorded", err=True)
            raise typer.Exit(3)
        digest = open_gate.digest
    rec = answer(runs, run_id, gate, APPROVE, key, digest=digest)
    typer.echo(f"approved as {rec['by']}: signed and recorded (record {rec['seq']})")


@app.command()
def deny(
    run_id: RunArg,
    gate: GateArg,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why, for the operator and the log.")],
    key: KeyOpt = None,
) -> None:
    """Refuse another operator's gate, signed by your SSH key; one refusal refuses the gate.

    \b
    Example:
      breakglass deny last switch_ns --reason "the standby is not warmed up"
    """
    from engine.approvals import DENY, answer
    from engine.errors import InputError

    if not reason.strip():
        raise InputError("say why with --reason: the operator reads it at the gate")
    rec = answer(store(), run_id, gate, DENY, key, reason=reason)
    typer.echo(f"refused as {rec['by']}: signed and recorded (record {rec['seq']})")
