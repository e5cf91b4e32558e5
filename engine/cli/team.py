"""contacts: the team file's people by role, read before an incident and at 3 a.m. (engine/team.py)."""

# No `from __future__ import annotations`: typer reads these signatures at every start.

import typer

from engine.cli.app import JsonOpt, app, echo_json
from engine.i18n import _

WIDTH = 80
LABEL = 8  # "  phone " : the field names line up, values wrap under themselves


@app.command()
def contacts(as_json: JsonOpt = False) -> None:
    """Show the team's contacts by role (registrar 24/7, DPO, lawyer ...) from the team file.

    \b
    The file is $BREAKGLASS_TEAM, else ~/.config/breakglass/team.yaml. Runbooks name roles:
    {{ contacts.registrar_24x7.phone }}.
    Example:
      breakglass contacts
    """
    from engine import team as team_file
    from engine.text import visible_line, wrap

    team = team_file.load()
    if as_json:
        echo_json({"file": str(team.path) if team.path else None, "regimes": list(team.regimes),
                   "contacts": {role: team.contacts.get(role) for role in team_file.ROLES}})
        return
    if team.path is None:
        head = _("No team file: create {path} or set ${env} (see README, \"Team contacts\").").format(
            path=team_file.default_path(), env=team_file.ENV)
    else:
        head = _("Team file: {path}").format(path=visible_line(str(team.path)))
    for line in wrap(head, WIDTH, "", "  "):
        typer.echo(line)
    for role in team_file.ROLES:
        card = team.contacts.get(role)
        if not card:
            typer.echo(f"{role}: " + _("(not set)"))
            continue
        # Team files are edited by many hands and pasted from mails: a control character or an escape
        # sequence is shown, never sent to the terminal. Widths are display columns (Japanese names).
        for line in wrap(visible_line(card.get("name", "")), WIDTH, f"{role}: ", " " * LABEL):
            typer.echo(line)
        for field in team_file.FIELDS[1:]:
            value = card.get(field, "")
            if value:
                for line in wrap(visible_line(value), WIDTH, f"  {field:<{LABEL - 2}}", " " * LABEL):
                    typer.echo(line)
    if team.regimes:
        typer.echo(_("Notification regimes: {regimes}").format(regimes=", ".join(team.regimes)))
