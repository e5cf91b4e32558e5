"""The packages type-check under mypy --strict with the pydantic plugin, read from the checkout as it is.

`mypy` run with no arguments at the repository's root is what a contributor runs ([tool.mypy] names the
packages): nothing is laid out, linked or mapped for it, so what passes here passes in their editor too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mypy_strict_is_clean_on_the_checkout(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extras: pip install -e '.[test]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--cache-dir", str(tmp_path / ".mypy_cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout


def test_the_checkout_imports_without_the_install() -> None:
    """What import-graph tools and editors do: put the repository's root on the path and follow imports.
    No finder or mapping of the editable install is involved (-S: no site-packages' .pth hooks)."""
    # On PYTHONPATH a directory's .pth files are not read, so the site-packages only lend the dependencies.
    site = [p for p in sys.path if p.endswith("site-packages")]
    code = ("import sys; import breakglass, engine.cli, engine.store.file, actions.dns, actions.clients.dns; "
            "print(breakglass.__file__); print(engine.cli.__file__); print(actions.dns.__file__)")
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join([str(ROOT), *site])},
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in proc.stdout.split():
        assert Path(line).resolve().is_relative_to(ROOT), line
