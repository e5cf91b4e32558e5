"""engine/ and actions/ type-check under mypy --strict with the pydantic plugin ([tool.mypy] in pyproject).

mypy reads the packages as they install (breakglass.engine, breakglass.actions), so the test lays out that
namespace with symlinks to the top-level folders and checks it from there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extras: pip install -e '.[test]'")
    package = tmp_path / "breakglass"
    package.mkdir()
    for folder in ("engine", "actions"):
        (package / folder).symlink_to(ROOT / folder)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "breakglass.engine", "-p", "breakglass.actions"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout
