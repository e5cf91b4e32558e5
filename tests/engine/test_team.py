"""The team file: contacts by role and legal regimes, read by templates, checked by validate, shown by contacts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine import team
from engine.errors import InputError
from engine.text import width
from tests.runbooks.operator import BREAKGLASS, cli_env, run_json

TEAM = """\
contacts:
  registrar_24x7:
    name: Acme Registrar NOC
    phone: "+81 3 5555 0100"
    url: https://noc.acme-registrar.example/escalation/for/domains/on/hold/and/everything/else/too
  dpo:
    name: "佐藤花子 (Hanako Sato)\\u001b[2J"
    email: dpo@example.jp
    notes: 携帯は22時以降。15分以内に応答がなければ弁護士に電話し、電話した時刻と相手を記録してください。
legal:
  regimes: [appi, gdpr]
"""

RUNBOOK = """\
id: call-registrar
title: Call the registrar
steps:
  - id: call
    title: Call them
    action: log.note
    with:
      text: "Call {{ contacts.registrar_24x7.name }} on {{ contacts.registrar_24x7.phone }}; DPO {{ contacts.dpo.email }}"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BREAKGLASS, *args], capture_output=True, text=True, env=cli_env(home, **env),
                          timeout=60, stdin=subprocess.DEVNULL)


def test_the_file_is_read(tmp_path: Path) -> None:
    loaded = team.load(write(tmp_path, "team.yaml", TEAM))
    assert loaded.regimes == ("appi", "gdpr")
    assert loaded.contact("registrar_24x7")["phone"] == "+81 3 5555 0100"
    assert loaded.contact("lawyer")["phone"].startswith("(no lawyer in ")


@pytest.mark.parametrize(("text", "expected"), [
    ("contacts:\n  registrar_247: {name: X}\n", "team.yaml:2:3: unknown role 'registrar_247' (did you mean "
     "'registrar_24x7'?)"),
    ("contacts:\n  dpo: {name: X, phon: '1'}\n", "team.yaml:2:18: unknown field 'phon' (did you mean 'phone'?)"),
    ("legal:\n  regimes: [appi, gdrp]\n", "team.yaml:2:19: unknown regime 'gdrp' (did you mean 'gdpr'?)"),
    ("contact:\n  dpo: {}\n", "team.yaml:1:1: unknown section 'contact' (did you mean 'contacts'?)"),
])
def test_a_broken_file_is_located(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "team.yaml", text)
    with pytest.raises(InputError) as err:
        team.load(path)
    assert str(err.value).startswith(f"{tmp_path}/{expected}")


def test_validate_names_the_missing_role_where_the_runbook_needs_it(tmp_path: Path) -> None:
    book = write(tmp_path, "call-registrar.yaml", RUNBOOK.replace("contacts.dpo.email", "contacts.lawyer.email"))
    result = cli(["validate", str(book)], tmp_path / "home", BREAKGLASS_TEAM=str(write(tmp_path, "team.yaml", TEAM)))
    assert result.returncode == 2
    assert f"{book}:8:13: needs contact 'lawyer', which {tmp_path}/team.yaml does not list" in result.stderr


def test_without_a_team_file_validate_only_warns(tmp_path: Path) -> None:
    book = write(tmp_path, "call-registrar.yaml", RUNBOOK)
    result = cli(["validate", str(book)], tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert f"{book}:8:13: warning: needs contact 'registrar_24x7', which no team file lists" in result.stderr


def test_an_unknown_role_or_field_is_a_runbook_error(tmp_path: Path) -> None:
    book = write(tmp_path, "call-registrar.yaml", RUNBOOK.replace("contacts.dpo.email", "contacts.dop.emial"))
    result = cli(["validate", str(book)], tmp_path / "home")
    assert result.returncode == 2
    assert "'contacts.dop' is not a contact role (did you mean 'dpo'?)" in result.stderr
    assert "a contact has no field 'emial' (did you mean 'email'?)" in result.stderr


def test_a_run_renders_the_teams_numbers(tmp_path: Path) -> None:
    book = write(tmp_path, "call-registrar.yaml", RUNBOOK)
    env = cli_env(tmp_path / "home", BREAKGLASS_TEAM=str(write(tmp_path, "team.yaml", TEAM)))
    result = run_json(["run", str(book)], env, timeout=60)
    [done] = [e for e in result.events if e.get("type") == "step.succeeded"]
    assert "Call Acme Registrar NOC on +81 3 5555 0100; DPO dpo@example.jp" in str(done["output"])


def test_contacts_fits_80_columns_and_shows_control_characters(tmp_path: Path) -> None:
    result = cli(["contacts"], tmp_path / "home", BREAKGLASS_TEAM=str(write(tmp_path, "team.yaml", TEAM)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(width(line) <= 80 for line in lines), [line for line in lines if width(line) > 80]
    assert "\x1b" not in result.stdout and "佐藤花子 (Hanako Sato)^[[2J" in result.stdout
    assert "  phone +81 3 5555 0100" in lines and "lawyer: (not set)" in lines
    notes = [line for line in lines if "22時" in line or line.startswith(" " * 8)]
    assert len(notes) >= 2  # the long Japanese note wrapped, each line measured in display columns
