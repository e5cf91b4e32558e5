"""The README's quick start, run exactly as written, in a fresh copy of the repository and a fresh venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The shell commands of the README's Quick start section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_command() -> None:
    commands = readme_commands()
    assert commands[0].startswith("python3 -m venv .venv") and "breakglass drill" in commands[0]
    assert commands[1] == "bash .ci/run"
    test_command = commands[2]
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def _fresh_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_first_command_runs_a_drill_on_a_fresh_install(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the repository's files")
    repo = tmp_path / "breakglass"
    _fresh_copy(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BREAKGLASS", "VIRTUAL_ENV", "PYTHON"))}
    env["HOME"] = str(tmp_path / "home")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(["bash", "-c", readme_commands()[0]], cwd=repo, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=880)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    assert "[DRILL]" in proc.stdout
    assert "drill grade" in proc.stdout
    # The installed (not editable) package ships its runbooks, and every one of them validates.
    check = subprocess.run([str(repo / ".venv" / "bin" / "breakglass"), "validate"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("ok  ") >= 8 and "site-packages/breakglass/runbooks" in check.stdout
    runs = list((tmp_path / "home" / ".local" / "state" / "breakglass" / "runs").glob("*/audit.jsonl"))
    assert len(runs) == 1
    assert all('"mode":"drill"' in line for line in runs[0].read_text().splitlines())
