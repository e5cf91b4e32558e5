"""Drill scenarios: the files that describe a simulated world and the path a drill is expected to take.

Scenario files live next to the runbook: ``scenarios/<runbook id>/<NN-name>.yaml``; the first in file-name
order is the default. The format is documented in engine/drill.py.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import Problem, RunbookError
from engine.events import OUTCOMES, StepStatus

ANSWER_KEYS = frozenset({"output", "outputs", "ok", "fail", "message"})
STEP_KEYS = ANSWER_KEYS | {"duration", "plan", "effects", "rollback", "approvals"}
ANSWERS = ("approve", "deny", "timeout")  # what a scripted approver at a four-eyes gate does
TOP_KEYS = frozenset({"title", "description", "inputs", "steps", "expect"})
STEP_STATUSES = frozenset(StepStatus)  # what a scenario may expect of a step: any status a step can reach
_ORDER_PREFIX = re.compile(r"^\d+-")

# --- scenarios -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """The graded path: step statuses, gate decisions and the run's outcome."""

    steps: dict[str, str] = field(default_factory=dict)
    gates: dict[str, str] = field(default_factory=dict)
    outcome: str | None = None
    # How many times the run reminded the operator that a customer update was due (`comms.due`).
    reminders: int | None = None

    @property
    def total(self) -> int:
        return len(self.steps) + len(self.gates) + (1 if self.outcome else 0) + (self.reminders is not None)


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    sha256: str
    title: str
    description: str
    inputs: dict[str, Any]
    steps: dict[str, dict[str, Any]]
    expect: Expectation


def scenario_name(path: Path) -> str:
    """``01-client-hold.yaml`` → ``client-hold``."""
    return _ORDER_PREFIX.sub("", path.stem)


def scenario_dir(runbook_path: str, runbook_id: str) -> Path:
    return Path(runbook_path).resolve().parent / "scenarios" / runbook_id


def scenario_files(runbook_path: str, runbook_id: str) -> list[Path]:
    folder = scenario_dir(runbook_path, runbook_id)
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())


def find_scenario(runbook_path: str, runbook_id: str, name: str | None) -> Path:
    """A scenario by name, file stem or path; with no name, the runbook's first scenario."""
    if name and (name.endswith((".yaml", ".yml")) or "/" in name):
        if Path(name).is_file():
            return Path(name)
        raise RunbookError([Problem(name, 1, 1, "no such scenario file")])
    files = scenario_files(runbook_path, runbook_id)
    if not files:
        where = scenario_dir(runbook_path, runbook_id)
        raise RunbookError(
            [
                Problem(
                    runbook_path,
                    1,
                    1,
                    f"runbook '{runbook_id}' has no drill scenarios "
                    f"(looked in {where}); write one, or pass --scenario FILE",
                )
            ]
        )
    if name is None:
        return files[0]
    for f in files:
        if name in (scenario_name(f), f.stem):
            return f
    known = ", ".join(scenario_name(f) for f in files)
    raise RunbookError(
        [Problem(runbook_path, 1, 1, f"runbook '{runbook_id}' has no scenario '{name}'; it has: {known}")]
    )


@dataclass(frozen=True)
class Heading:
    """A scenario's title and description, as ``load_scenario`` gives them."""

    title: str
    description: str


HEADING_KEYS = frozenset({"title", "description"})


def heading(path: Path) -> Heading | None:
    """The title and description of a scenario file, read from its top level without checking the rest;
    None when it is not a readable mapping. ``validate`` compares translations against these: loading every
    scenario in full cost it a tenth of its time, and the drill that uses a scenario checks it anyway."""
    from engine.loader import read_text
    from engine.yamlsource import SourceError, load_header

    try:
        data = load_header(read_text(path), str(path), HEADING_KEYS)
    except (SourceError, RunbookError):
        return None
    if data is None:
        return None
    return Heading(str(data.get("title", scenario_name(path))), str(data.get("description", "")))


