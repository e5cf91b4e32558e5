"""Load time of large runbooks: parse, model, checks, for 500, 2,000 and 5,000 steps.

    python bench/bench_load.py [--sizes 500 2000 5000] [--runs 3] [--profile N]

Each runbook is built like a long generated one: every step a ``log.note`` whose text reads the previous
step's output (so every step has a template, a reference and an output field to check). Prints the best of
``--runs`` in-process loads (``engine.loader.load_text``: what ``validate``, ``show`` and ``run`` do) split
into parse, model and checks, and the time per step; a linear loader keeps the per-step figure flat.
``--profile N`` prints the top functions for N steps.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

from actions.registry import Registry
from engine import loader
from engine.yamlsource import parse


def runbook(n: int) -> str:
    lines = ["id: bench-load", "title: A long runbook", "inputs:", "  domain: {type: domain, default: example.com}",
             "steps:"]
    for i in range(n):
        text = f"{{{{ steps.s{i - 1}.output.note }}}}" if i else "{{ inputs.domain }}"
        lines.append(f"  - {{id: s{i}, title: Step {i}, action: log.note, with: {{text: \"{text} {i}\"}}}}")
    return "\n".join(lines) + "\n"


def best(call: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2_000, 5_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0)
    args = parser.parse_args()
    registry = Registry()
    loader.load_text(runbook(10), "warm.yaml", registry)  # imports, the model's validator, the action modules
    if args.profile:
        text = runbook(args.profile)
        prof = cProfile.Profile()
        prof.enable()
        loader.load_text(text, "bench-load.yaml", registry)
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
        return
    print(f"best of {args.runs} in-process loads on {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'steps':>6} {'KB':>6} {'parse':>8} {'model':>8} {'load':>8} {'per step':>9}")
    for n in args.sizes:
        text = runbook(n)
        src = parse(text, "bench-load.yaml")
        with loader._collector_paused():  # as the loader parses
            t_parse = best(lambda: parse(text, "bench-load.yaml"), args.runs)  # noqa: B023
        t_model = best(lambda: loader.Runbook.model_validate(src.data), args.runs)  # noqa: B023
        t_load = best(lambda: loader.load_text(text, "bench-load.yaml", registry), args.runs)  # noqa: B023
        print(f"{n:>6} {len(text.encode()) / 1024:>6.0f} {t_parse * 1000:>6.0f}ms {t_model * 1000:>6.0f}ms "
              f"{t_load * 1000:>6.0f}ms {t_load / n * 1e6:>7.0f}µs")


if __name__ == "__main__":
    main()
