"""Start-up time of the CLI's front door against a bare interpreter.

    python bench/bench_startup.py [--runs N]

Prints the median wall time of ``python -c pass``, of the libraries ``validate`` needs imported with
nothing of breakglass (typer, pydantic with one model built, Jinja2's sandbox, PyYAML), ``breakglass
--help``, ``breakglass list``, ``breakglass validate ONE_RUNBOOK`` (a sample using core actions, plus a
dns.lookup step when that action exists, and the largest shipped runbook), ``breakglass show`` and the start
of ``breakglass run`` (a dry-run of the sample up to its first step, in a fresh home); for each, its ratio
to the bare interpreter, breakglass's own share of ``validate``, ``show`` and ``run`` (their time beyond
the libraries alone) and the target.
Every validation is a full one: nothing is cached between runs (only Python's bytecode is, as in any
installed copy; ``--source-only`` measures without it). ``validate``, ``show`` and ``run`` check the
file with the pydantic model, the one runbook contract. Targets on the project's 2-core machine: ``--help``
and ``list`` ≤ 0.3 s, ``validate``/``show``/``run`` ≤ 0.6 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = """\
id: bench-sample
title: A sample runbook for the start-up benchmark
inputs:
  domain: {type: domain, default: example.com}
steps:
  - id: note
    title: Note the start
    action: log.note
    with: {text: "checking {{ inputs.domain }}"}
  - id: look
    title: Look
    action: shell.run
    with: {argv: [echo, "{{ inputs.domain }}"], read_only: true}
    expect: result.exit_code == 0
  - id: pause
    title: Wait
    action: wait.sleep
    with: {seconds: 1}
"""
DNS_STEP = """\
  - id: resolve
    title: Resolve the name
    action: dns.lookup
    with: {name: "{{ inputs.domain }}", type: A}
"""


def _sample(directory: Path) -> Path:
    text = SAMPLE
    try:
        from actions.registry import Registry

        params = Registry().get("dns.lookup").Params.model_fields
        if {"name", "type"} <= set(params):
            text += DNS_STEP
    except Exception:  # noqa: BLE001  (no dns action yet: the sample keeps to core actions)
        pass
    path = directory / "bench-sample.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# The libraries a `validate` cannot start without, and nothing of breakglass: typer (the command line),
# pydantic with one model built (its schema machinery loads at the first model), Jinja2's sandbox, PyYAML.
# What a command takes beyond this row is breakglass's own start-up. The collector is off, as in
# breakglass's own start (engine/main.py).
LIBRARIES = """\
import gc; gc.disable()
import typer, yaml, jinja2.sandbox
from pydantic import BaseModel
class Probe(BaseModel):
    name: str = ""
Probe(name="x")
"""

FRONT, CHECKING = 0.3, 0.6  # seconds: the targets of --help and list, and of validate, show and run

# A run's start-up: one log.note, so the figure is loading, input handling and the audit log's first records.
FIRST_STEP = """\
id: bench-first
title: The start of a run
steps:
  - {id: note, title: Note, action: log.note, with: {text: started}}
"""


def _first_step(directory: Path) -> Path:
    path = directory / "bench-first.yaml"
    path.write_text(FIRST_STEP, encoding="utf-8")
    return path


# The largest shipped runbook (~40 steps, over a hundred templates): the worst case for a cold validate.
BIGGEST = Path(__file__).resolve().parent.parent / "runbooks" / "dns-failover.yaml"


def _medians(commands: list[list[str]], runs: int, env: dict[str, str]) -> list[float]:
    """Median wall time of each command over ``runs`` rounds. Each round runs every command once, in turn:
    on a shared host whose speed changes from minute to minute, all commands then see the same minutes."""
    for cmd in commands:
        subprocess.run(cmd, capture_output=True, env=env, check=False)  # warm the page cache
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for cmd, seen in zip(commands, times, strict=True):
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
            seen.append(time.perf_counter() - start)
            if proc.returncode not in (0,):
                raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return [statistics.median(seen) for seen in times]


def _package_dirs() -> list[Path]:
    import importlib.util

    return [Path(loc) for name in ("engine", "actions")
            if (spec := importlib.util.find_spec(name)) and spec.submodule_search_locations
            for loc in spec.submodule_search_locations]


def compile_package(source_only: bool) -> str:
    """Compile breakglass's bytecode where it is missing, as installing a wheel does (or remove it).

    With PYTHONDONTWRITEBYTECODE set (as on the project's shared machine) an editable checkout never gets
    .pyc files, so every command recompiled some forty engine modules: a cost no installed copy has."""
    import compileall

    for directory in _package_dirs():
        if source_only:
            for cache in directory.rglob("__pycache__"):
                shutil.rmtree(cache)
        else:
            compileall.compile_dir(directory, quiet=1)
    return "breakglass from source, no bytecode" if source_only else \
        "breakglass's bytecode compiled as an install does (--source-only: without)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--source-only", action="store_true",
                        help="remove breakglass's bytecode first (PYTHONDONTWRITEBYTECODE: recompiled every start)")
    args = parser.parse_args()
    bytecode = compile_package(args.source_only)
    script = shutil.which("breakglass") or str(Path(sys.executable).with_name("breakglass"))
    if not Path(script).exists():
        raise SystemExit("the breakglass console script is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        sample = _sample(Path(tmp))
        env = {**os.environ, "BREAKGLASS_HOME": tmp, "BREAKGLASS_PATH": ""}
        first = _first_step(Path(tmp))
        commands = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("libraries alone (no breakglass)", [sys.executable, "-c", LIBRARIES], None),
            ("breakglass --help", [script, "--help"], FRONT),
            ("breakglass list", [script, "list"], FRONT),
            (f"breakglass validate {sample.name}", [script, "validate", str(sample)], CHECKING),
            ("breakglass validate dns-failover.yaml", [script, "validate", str(BIGGEST)], CHECKING),
            ("breakglass show dns-failover", [script, "show", str(BIGGEST)], CHECKING),
            ("breakglass run (to its first step)", [script, "run", str(first), "--dry-run"], CHECKING),
        ]
        medians = _medians([cmd for _, cmd, _ in commands], args.runs, env)
        results = [(label, median, target) for (label, _, target), median in zip(commands, medians, strict=True)]
    base, libraries = results[0][1], results[1][1]
    load = os.getloadavg()[0]
    print(f"median of {args.runs} interleaved rounds on {os.cpu_count()} CPUs, load {load:.2f}; {sys.executable}; "
          f"{bytecode}")
    print(f"{'command':<40} {'median':>9} {'vs python':>10} {'own':>7} {'target':>8}")
    for label, seconds, target in results:
        verdict = "" if target is None else f"{target * 1000:>6.0f}ms{'' if seconds <= target else ' OVER'}"
        # breakglass's own share: what a command takes beyond the libraries it needs (--help and list need
        # only typer, so theirs is not shown)
        own = f"{(seconds - libraries) * 1000:>5.0f}ms" if target == CHECKING else ""
        print(f"{label:<40} {seconds * 1000:>7.0f}ms {seconds / base:>9.1f}x {own:>7} {verdict:>8}")


if __name__ == "__main__":
    main()
