"""Every broken runbook in broken/ is refused with exit 2 and the file:line:col its .expect sidecar names.

A sidecar holds the expected ``LINE:COL`` on its first line and a substring of the message on its second.
Most cases run in-process through typer's CliRunner (fast); a handful, and the generated monsters (1 MB,
10,000 levels deep), run ``breakglass validate`` as a real subprocess, so the console entry point and its
error mapping are exercised too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app

BROKEN = Path(__file__).resolve().parent / "broken"
CASES = sorted(p.stem for p in BROKEN.glob("*.yaml"))
SUBPROCESS_CASES = ["yaml-tab", "alias-bomb", "unknown-action", "sandbox-mro", "invalid-utf8",
                    "multiple-documents"]


def _expect(name: str) -> tuple[str, str]:
    loc, message = (BROKEN / f"{name}.expect").read_text(encoding="utf-8").splitlines()[:2]
    return loc.strip(), message.strip()


def _command() -> list[str]:
    script = shutil.which("breakglass")
    if script:
        return [script]
    return [sys.executable, "-c", "from engine.cli import main; main()"]


def _run(path: Path, tmp_home: Path) -> tuple[int, str, str]:
    env = {"PATH": "/usr/bin:/bin", "BREAKGLASS_HOME": str(tmp_home), "HOME": str(tmp_home)}
    proc = subprocess.run([*_command(), "validate", str(path)], capture_output=True, text=True, timeout=60,
                          env=env)
    return proc.returncode, proc.stdout, proc.stderr


def _assert_refused(code: int, out: str, err: str, path: Path, loc: str, message: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.startswith(f"{path}:")]
    assert lines, err
    assert any(line.startswith(f"{path}:{loc}: ") and message in line for line in lines), (
        f"expected {path}:{loc}: ...{message}... in:\n{err}"
    )


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 35
    missing = [n for n in CASES if not (BROKEN / f"{n}.expect").is_file()]
    assert not missing


@pytest.mark.parametrize("name", CASES)
def test_broken_runbook_in_process(name: str) -> None:
    path = BROKEN / f"{name}.yaml"
    loc, message = _expect(name)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    _assert_refused(result.exit_code, result.stdout, result.stderr, path, loc, message)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_broken_runbook_subprocess(name: str, tmp_path: Path) -> None:
    path = BROKEN / f"{name}.yaml"
    _assert_refused(*_run(path, tmp_path), path, *_expect(name))


def _generated(name: str) -> tuple[str, str, str]:
    head = f"id: {name}\ntitle: Generated\nsteps:\n"
    step = "  - id: s{i}\n    title: A step that is repeated to make the file large\n    action: log.note\n" \
           "    with: {{text: hi}}\n"
    cases = {
        "one-megabyte": (head + "".join(step.format(i=i) for i in range(10_500)), "1:1",
                         "a runbook may be at most"),
        "deep-flow": (head.replace("steps:\n", "steps: ") + "[" * 10_000 + "]" * 10_000 + "\n", "3:57",
                      "nested deeper than 50 levels"),
        "deep-unclosed": (head.replace("steps:\n", "steps: ") + "[" * 100_000 + "\n", "3:57",
                          "nested deeper than 50 levels"),
        "deep-block": (head + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)) + "  " * 201 + "v\n",
                       "53:101", "nested deeper than 50 levels"),
        "deep-compact": (head + "  " + "- " * 10_000 + "x\n", "4:101", "nested deeper than 50 levels"),
    }
    return cases[name]


# libyaml's own nesting limit (0.2.6+) may fire before ours: which one speaks, and at which column, belongs
# to the YAML library. What the product promises is a clear refusal on the line that nests too deep.
NESTING = ("nested deeper than", "nesting depth")


@pytest.mark.parametrize("name", ["one-megabyte", "deep-flow", "deep-unclosed", "deep-block", "deep-compact"])
def test_generated_monsters(name: str, tmp_path: Path) -> None:
    text, loc, message = _generated(name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    if name == "one-megabyte":
        assert path.stat().st_size > 1_000_000
    code, out, err = _run(path, tmp_path)
    if not message.startswith("nested deeper"):
        _assert_refused(code, out, err, path, loc, message)
        return
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    line = loc.split(":")[0]
    refusals = [m for m in re.finditer(rf"^{re.escape(str(path))}:(\d+):(\d+): (.*)$", err, re.M)]
    assert any(m.group(1) == line and any(w in m.group(3) for w in NESTING) for m in refusals), err



def test_three_problems_listed_at_once(tmp_path: Path) -> None:
    """Structural errors (pydantic) and semantic ones (actions, references) come out together."""
    path = tmp_path / "three-problems.yaml"
    path.write_text(
        "id: three-problems\ntitle: Three things wrong\nsevrity: high\nsteps:\n"
        "  - id: first\n    title: Unknown action\n    action: dns.lokup\n"
        "  - id: second\n    title: Reads a later step\n    action: log.note\n"
        "    with:\n      text: \"{{ steps.third.output }}\"\n"
        "  - id: third\n    title: Bad timeout\n    action: log.note\n    with: {text: hi}\n"
        "    timeout: -1\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    err = result.stderr
    assert f"{path}:3:1: unknown key 'sevrity'" in err
    assert f"{path}:7:13: unknown action 'dns.lokup'" in err
    assert f"{path}:12:13: 'steps.third' refers to a step that has not run yet" in err
    assert f"{path}:17:14: 'steps.2.timeout': input should be greater than 0" in err


def test_problems_of_many_files_in_one_run() -> None:
    names = ["unknown-action", "duplicate-step-id", "sandbox-mro"]
    result = CliRunner().invoke(app, ["validate", *(str(BROKEN / f"{n}.yaml") for n in names)])
    assert result.exit_code == 2
    for n in names:
        loc, message = _expect(n)
        assert f"{BROKEN / n}.yaml:{loc}: " in result.stderr
        assert message in result.stderr


def test_validate_json_lists_problems() -> None:
    import json

    result = CliRunner().invoke(app, ["validate", "--json", str(BROKEN / "unknown-action.yaml")])
    assert result.exit_code == 2
    [row] = json.loads(result.stdout)
    assert row["ok"] is False
    assert any("unknown action 'log.nite'" in p for p in row["problems"])
