"""The typer application, the options commands share, and how they reach the library (store, reporter, run
options). Command modules register on ``app``; ``engine.cli`` imports them all and holds ``main``.

Heavy modules (pydantic, Jinja2, actions) are imported inside commands so ``--help`` and ``list`` start fast.
"""

# No `from __future__ import annotations`: typer reads these signatures at every start, and real
# annotations spare it evaluating strings (measured: the command tree builds in 4 ms instead of 12).

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.errors import InputError
from engine.i18n import _

# pydantic looks for plugins through every installed distribution's entry points on first use (~20 ms);
# breakglass uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="breakglass",
    help="Incident and outage runbooks: diagnose, decide at gates, change safely, keep a tamper-evident log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,  # plain help: loading rich to format it costs start-up
    context_settings=HELP,
)
audit_app = typer.Typer(help="Verify and show a run's audit log.", no_args_is_help=True, context_settings=HELP)
app.add_typer(audit_app, name="audit")


def _show_version(value: bool) -> None:
    if value:
        from engine.version import __version__

        typer.echo(f"breakglass {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    store: Annotated[str | None, typer.Option("--store", metavar="URL", help=(
        "Keep runs in this PostgreSQL database (postgresql://user@host:port/db; the password comes from "
        "~/.pgpass) instead of BREAKGLASS_HOME. Default: $BREAKGLASS_STORE."))] = None,
    lang: Annotated[str | None, typer.Option("--lang", metavar="LANG",
                                             help="Language of prompts and status lines: en or ja (default: "
                                                  "$BREAKGLASS_LANG, else the locale). --json output and the "
                                                  "audit log are the same in every language.")] = None,
) -> None:
    """Incident and outage runbooks: diagnose, decide at gates, change safely, keep a tamper-evident log."""
    from engine import i18n

    i18n.use(i18n.choose(lang))
    if store is not None:
        os.environ["BREAKGLASS_STORE"] = store  # read by store.default_store, the one place a store is chosen


# --- completion: what a shell offers after TAB, read the way the commands read it ---------------------------


def complete_runbook(incomplete: str) -> list[str]:
    from engine.catalog import summaries

    try:
        return [row["id"] for row in summaries([]) if str(row["id"]).startswith(incomplete)]
    except Exception:  # noqa: BLE001 - a completion must never print a traceback into the shell
        return []


def complete_run(incomplete: str) -> list[str]:
    try:
        ids = [r.id for r in store().list_runs()]
    except Exception:  # noqa: BLE001
        return []
    return [i for i in ["last", *reversed(ids)] if i.startswith(incomplete)]


def complete_step(ctx: typer.Context, incomplete: str) -> list[str]:
    """Gate ids of the runbook named on the same command line (for --approve)."""
    from engine.calls import gate_ids
    from engine.loader import load_file
    from engine.locate import find

    try:
        gates = gate_ids(load_file(find(str(ctx.params.get("runbook") or ""), [])))
    except Exception:  # noqa: BLE001
        return []
    return [g for g in gates if g.startswith(incomplete)]


RunbookArg = Annotated[str, typer.Argument(metavar="RUNBOOK", help="A runbook id (see `list`) or a file.",
                                           autocompletion=complete_runbook)]
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="A run id, a unique prefix of one, or 'last'.",
                                       autocompletion=complete_run)]
