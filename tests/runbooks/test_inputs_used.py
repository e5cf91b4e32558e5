"""An input a runbook asks for but never reads is a question the on-call engineer answers for nothing, at 3 a.m.
(the shared-host write-up's runbook asked for values no step used). Every input is read by a step, a
`defaults:` entry or another input's default."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.runbooks.operator import RUNBOOKS

OWNED = ["domain-expiry", "shared-host-takedown", "registrar-suspension"]


def unused_inputs(text: str) -> list[str]:
    book = yaml.safe_load(text)
    readers = yaml.safe_dump({"steps": book["steps"], "defaults": book.get("defaults") or {},
                              "defaults_of_inputs": [v.get("default") for v in book["inputs"].values()]})
    return [name for name in book["inputs"] if not re.search(rf"\binputs\.{re.escape(name)}\b", readers)]


@pytest.mark.parametrize("runbook", OWNED)
def test_every_input_is_read(runbook: str) -> None:
    assert unused_inputs((RUNBOOKS / f"{runbook}.yaml").read_text()) == []


def test_the_check_finds_an_unused_input() -> None:
    text = (RUNBOOKS / "domain-expiry.yaml").read_text().replace(
        "inputs:\n", "inputs:\n  forgotten:\n    type: string\n    required: false\n", 1)
    assert unused_inputs(text) == ["forgotten"]
