"""What a called runbook costs: per-step overhead of steps run through ``runbook.run`` against the same steps
at the top of a run, and the cost of the call step itself.

    python bench/bench_calls.py [--steps 500] [--calls 50] [--repeat 3]

In-process through ``engine.session.start``, audit fsync included, like bench_engine.py. Per-step figures are
medians of the gaps between consecutive ``step.succeeded`` records. The three runbooks:
  flat    N trivial steps (log.note / assert) at the top;
  called  one call whose runbook holds the same N steps (templates see the called runbook's own steps);
  many    M calls of a 2-step runbook: the whole cost of a call (frame, inputs, outputs, its records).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import run_in_process, trivial_runbook  # noqa: E402


def called_runbook(n: int) -> tuple[str, str]:
    child = trivial_runbook(n).replace("id: bench-trivial", "id: bench-child", 1).replace(
        "title: engine overhead, trivial steps", "title: the called steps\noutputs:\n  last: \"{{ steps.s"
        + str(n - 1) + ".status }}\"", 1)
    parent = ("id: bench-called\ntitle: one call\nsteps:\n  - id: call\n    title: call them\n"
              "    action: runbook.run\n    with: {runbook: bench-child}\n")
    return parent, child


def many_calls(m: int) -> tuple[str, str]:
    child = ("id: bench-small\ntitle: two steps\ninputs:\n  n: {type: integer}\noutputs:\n  n: \"{{ inputs.n }}\"\n"
             "steps:\n  - id: a\n    title: note\n    action: log.note\n    with: {text: \"call {{ inputs.n }}\"}\n"
             "  - id: b\n    title: check\n    action: assert\n    with: {that: \"{{ steps.a.ok }}\"}\n")
    lines = ["id: bench-many", "title: many calls", "steps:"]
    for i in range(m):
        lines += [f"  - id: c{i}", f"    title: call {i}", "    action: runbook.run",
                  f"    with: {{runbook: bench-small, inputs: {{n: {i}}}}}"]
    return "\n".join(lines) + "\n", child


def best(path: Path, home: Path, repeat: int) -> float:
    return min(statistics.median(run_in_process(path, home, False)[0]) for _ in range(repeat))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bg-bench-calls-") as tmp:
        root, home = Path(tmp), Path(tmp) / "home"
        (root / "bench-trivial.yaml").write_text(trivial_runbook(args.steps))
        parent, child = called_runbook(args.steps)
        (root / "bench-called.yaml").write_text(parent)
        (root / "bench-child.yaml").write_text(child)
        parent, child = many_calls(args.calls)
        (root / "bench-many.yaml").write_text(parent)
        (root / "bench-small.yaml").write_text(child)
        flat = best(root / "bench-trivial.yaml", home, args.repeat)
        inside = best(root / "bench-called.yaml", home, args.repeat)
        # Gaps between step.succeeded records of `many`: a.b.(call) repeating, so 3 outcomes per call.
        per_call = best(root / "bench-many.yaml", home, args.repeat) * 3
    print(f"trivial step at the top ({args.steps} steps)          median {flat:6.3f} ms/step")
    print(f"same step inside a called runbook ({args.steps} steps) median {inside:6.3f} ms/step "
          f"({inside - flat:+.3f} ms)")
    print(f"one call of a 2-step runbook, all in ({args.calls} calls)   ~{per_call:6.3f} ms/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
