"""Drive the ``breakglass`` CLI the way an on-call engineer does: through a pseudo-terminal answering gates,
checklists and questions, or without a terminal with ``--json`` for dry-runs and drills."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
BREAKGLASS = [sys.executable, "-c", "from engine.cli import main; main()"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: private BREAKGLASS_HOME, no proxies, no inherited TSIG secret."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("BREAKGLASS_TSIG_SECRET", None)
    env.pop("BREAKGLASS_TEAM", None)  # a team file only where a test passes one
    env.update(BREAKGLASS_HOME=str(home), NO_COLOR="1", COLUMNS="80", XDG_CONFIG_HOME=str(home / "config"), **extra)
    return env


def input_args(inputs: Mapping[str, Any], directory: Path) -> list[str]:
    """Inputs as a YAML file (lists and dicts survive), passed with --inputs."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"inputs-{len(list(directory.glob('inputs-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(dict(inputs)))
    return ["--inputs", str(path)]


@dataclass
class JsonRun:
    code: int
    events: list[dict[str, Any]]
    stderr: str

    def steps(self) -> dict[str, str]:
        """Last status of every step, from the event stream."""
        status: dict[str, str] = {}
        for e in self.events:
            kind = e.get("type", "")
            if kind.startswith("step.") and e.get("step"):
                status[e["step"]] = kind.split(".", 1)[1]
            if kind.startswith("rollback.") and kind != "rollback.begun" and e.get("step"):
                status[e["step"]] = kind
        return status

    def outputs(self, kind: str = "step.succeeded") -> dict[str, Any]:
        return {e["step"]: e.get("output") for e in self.events if e.get("type") == kind}

    @property
    def finished(self) -> dict[str, Any]:
        return next(e for e in self.events if e.get("type") == "run.finished")


def run_json(args: list[str], env: Mapping[str, str], timeout: float = 300) -> JsonRun:
    """Run the CLI without a terminal (gates refuse unless --yes/--approve) and collect --json events."""
    proc = subprocess.run(
        [*BREAKGLASS, *args, "--json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        cwd=ROOT,
    )
    events = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return JsonRun(proc.returncode, events, proc.stderr)


@dataclass
class Operator:
    """Answers a live run at a pseudo-terminal. ``gates`` maps gate ids to 'yes', 'no', 'skip' or a typed
    value (default: approve, typing what is asked); ``answers`` maps question text to typed answers;
    ``on_gate`` is called with the gate id before answering (to change the world mid-run); ``ticks`` maps
    the text of a checklist item (or its start) to 'y' or 'n' (default: every item ticked)."""

    gates: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    ticks: dict[str, str] = field(default_factory=dict)
    on_gate: Any = None
    seen_gates: list[str] = field(default_factory=list)
    transcript: str = ""

    def run(self, args: list[str], env: Mapping[str, str], timeout: float = 300) -> int:
        import pexpect

        child = pexpect.spawn(
            BREAKGLASS[0],
            [*BREAKGLASS[1:], *args],
            env=dict(env),
            cwd=str(ROOT),
            encoding="utf-8",
            timeout=timeout,
            dimensions=(50, 80),
        )
        questions = list(self.answers)
        patterns = [
            pexpect.EOF,
            r"GATE (\S+): ",
            r"Type '([^'\r\n]+)' to approve \(anything else refuses\): ",
            r"(?:Approve\? \[yes / no = abort / skip\]|Send\? \[yes / no = skip it / abort\]): ",
            r"Skip this step and go on, or abort the run\? \[skip / abort\]: ",
            r" — done\? \[y/n\]: ",
            r"Note for the report \(Enter for none\): ",
            *[re.escape(f"  {q}: ") for q in questions],
        ]
        gate = ""
        try:
            while True:
                index = child.expect(patterns)
                if index == 0:
                    break
                if index == 1:
                    gate = child.match.group(1)
                    self.seen_gates.append(gate)
                    if self.on_gate is not None:
                        self.on_gate(gate)
                elif index == 2:
                    wanted = self.gates.get(gate, "yes")
                    child.sendline(child.match.group(1) if wanted == "yes" else wanted)
                elif index == 3:
                    child.sendline(self.gates.get(gate, "yes"))
                elif index == 4:
                    child.sendline("skip" if self.gates.get(gate) == "skip" else "abort")
                elif index == 5:
                    asked = " ".join(str(child.before or "").split())[-200:]  # the item, unwrapped
                    child.sendline(next((a for item, a in self.ticks.items() if item in asked), "y"))
                elif index == 6:
                    child.sendline("")
                else:
                    answer = self.answers[questions[index - 7]]
                    child.sendline(answer() if callable(answer) else answer)
        finally:
            self.transcript = (child.before or "") if isinstance(child.before, str) else ""
            child.close()
        return int(child.exitstatus if child.exitstatus is not None else -1)


def runs_of(env: Mapping[str, str]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*BREAKGLASS, "runs", "--json"], capture_output=True, text=True, env=dict(env), cwd=ROOT, timeout=60
    )
    return list(json.loads(proc.stdout or "[]"))


def audit_records(env: Mapping[str, str], run_id: str = "last") -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*BREAKGLASS, "audit", "show", run_id, "--json"],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]  # JSON Lines, as run --json


def step_status(records: list[dict[str, Any]]) -> dict[str, str]:
    """Last step-level record type per step (succeeded, failed, skipped, planned, rollback.succeeded...)."""
    status: dict[str, str] = {}
    for r in records:
        kind = r.get("type", "")
        sid = r.get("step")
        if not sid:
            continue
        if kind.startswith("step.") and kind not in ("step.started", "step.retried", "step.applying"):
            status[sid] = kind.split(".", 1)[1]
        elif kind in ("rollback.succeeded", "rollback.failed", "rollback.skipped"):
            status[sid] = kind
    return status
