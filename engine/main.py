"""The ``breakglass`` console script: the command line's start-up, without the garbage collector.

Start-up (importing pydantic, Jinja2, typer and the engine, building the runbook model, checking a
runbook) allocates a few hundred thousand objects that nearly all live until the process ends; the
collector's passes over them during start-up found nothing to free and cost about a tenth of ``validate``
(bench/bench_startup.py). A short command ends before the collector would come back; one that runs for
hours (``run``, ``watch``, ``serve``) gets it back a second in, with what start-up built frozen out of its
way. This module imports nothing heavy itself, so that the collector is off before anything is built.
"""

from __future__ import annotations

import gc
import threading

START_UP = 1.0  # seconds without the collector: longer than any command's start-up on a slow machine


def main() -> None:
    gc.disable()
    back = threading.Timer(START_UP, _collector_back)
    back.daemon = True  # never keeps a finished command waiting
    back.start()
    from engine.cli import main as cli

    cli()


def _collector_back() -> None:
    gc.freeze()  # what start-up built lives to the end: later collections need not walk it again
    gc.enable()
