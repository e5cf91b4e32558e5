"""registrar-suspension says when our own NS/MX hostnames live inside the held domain (every customer breaks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runbooks.operator import cli_env, run_json


@pytest.mark.parametrize(("scenario", "expected"), [
    ("our-names-inside-the-held-domain",
     "OUR HOSTNAMES INSIDE example.com: ns1.example.com, ns2.example.com, mx1.example.com."),
    ("client-hold", "None of our nameservers or mail hosts is inside example.com"),
])
def test_the_shared_names_check(scenario: str, expected: str, bg_home: Path) -> None:
    result = run_json(["drill", "registrar-suspension", "--scenario", scenario, "--yes"], cli_env(bg_home),
                      timeout=120)
    [note] = [e for e in result.events if e.get("type") == "step.succeeded" and e.get("step") == "shared_names"]
    assert expected in note["output"]["note"]
