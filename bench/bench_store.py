"""The run stores side by side: engine overhead per trivial step, `watch` latency, and 50 runs at once.

    python bench/bench_store.py [--steps 300] [--repeat 3] [--records 100] [--runs 50] [--run-steps 20]

Starts its own PostgreSQL server on 127.0.0.1 (tests/lab/postgres.py, fsync ON so synchronous commit means
what it means on a real server) and a file store in a temporary BREAKGLASS_HOME.

- per step: a runbook of trivial steps (``log.note``) through ``engine.session.start``; the median gap between
  consecutive ``step.succeeded`` records (target ≤ 2 ms on PostgreSQL over loopback, synchronous commit on),
  after one warm-up run per store, as the median of ``--repeat`` runs, the two stores' runs interleaved;
- watch: ``breakglass watch RUN --json`` in another process while this one appends records; from the moment
  ``append`` returns (committed) to the line read from the watcher (target ≤ 100 ms median);
- concurrency: ``--runs`` forked processes each drive a ``--run-steps``-step run against one database; wall
  time, records per second, errors, and whether every chain verifies.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.lab, when run from anywhere

TARGET_STEP_MS = 2.0
TARGET_WATCH_MS = 100.0


def runbook(n: int, name: str) -> str:
    lines = [f"id: {name}", "title: store overhead, trivial steps", "steps:"]
    for i in range(n):
        lines += [f"  - id: s{i}", f"    title: note {i}", "    action: log.note", f"    with: {{text: note {i}}}"]
    return "\n".join(lines) + "\n"


def step_gaps_ms(records: list[Any]) -> list[float]:
    from engine.audit import elapsed

    done = [r.ts for r in records if r.type == "step.succeeded"]
    return [elapsed(a, b) * 1000 for a, b in zip(done, done[1:], strict=False)]


def per_step(store: Any, steps: int, tmp: Path) -> float:
    from engine import session
    from engine.console import NullReporter
    from engine.loader import load_text
    from engine.session import RunOptions

    loaded = load_text(runbook(steps, "bench-store"), str(tmp / "bench-store.yaml"))
    outcome = session.start(loaded, {}, RunOptions(operator="bench"), NullReporter(), store=store)
    assert outcome.status == "succeeded", outcome
    return statistics.median(step_gaps_ms(store.records(outcome.run_id)))


def watch_latency(store: Any, env: dict[str, str], records: int) -> list[float]:
    run_id = store.create("bench-watch")
    with store.lock(run_id):
        log = store.writer(run_id, {"run": run_id, "mode": "live"})
        log.append("run.started", {"runbook": {"id": "bench-watch"}, "operator": "bench"})
        bg = str(Path(sys.executable).parent / "breakglass")
        watcher = subprocess.Popen([bg, "watch", run_id, "--json"], stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, **env})
        assert watcher.stdout is not None
        watcher.stdout.readline()  # run.started: the watcher is up
        out = []
        for i in range(records):
            time.sleep(0.02)
            log.append("note", {"text": f"n{i}"})
            committed = time.monotonic()
            ready, _, _ = select.select([watcher.stdout], [], [], 10)
            assert ready, "the watcher printed nothing for 10 s"
            watcher.stdout.readline()
            out.append((time.monotonic() - committed) * 1000)
        log.append("run.finished", {"status": "succeeded"})
        watcher.wait(30)
        log.close()
    return out


def _drive(url: str, steps: int, tmp: str, results: Any) -> None:
    from engine import session
    from engine.console import NullReporter
    from engine.loader import load_text
    from engine.session import RunOptions
    from engine.store import open_store

    try:
        loaded = load_text(runbook(steps, "bench-many"), os.path.join(tmp, "bench-many.yaml"))
        outcome = session.start(loaded, {}, RunOptions(operator=f"op{os.getpid()}"), NullReporter(),
                                store=open_store(url))
        results.put((outcome.run_id, outcome.status))
    except BaseException as exc:  # reported, counted as an error
        results.put(("", f"error {type(exc).__name__}: {exc}"))


def many_runs(url: str, runs: int, steps: int, tmp: Path) -> dict[str, Any]:
    from engine import loader, session  # noqa: F401  (imported once, before forking)
    from engine.store import open_store

    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    procs = [fork.Process(target=_drive, args=(url, steps, str(tmp), results)) for _ in range(runs)]
    begin = time.monotonic()
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=600) for _ in procs]
    wall = time.monotonic() - begin
    for p in procs:
        p.join(60)
    store = open_store(url)
    errors = [status for _, status in outcomes if status != "succeeded"]
    ids = [run_id for run_id, status in outcomes if status == "succeeded"]
    verified = sum(store.verify(run_id).ok for run_id in ids)
    total = sum(len(store.records(run_id)) for run_id in ids)
    return {"runs": runs, "steps": steps, "wall_s": round(wall, 2), "records": total,
            "records_per_s": round(total / wall), "errors": errors, "verified": verified}


def _without_fsync(steps: int, repeat: int, tmp: Path) -> float:
    from engine.store import open_store
    from tests.lab.postgres import remove, start_server

    server = start_server(fsync=False)
    try:
        with server.admin() as conn:  # type: ignore[attr-defined]
            conn.execute("CREATE DATABASE bench")
        open_store(server.url("bench"), check_schema=False).migrate()  # type: ignore[attr-defined]
        store = open_store(server.url("bench"))
        per_step(store, steps, tmp)  # warm-up, as for the figure it is set beside
        return statistics.median(per_step(store, steps, tmp) for _ in range(repeat))
    finally:
        remove(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per store, after one warm-up run")
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--run-steps", type=int, default=20)
    args = parser.parse_args()

    from engine.store import FileStore, open_store
    from tests.lab.postgres import remove, start_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    server = start_server(fsync=True)
    try:
        with server.admin() as conn:  # type: ignore[attr-defined]
            conn.execute("CREATE DATABASE bench")
        url = server.url("bench")
        open_store(url, check_schema=False).migrate()  # type: ignore[attr-defined]
        files = FileStore(tmp / "home")
        figures: dict[str, Any] = {}
        stores = (("file", files), ("postgres", open_store(url)))
        for _, store in stores:  # warm-up: a fresh server's first run pays for its cold caches
            per_step(store, args.steps, tmp)
        runs: dict[str, list[float]] = {name: [] for name, _ in stores}
        for _ in range(args.repeat):  # interleaved, so that both stores see the same moments of a shared host
            for name, store in stores:
                runs[name].append(per_step(store, args.steps, tmp))
        for name, values in runs.items():
            figures[f"{name}_step_ms"] = round(statistics.median(values), 3)
            figures[f"{name}_step_ms_runs"] = [round(v, 3) for v in values]
        print(f"per trivial step (median of {args.repeat} runs of {args.steps} steps, each run's median gap): "
              f"file {figures['file_step_ms']} ms {figures['file_step_ms_runs']}, postgres "
              f"{figures['postgres_step_ms']} ms {figures['postgres_step_ms_runs']} (target ≤ {TARGET_STEP_MS} ms, "
              "synchronous commit on)")
        # The same on a server whose fsync is off: what is left is breakglass and the round trip, not the disk.
        figures["postgres_step_ms_server_fsync_off"] = round(_without_fsync(args.steps, args.repeat, tmp), 3)
        print(f"  postgres, server fsync off (engine + loopback round trips only): "
              f"{figures['postgres_step_ms_server_fsync_off']} ms")
        for name, store, env in (("file", files, {"BREAKGLASS_HOME": str(tmp / "home"), "BREAKGLASS_STORE": ""}),
                                 ("postgres", open_store(url), {"BREAKGLASS_STORE": url})):
            lat = watch_latency(store, env, args.records)
            figures[f"{name}_watch_ms"] = {"median": round(statistics.median(lat), 1),
                                           "p95": round(sorted(lat)[int(len(lat) * 0.95) - 1], 1),
                                           "max": round(max(lat), 1)}
            print(f"watch latency, {name} store: median {figures[f'{name}_watch_ms']['median']} ms, p95 "
                  f"{figures[f'{name}_watch_ms']['p95']} ms, max {figures[f'{name}_watch_ms']['max']} ms "
                  f"(target ≤ {TARGET_WATCH_MS} ms median)")
        figures["many"] = many_runs(url, args.runs, args.run_steps, tmp)
        m = figures["many"]
        print(f"{m['runs']} runs x {m['steps']} steps at once on one database: {m['wall_s']} s, {m['records']} "
              f"records ({m['records_per_s']}/s), {len(m['errors'])} errors, {m['verified']} chains verify")
        print(json.dumps(figures))
    finally:
        remove(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
