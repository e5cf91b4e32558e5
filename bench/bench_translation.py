"""What a language sidecar costs: loading each shipped runbook in English and in Japanese, and rendering one
drill's report in both languages.

    python bench/bench_translation.py [--runs N]

Prints, per shipped runbook, the median time of ``load_file`` (parse, model, checks) in English and with its
Japanese sidecar (parsed with positions and checked against the runbook on every load, as ``run`` and
``show`` do), and the difference; then the median time to render one drill's report as Markdown and HTML in
each language. Nothing is cached between loads except the action registry.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_ms(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    os.environ["BREAKGLASS_HOME"] = tempfile.mkdtemp(prefix="bg-bench-")

    from actions.registry import Registry
    from engine import drill, i18n
    from engine.console import JsonReporter
    from engine.gates import Terminal
    from engine.loader import load_file
    from engine.locate import SHIPPED_DIR
    from engine.report import from_store
    from engine.report_render import render
    from engine.session import RunOptions
    from engine.store import FileStore

    registry = Registry()
    print(f"load_file, median of {runs} (ms)          en      ja    +ja")
    for path in sorted(SHIPPED_DIR.glob("*.yaml")):
        load_file(path, registry, "ja")  # imports and action classes, once
        en = median_ms(lambda: load_file(path, registry, "en"), runs)
        ja = median_ms(lambda: load_file(path, registry, "ja"), runs)
        print(f"  {path.stem:<34} {en:7.1f} {ja:7.1f} {ja - en:+6.1f}")

    class NoTty(io.StringIO):
        def isatty(self) -> bool:
            return False

    i18n.use("ja")
    loaded = load_file(SHIPPED_DIR / "registrar-suspension.yaml", registry, "ja")
    scenario = drill.load_scenario(drill.find_scenario(loaded.path, loaded.runbook.id, None))
    opts = RunOptions(operator="bench", yes=True, terminal=Terminal(stdin=NoTty()))
    run_id = drill.run_drill(loaded, scenario, {}, opts, JsonReporter(io.StringIO())).run_id
    report = from_store(FileStore(), run_id)
    from dataclasses import replace

    print(f"report of a {len(report.events)}-record drill, median of {runs} (ms)")
    for fmt in ("markdown", "html"):
        for lang in ("en", "ja"):
            one = replace(report, lang=lang)
            render(one, fmt)
            print(f"  {fmt:<8} {lang}  {median_ms(lambda: render(one, fmt), runs):7.1f}")


if __name__ == "__main__":
    main()
