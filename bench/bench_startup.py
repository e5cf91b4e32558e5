"""Start-up time of the CLI's front door against a bare interpreter.

    python bench/bench_startup.py [--runs N]

Prints the median wall time of ``python -c pass``, ``breakglass --help``, ``breakglass list``,
``breakglass validate ONE_RUNBOOK`` (a sample using core actions, plus a dns.lookup step when that action
exists, and the largest shipped runbook) and ``breakglass show``, and each one's ratio to the bare
interpreter. Every validation is a full one: nothing is cached between runs. ``show`` builds the pydantic
model, so it shows what validate saves by not importing it. Target: list and validate well under 0.3 s.
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
        from breakglass.actions.registry import Registry

        params = Registry().get("dns.lookup").Params.model_fields
        if {"name", "type"} <= set(params):
            text += DNS_STEP
    except Exception:  # noqa: BLE001  (no dns action yet: the sample keeps to core actions)
        pass
    path = directory / "bench-sample.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# The largest shipped runbook (~40 steps, over a hundred templates): the worst case for a cold validate.
BIGGEST = Path(__file__).resolve().parent.parent / "runbooks" / "dns-failover.yaml"


def _median(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    subprocess.run(cmd, capture_output=True, env=env, check=False)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0,):
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("breakglass") or str(Path(sys.executable).with_name("breakglass"))
    if not Path(script).exists():
        raise SystemExit("the breakglass console script is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        sample = _sample(Path(tmp))
        env = {**os.environ, "BREAKGLASS_HOME": tmp, "BREAKGLASS_PATH": ""}
        commands = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("breakglass --help", [script, "--help"]),
            ("breakglass list", [script, "list"]),
            (f"breakglass validate {sample.name}", [script, "validate", str(sample)]),
            ("breakglass validate dns-failover.yaml", [script, "validate", str(BIGGEST)]),
            ("breakglass show dns-failover (model)", [script, "show", str(BIGGEST)]),
        ]
        results = [(label, _median(cmd, args.runs, env)) for label, cmd in commands]
    base = results[0][1]
    load = os.getloadavg()[0]
    print(f"median of {args.runs} runs on {os.cpu_count()} CPUs, load {load:.2f}; {sys.executable}")
    print(f"{'command':<40} {'median':>9} {'vs python':>10}")
    for label, seconds in results:
        print(f"{label:<40} {seconds * 1000:>7.0f}ms {seconds / base:>9.1f}x")


if __name__ == "__main__":
    main()
