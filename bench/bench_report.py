"""Report rendering on a 10,000-event audit log: markdown, HTML and JSON, each should take under a second.

The log is real: a runbook of 2,500 gated ``log.note`` steps, run in-process through ``engine.session.start``
(step.started, gate.asked, gate.approved, step.succeeded per step, plus run.started, run.finished).

    python bench/bench_report.py [--steps 2500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path


def _runbook(steps: int) -> str:
    lines = ["id: bench-report", "title: Report benchmark", "steps:"]
    for i in range(steps):
        lines += [
            f"  - id: s{i}",
            f"    title: Note {i}",
            "    action: log.note",
            "    confirm: true",
            f"    with: {{text: 'finding {i} <b>|</b>'}}",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bg-bench-report-", dir=base) as tmp:
        os.environ["BREAKGLASS_HOME"] = tmp
        from engine.console import JsonReporter
        from engine.gates import Terminal
        from engine.loader import load_file
        from engine.report import from_store
        from engine.report_render import render
        from engine.session import RunOptions, start
        from engine.store import FileStore

        path = Path(tmp) / "bench-report.yaml"
        path.write_text(_runbook(args.steps))
        began = time.perf_counter()
        loaded = load_file(path)
        opts = RunOptions(
            operator="bench",
            approvals=frozenset(f"s{i}" for i in range(args.steps)),
            terminal=Terminal(stdin=io.StringIO()),
        )
        outcome = start(loaded, {}, opts, JsonReporter(io.StringIO()))
        events = len(FileStore().log_path(outcome.run_id).read_text().splitlines())
        print(
            f"generated a real log: {events} events in {time.perf_counter() - began:.2f} s ({outcome.status})"
        )

        worst = 0.0
        timings: dict[str, float] = {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = from_store(FileStore(), outcome.run_id)
            built = time.perf_counter() - t0
            timings["read+verify+build"] = min(timings.get("read+verify+build", 1e9), built)
            for fmt in ("markdown", "html", "json"):
                t1 = time.perf_counter()
                text = render(report, fmt)
                took = time.perf_counter() - t1
                timings[fmt] = min(timings.get(fmt, 1e9), took)
                timings[f"{fmt} bytes"] = len(text)
        for fmt in ("markdown", "html", "json"):
            total = timings["read+verify+build"] + timings[fmt]
            worst = max(worst, total)
            print(
                f"{fmt:<9} build {timings['read+verify+build']:.3f} s + render {timings[fmt]:.3f} s = "
                f"{total:.3f} s  ({timings[f'{fmt} bytes'] / 1e6:.1f} MB)"
            )
        print(f"{'PASS' if worst < 1.0 else 'SLOW'}: worst {worst:.3f} s for {events} events (target < 1 s)")
        return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
