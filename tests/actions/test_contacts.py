"""contacts.check and followup.add: what is not ready becomes an open item at the end of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult
from actions.contacts import ContactsCheck
from actions.core import FollowupAdd
from engine.errors import ActionError
from engine.team import ROLES
from tests.runbooks.operator import cli_env, run_json


def check(contacts: dict[str, Any], **params: Any) -> ActionResult:
    action = ContactsCheck()
    ctx = ActionContext(settings={"team_contacts": contacts, "team_roles": ROLES, "team_file": "/etc/team.yaml"})
    return action.run(action.Params(**params), ctx)


def test_a_complete_team_is_ready() -> None:
    result = check({role: {"name": role, "phone": "+81 3 0000"} for role in ROLES})
    assert result.ok and result.output["present"] == list(ROLES) and result.output["open_items"] == []


def test_missing_and_unreachable_roles_are_open_items() -> None:
    result = check({"dpo": {"name": "Hanako Sato", "email": "dpo@example.jp"}, "card_acquirer": {"name": "Acq"},
                    "forensics": {"phone": "+1 555"}}, roles=["dpo", "card_acquirer", "forensics", "lawyer"])
    assert not result.ok
    assert result.output["missing"] == ["lawyer"]
    assert result.output["unreachable"] == ["card_acquirer", "forensics"]  # no way to reach; no name
    assert [i["text"] for i in result.output["open_items"]] == [
        "add contact 'lawyer' to /etc/team.yaml",
        "give contact 'card_acquirer' in /etc/team.yaml a name and a phone, e-mail or URL",
        "give contact 'forensics' in /etc/team.yaml a name and a phone, e-mail or URL",
    ]


def test_every_role_is_checked_by_default_and_an_unknown_one_is_refused() -> None:
    assert check({}).output["missing"] == list(ROLES)
    with pytest.raises(ActionError, match="unknown role"):
        check({}, roles=["acquirer"])


def test_followup_lines_are_items_and_blank_lines_are_dropped() -> None:
    action = FollowupAdd()
    result = action.run(action.Params(text="- renew the certificate\n\n  \nrotate the key\n"), ActionContext())
    assert result.ok
    assert result.output["open_items"] == [{"text": "renew the certificate", "due": None},
                                           {"text": "rotate the key", "due": None}]


BOOK = """\
id: ready
title: Ready?
steps:
  - id: contacts
    title: Contacts
    action: contacts.check
    with: {roles: [dpo, forensics]}
    on_failure: continue
  - id: left
    title: Left
    action: followup.add
    with:
      text: |
        {% if not steps.contacts.ok %}- fill in the team file{% endif %}
"""


def test_the_team_file_reaches_the_check_and_the_gaps_end_the_run(tmp_path: Path) -> None:
    (tmp_path / "ready.yaml").write_text(BOOK)
    team = tmp_path / "team.yaml"
    team.write_text('contacts:\n  dpo: {name: Hanako Sato, phone: "+81 3 5555 0101"}\n')
    result = run_json(["run", str(tmp_path / "ready.yaml")], cli_env(tmp_path / "home", BREAKGLASS_TEAM=str(team)))
    assert result.finished["status"] == "succeeded", result.stderr
    assert [(i["step"], i["text"]) for i in result.finished["open"] if i["kind"] == "due"] == [
        ("contacts", f"add contact 'forensics' to {team}"), ("left", "fill in the team file")]
    team.write_text(team.read_text() + '  forensics: {name: PFI Ltd, url: "https://pfi.example"}\n')
    result = run_json(["run", str(tmp_path / "ready.yaml")], cli_env(tmp_path / "home", BREAKGLASS_TEAM=str(team)))
    assert [i for i in result.finished["open"] if i["kind"] == "due"] == []
