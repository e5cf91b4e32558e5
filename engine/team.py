"""The team's configuration file: who to call (contacts by role) and which notification laws apply (legal).

One YAML file per team, found at ``$BREAKGLASS_TEAM``, else ``$XDG_CONFIG_HOME/breakglass/team.yaml``
(``~/.config/breakglass/team.yaml``)::

    contacts:
      registrar_24x7: {name: Acme Registrar NOC, phone: "+1 555 0100", url: https://noc.acme.example}
      dpo: {name: Hanako Sato, email: dpo@example.jp, notes: "mobile after 22:00"}
    legal:
      regimes: [appi, gdpr]

Like the allowed_signers file (engine/signers.py), it belongs to the team, never to a runbook: a runbook
names a *role* (``{{ contacts.registrar_24x7.phone }}``) and the number comes from here, so nobody types a
phone number from memory at 3 a.m. and a runbook shared between teams carries no one's numbers.

A role a runbook names but this file lacks renders as a visible placeholder at run time (a run is never
refused for a missing phone number); ``validate`` reports it as an error, or as a warning when there is no
team file at all (a fresh checkout, CI).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import templates
from engine.errors import InputError, Problem, TemplateError
from engine.yamlsource import Source, SourceError, parse

ENV = "BREAKGLASS_TEAM"

# The roles a runbook may name, in the order `breakglass contacts` lists them: what the write-ups needed.
ROLES: tuple[str, ...] = (
    "registrar_24x7",
    "registrar_account_manager",
    "registrar_executive",  # the rung after a silent account manager (Zoho, 2024: a dead 24/7 line)
    "hosting",
    "dns_provider",
    "dpo",
    "lawyer",
    "executives",
    "card_acquirer",
    # Whoever owns a server and whoever administers it: the first call after a compromise ("touch nothing").
    "system_owner",
    "server_admins",
    "forensics",  # a PCI forensic investigator (PFI) or incident-response firm on retainer
)
FIELDS: tuple[str, ...] = ("name", "phone", "email", "url", "notes")
# Notification regimes breakglass computes deadlines for (actions/legal.py holds their rules).
REGIMES: tuple[str, ...] = ("appi", "gdpr")


@dataclass(frozen=True)
class Team:
    """The parsed team file; ``path`` None when there is none."""

    path: Path | None
    contacts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    regimes: tuple[str, ...] = ()

    def contact(self, role: str) -> dict[str, str]:
        """A role's card for templates: every field present, a missing one said in words."""
        card = self.contacts.get(role)
        if card is None:
            where = str(self.path) if self.path else f"a team file (${ENV})"
            return {f: f"(no {role} in {where})" for f in FIELDS}
        return {f: card.get(f, "") for f in FIELDS}

    def template_context(self) -> dict[str, dict[str, str]]:
        """``contacts`` as templates see it: every role, filled from the file or with a placeholder."""
        return {role: self.contact(role) for role in ROLES}


def default_path() -> Path:
    explicit = os.environ.get(ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "breakglass" / "team.yaml"


def load(path: Path | None = None) -> Team:
    """The team file; an absent one is an empty Team, a broken one an InputError with file:line:col."""
    path = path or default_path()
    if not path.exists():
        if os.environ.get(ENV, "").strip():
            raise InputError(f"${ENV} names {path}, which does not exist")
        return Team(None)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the team file ({exc.__class__.__name__})") from None
    try:
        src = parse(text, str(path), kind="team file")
    except SourceError as exc:
        raise InputError("; ".join(str(p) for p in exc.problems)) from None
    problems = list(_problems(src))
    if problems:
        raise InputError("\n".join(str(p) for p in problems))
    data = src.data or {}
    contacts = {role: {f: str(v) for f, v in (card or {}).items() if v is not None}
                for role, card in (data.get("contacts") or {}).items()}
    regimes = tuple(str(r).lower() for r in ((data.get("legal") or {}).get("regimes") or ()))
    return Team(path, contacts, regimes)


def _near(word: str, choices: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(str(word), choices, n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def _problems(src: Source) -> Iterator[Problem]:
    data = src.data
    if data is None:
        return
    if not isinstance(data, dict):
        yield src.problem((), "the team file must be a mapping with contacts: and legal:")
        return
    for key in data:
        if key not in ("contacts", "legal"):
            yield src.problem((key,), f"unknown section '{key}'{_near(key, ('contacts', 'legal'))}; "
                              "the team file has contacts: and legal:", key=True)
    contacts = data.get("contacts") or {}
    if not isinstance(contacts, dict):
        yield src.problem(("contacts",), "contacts: must map roles to {name, phone, email, url, notes}")
        contacts = {}
    for role, card in contacts.items():
        if role not in ROLES:
            yield src.problem(("contacts", role), f"unknown role '{role}'{_near(role, ROLES)}; roles: "
                              + ", ".join(ROLES), key=True)
        if not isinstance(card, dict):
            yield src.problem(("contacts", role), f"contact '{role}' must be a mapping of {', '.join(FIELDS)}")
            continue
        for name in card:
            if name not in FIELDS:
                yield src.problem(("contacts", role, name), f"unknown field '{name}'{_near(name, FIELDS)}; a "
                                  f"contact has {', '.join(FIELDS)}", key=True)
    legal = data.get("legal") or {}
    regimes = legal.get("regimes") if isinstance(legal, dict) else None
    if legal and not isinstance(regimes, list):
        yield src.problem(("legal",), "legal: takes regimes: [" + ", ".join(REGIMES) + "]")
        return
    for i, regime in enumerate(regimes or ()):
        if str(regime).lower() not in REGIMES:
            near = _near(str(regime).lower(), REGIMES)
            yield src.problem(("legal", "regimes", i), f"unknown regime '{regime}'{near}; breakglass knows "
                              + ", ".join(REGIMES))


# --- what a runbook needs from it ---------------------------------------------------------------------


def roles_used(src: Source) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(role, path) for every ``contacts.<role>`` a runbook's templates read."""
    yield from _walk(src.data, ())


def _walk(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    if isinstance(value, str) and templates.is_template(value):
        try:
            found = templates.facts(value, False, frozenset())
        except TemplateError:
            return  # reported by the loader's own checks
        for root, attr in sorted(found.references, key=lambda r: (r[0], r[1] or "")):
            if root == "contacts" and attr is not None:
                yield attr, path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, i))


def check_runbook(src: Source, team: Team) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings): roles the runbook names that the team file lacks; warnings only without a file."""
    missing: list[Problem] = []
    for role, path in dict.fromkeys(roles_used(src)):  # a role named twice in one text is said once
        if role in ROLES and role not in team.contacts:
            missing.append(src.problem(path, f"needs contact '{role}', which "
                                       + (f"{team.path} does not list" if team.path else "no team file lists")))
    if team.path is None:
        return [], [Problem(p.file, p.line, p.column, f"warning: {p.message} (set ${ENV})") for p in missing]
    return missing, []