def load_scenario(path: Path) -> Scenario:
    """Parse and check a scenario file; every problem is reported as file:line:col."""
    from engine.loader import read_text
    from engine.yamlsource import SourceError, parse

    text = read_text(path)
    try:
        src = parse(text, str(path))
    except SourceError as exc:
        raise RunbookError(exc.problems) from None
    data = src.data if isinstance(src.data, dict) else None
    if data is None:
        raise RunbookError([src.problem((), "a scenario is a mapping with title, steps and expect")])
    problems = _check(data, src)
    if problems:
        raise RunbookError(problems)
    expect = data.get("expect") or {}
    return Scenario(
        name=scenario_name(path),
        path=str(path.resolve()),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        title=str(data.get("title", scenario_name(path))),
        description=str(data.get("description", "")),
        inputs=dict(data.get("inputs") or {}),
        steps={str(k): dict(v or {}) for k, v in (data.get("steps") or {}).items()},
        expect=Expectation(
            dict(expect.get("steps") or {}), dict(expect.get("gates") or {}), expect.get("outcome"),
            expect.get("reminders"),
        ),
    )


def _check(data: dict[str, Any], src: Any) -> list[Problem]:
    problems = [
        src.problem(
            (k,), f"unknown key '{k}' in a scenario; allowed: {', '.join(sorted(TOP_KEYS))}", key=True
        )
        for k in data
        if k not in TOP_KEYS
    ]
    for key in ("inputs", "steps", "expect"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            problems.append(src.problem((key,), f"'{key}' must be a mapping"))
    steps: dict[str, Any] = data["steps"] if isinstance(data.get("steps"), dict) else {}
    for sid, spec in steps.items():
        if spec is not None and not isinstance(spec, dict):
            problems.append(src.problem(("steps", sid), f"step '{sid}' must be a mapping"))
            continue
        for k in spec or {}:
            if k not in STEP_KEYS:
                problems.append(
                    src.problem(
                        ("steps", sid, k),
                        f"unknown key '{k}' for step '{sid}'; allowed: {', '.join(sorted(STEP_KEYS))}",
                        key=True,
                    )
                )
        problems += _check_answers((spec or {}).get("approvals"), ("steps", sid, "approvals"), src)
        rollback = (spec or {}).get("rollback")
        if isinstance(rollback, dict):
            problems += _check_answers(rollback.get("approvals"), ("steps", sid, "rollback", "approvals"), src)
        outputs = (spec or {}).get("outputs")
        if outputs is not None and (not isinstance(outputs, list) or not outputs):
            problems.append(src.problem(("steps", sid, "outputs"), "'outputs' must be a non-empty list"))
    expect: dict[str, Any] = data["expect"] if isinstance(data.get("expect"), dict) else {}
    for sid, status in (expect.get("steps") or {}).items():
        if not isinstance(status, str) or status not in STEP_STATUSES:
            problems.append(src.problem(("expect", "steps", sid), f"unknown step status '{status}'"))
    for gid, decision in (expect.get("gates") or {}).items():
        if decision not in ("approved", "denied"):
            problems.append(
                src.problem(("expect", "gates", gid), "a gate is expected 'approved' or 'denied'")
            )
    reminders = expect.get("reminders")
    if reminders is not None and (isinstance(reminders, bool) or not isinstance(reminders, int) or reminders < 0):
        problems.append(src.problem(("expect", "reminders"), "reminders is a count of customer-update reminders: "
                                                            "0, 1, 2 ..."))
    wanted = expect.get("outcome")
    if wanted is not None and (not isinstance(wanted, str) or wanted not in OUTCOMES):
        problems.append(src.problem(("expect", "outcome"), f"unknown outcome '{expect['outcome']}'"))
    return problems


def _check_answers(answers: Any, path: tuple[str, ...], src: Any) -> list[Problem]:
    """A four-eyes gate's scripted approvers: who answers, and how (approve, deny with a reason, or timeout)."""
    if answers is None:
        return []
    if not isinstance(answers, list):
        return [src.problem(path, "'approvals' is a list of {by: NAME, answer: approve|deny|timeout}")]
    problems = []
    for i, item in enumerate(answers):
        at = (*path, i)
        if not isinstance(item, dict):
            problems.append(src.problem(at, "each approval is {by: NAME, answer: approve|deny|timeout}"))
            continue
        unknown = sorted(set(item) - {"by", "answer", "reason"})
        if unknown:
            problems.append(src.problem((*at, unknown[0]), f"unknown key '{unknown[0]}' in a scripted approval; "
                                        "allowed: answer, by, reason", key=True))
        answer = item.get("answer")
        if answer not in ANSWERS:
            problems.append(src.problem((*at, "answer") if "answer" in item else at,
                                        f"answer must be one of {', '.join(ANSWERS)}, not {answer!r}"))
        elif answer != "timeout" and not isinstance(item.get("by"), str):
            problems.append(src.problem(at, f"a scripted '{answer}' needs `by`: the approver's name"))
    return problems
