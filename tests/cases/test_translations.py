"""Language sidecars that do not fit their runbook are refused by ``validate`` at the sidecar's file:line:col.

Each ``translations/<case>.ja.yaml`` is checked as the Japanese sidecar of ``translations/base.yaml`` (copied
under the case's name, as a runbook's id is its file name). Its first line says what is expected:
``# expect: LINE:COL message``. Text a sidecar does not give is a warning, not a failure: the run shows it
in English (tests/runbooks/test_shipped.py holds the shipped sidecars to having none).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app

CASES = Path(__file__).resolve().parent / "translations"
BROKEN = sorted(p.name.removesuffix(".ja.yaml") for p in CASES.glob("*.ja.yaml") if p.name != "complete.ja.yaml")


def _case(tmp_path: Path, name: str, sidecar: str) -> Path:
    runbook = tmp_path / f"{name}.yaml"
    runbook.write_text((CASES / "base.yaml").read_text(encoding="utf-8").replace("id: base", f"id: {name}"),
                       encoding="utf-8")
    (tmp_path / "i18n").mkdir(exist_ok=True)
    (tmp_path / "i18n" / f"{name}.ja.yaml").write_text(sidecar, encoding="utf-8")
    return runbook


@pytest.mark.parametrize("name", BROKEN)
def test_a_sidecar_that_does_not_fit_is_refused_where_it_is_wrong(tmp_path: Path, name: str) -> None:
    text = (CASES / f"{name}.ja.yaml").read_text(encoding="utf-8")
    expect = re.match(r"# expect: (\d+:\d+) (.+)", text)
    assert expect, f"{name}: first line must be '# expect: LINE:COL message'"
    runbook = _case(tmp_path, name, text)
    result = CliRunner().invoke(app, ["validate", str(runbook)])
    assert result.exit_code == 2, result.output
    where = f"{tmp_path / 'i18n' / f'{name}.ja.yaml'}:{expect.group(1)}: "
    lines = [line for line in result.output.splitlines() if line.startswith(where)]
    assert lines, f"expected {where}... in:\n{result.output}"
    assert expect.group(2) in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_a_complete_sidecar_validates_without_warnings(tmp_path: Path) -> None:
    runbook = _case(tmp_path, "complete", (CASES / "complete.ja.yaml").read_text(encoding="utf-8"))
    result = CliRunner().invoke(app, ["validate", str(runbook)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"ok  {runbook}"


def test_text_a_sidecar_does_not_give_is_a_warning_located_in_it(tmp_path: Path) -> None:
    runbook = _case(tmp_path, "partial", "title: ウェブサイトの移転\nsteps:\n  switch:\n    title: 切り替える\n")
    result = CliRunner().invoke(app, ["validate", str(runbook)])
    assert result.exit_code == 0, result.output
    sidecar = tmp_path / "i18n" / "partial.ja.yaml"
    warned = [line for line in result.output.splitlines() if line.startswith(f"{sidecar}:")]
    # The step that is there but lacks its gate message is named where it is; absent steps at `steps`.
    assert any(line.startswith(f"{sidecar}:3:3: ") and "gate message of step 'switch'" in line for line in warned)
    assert any("title of step 'check_zone'" in line for line in warned), warned
    assert any("item 2 of 'checklist' of step 'tell_people'" in line or "'checklist' of step 'tell_people'" in line
               for line in warned), warned
    assert all("it is shown in English" in line for line in warned)


def test_a_runbook_renamed_step_is_caught_in_every_sidecar(tmp_path: Path) -> None:
    """Another engineer renames a step in the runbook: the sidecar's entry no longer fits, and says which."""
    runbook = _case(tmp_path, "drift", (CASES / "complete.ja.yaml").read_text(encoding="utf-8"))
    runbook.write_text(runbook.read_text(encoding="utf-8").replace("id: switch", "id: switch_site"),
                       encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(runbook)])
    assert result.exit_code == 2
    assert "the runbook has no step 'switch' (did you mean 'switch_site'?)" in result.output