RunbooksOpt = Annotated[list[str] | None, typer.Option("--runbooks", "-r", metavar="DIR",
                                                       help="Extra runbook directory (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
# Commands that stream a run's records: one JSON line per record, the same shape from run, drill, resume,
# audit show and watch.
RecordsJsonOpt = Annotated[bool, typer.Option("--json", help="Every audit record as a JSON line on stdout.")]
InputOpt = Annotated[list[str] | None, typer.Option("-i", "--input", metavar="NAME=VALUE",
                                                    help="An input (repeatable).")]
InputsFileOpt = Annotated[Path | None, typer.Option("--inputs", metavar="FILE", help="A YAML or JSON file of inputs.")]
ApproveOpt = Annotated[list[str] | None, typer.Option("--approve", metavar="STEP", autocompletion=complete_step,
                                                      help="Pre-approve the gate of STEP (repeatable).")]
OperatorOpt = Annotated[str | None, typer.Option("--operator", metavar="NAME",
                                                 help="Who is running this (default user@host).")]
GateTimeoutOpt = Annotated[float | None, typer.Option("--gate-timeout", metavar="SECONDS",
                                                      help="Seconds a gate waits; then no.")]


def echo_json(data: Any) -> None:
    """One JSON document (a listing, a description); streams of records are JSON Lines instead."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def echo_json_lines(records: Any) -> None:
    """Records as JSON Lines, written by the same reporter as `run --json`, so every stream has one shape."""
    from engine.console import JsonReporter

    lines = JsonReporter()
    for rec in records:
        lines.event(rec)


def store() -> Any:
    from engine.store import default_store

    return default_store()


def parse_inputs(pairs: list[str] | None, file: Path | None) -> dict[str, Any]:
    from engine.audit import require_utf8

    values: dict[str, Any] = inputs_file(file) if file is not None else {}
    for pair in pairs or []:
        name, eq, value = pair.partition("=")
        require_utf8(name, "an -i input name")
        if not eq or not name:
            raise InputError(f"-i {pair!r}: write inputs as name=value")
        require_utf8(value, f"input '{name.strip()}'")
        values[name.strip()] = value
    return values


def inputs_file(file: Path) -> dict[str, Any]:
    """An --inputs file, read as warily as a runbook: bounded size, no device or FIFO, no alias bomb."""
    from engine.yamlsource import SourceError, parse, read_document

    try:
        loaded = parse(read_document(file, "inputs file"), str(file), "inputs file").data
    except SourceError as exc:
        raise InputError("\n".join(str(p) for p in exc.problems)) from None
    if not isinstance(loaded, dict):
        raise InputError(f"{file}: inputs must be a mapping of name: value")
    return loaded


def reporter(as_json: bool) -> Any:
    from engine.console import JsonReporter, TerminalReporter

    return JsonReporter() if as_json else TerminalReporter()


def options(mode: str, operator: str | None, approve: list[str] | None, yes: bool,
             gate_timeout: float | None, **extra: Any) -> Any:
    from engine.gates import default_operator
    from engine.session import RunOptions

    if yes and mode == "live":
        raise InputError("--yes approves gates only with --dry-run or in a drill, never in a live run; "
                         "use --approve STEP for the gates you have reviewed")
    return RunOptions(mode=mode, operator=operator or default_operator(), approvals=frozenset(approve or []),
                      yes=yes, gate_timeout=gate_timeout, **extra)


def ask_missing(rb: Any, given: dict[str, Any], terminal: Any) -> dict[str, Any]:
    """At a terminal, a required input left out is asked for (a secret without echo) instead of stopping the
    run at 3 a.m. for a forgotten -i; without one, the run refuses as before and names what is missing."""
    if not terminal.interactive:
        return given
    values = dict(given)
    for name, spec in rb.inputs.items():
        if name in values or (spec.env and spec.env in os.environ) or spec.default is not None \
                or not spec.is_required:
            continue
        secret = str(spec.type) == "secret"
        about = f" ({spec.description.strip().splitlines()[0]})" if spec.description.strip() else ""
        prompt = _("input '{name}'{about}, {type}, not shown: ") if secret else _("input '{name}'{about}, {type}: ")
        answer = terminal.ask(prompt.format(name=name, about=about, type=spec.type), echo=not secret)
        if answer is None:
            break  # end of input: resolve() names what is still missing
        if answer.strip():
            values[name] = answer if secret else answer.strip()
    return values


