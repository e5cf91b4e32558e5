"""Shared pytest configuration. The real servers' fixtures live in tests/lab/ and are registered here as plugins,
so a test asks for ``bind_factory`` or ``sshd`` by name without importing it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.lab.bind", "tests.lab.https", "tests.lab.postgres", "tests.lab.rdap", "tests.lab.sshd", "tests.lab.whois",
]

ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"

# Tests run `breakglass` as a user would; make sure it is the one installed beside this interpreter
# (CI installs into .venv without putting it on PATH).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
BREAKGLASS = str(Path(sys.executable).parent / "breakglass")


@pytest.fixture
def shared_fixtures() -> Path:
    """The real-world data in ../shared/fixtures; tests that need it skip when it is absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is absent")
    return SHARED_FIXTURES


@pytest.fixture
def bg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private BREAKGLASS_HOME so runs and audit logs never leak between tests; no team file unless a test
    writes one (the developer's own ~/.config/breakglass/team.yaml must not change what a test sees)."""
    home = tmp_path / "bghome"
    monkeypatch.setenv("BREAKGLASS_HOME", str(home))
    monkeypatch.delenv("BREAKGLASS_TEAM", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return home
