"""Four-eyes gates: time from another person's approval to the driving process going on, per store.

    python bench/bench_approve.py [--rounds 25] [--cli-rounds 5]

A driver (``breakglass run`` in its own process, as an operator would start it) works through ``--rounds``
steps, each behind a gate that needs one other person's signed approval. This process is that person: it
waits until the gate is open, signs with a key made by ssh-keygen and appends the approval
(``engine.approvals.answer``: the same code ``breakglass approve`` runs). The figure per round is, from the
log itself, the approval record's time to the driver's ``step.applying``: the driver hearing of it, checking
the signature with ``ssh-keygen -Y verify``, recording its judgement and the gate's decision.

- PostgreSQL (its own server on 127.0.0.1, fsync on): the driver wakes on LISTEN/NOTIFY (target ≤ 200 ms
  median);
- the file store (a temporary BREAKGLASS_HOME): the driver follows the log file (target ≤ 1 s median);
- ``--cli-rounds`` more rounds approve with the ``breakglass approve`` command instead, timed from the
  command's start: what a person waits for, Python's start-up and the signature included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.lab, when run from anywhere

TARGET_MS = {"postgres": 200.0, "file": 1000.0}
EPOCH = "1970-01-01T00:00:00Z"
BG = str(Path(sys.executable).parent / "breakglass")


def runbook(rounds: int) -> str:
    lines = ["id: bench-approve", "title: gates that need another person", "steps:"]
    for i in range(rounds):
        lines += [f"  - id: s{i}", f"    title: change {i}", "    action: shell.run", '    with: {argv: ["true"]}',
                  '    confirm: {message: "go?", approvals: 1, approvers: ["@oncall"]}']
    return "\n".join(lines) + "\n"


def keys(tmp: Path) -> tuple[Path, Path]:
    """The operator's and the approver's keys, and the team's allowed_signers naming both."""
    made = {}
    for who in ("oscar", "alice"):
        path = tmp / who / "id_ed25519"
        path.parent.mkdir(parents=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(path)], check=True)
        made[who] = " ".join(path.with_name("id_ed25519.pub").read_text().split()[:2])
    signers = tmp / "allowed_signers"
    signers.write_text(f"oscar {made['oscar']}\nalice,@oncall {made['alice']}\n")
    return signers, tmp / "alice" / "id_ed25519"


def open_gate(store: Any, step: str, deadline: float) -> tuple[str, str]:
    from engine.approvals import pending

    while time.monotonic() < deadline:
        rows = [r for r in pending(store) if r["gate"] == step]
        if rows:
            return str(rows[0]["run"]), str(rows[0]["digest"])
        time.sleep(0.02)
    raise SystemExit(f"gate {step} never opened")


def drive(store: Any, env: dict[str, str], book: Path, rounds: int, cli_rounds: int,
          key: Path) -> tuple[list[float], list[float]]:
    from engine.approvals import APPROVE, answer
    from engine.audit import elapsed

    total = rounds + cli_rounds
    # The operator pre-approved every step with --approve: the wait measured is for the other person only.
    driver = subprocess.Popen([BG, "run", str(book), *[a for i in range(total) for a in ("--approve", f"s{i}")],
                               "--operator", "oscar@bench"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cli_ms: list[float] = []
    try:
        for i in range(total):
            run, digest = open_gate(store, f"s{i}", time.monotonic() + 60)
            if i < rounds:
                answer(store, run, f"s{i}", APPROVE, key, digest=digest)
                continue
            began = time.time()
            subprocess.run([BG, "approve", run, f"s{i}", "--key", str(key), "--digest", digest], env=env,
                           check=True, capture_output=True, stdin=subprocess.DEVNULL)
            cli_ms.append(began)
        _, err = driver.communicate(timeout=120)
        assert driver.returncode == 0, err
    finally:
        if driver.poll() is None:
            driver.kill()
    records = [r.to_dict() for r in store.records(store.resolve("last"))]
    signed = {r["gate"]: r["ts"] for r in records if r["type"] == "approval.signed"}
    applying = {r["step"]: r["ts"] for r in records if r["type"] == "step.applying"}
    latencies = [elapsed(signed[f"s{i}"], applying[f"s{i}"]) * 1000 for i in range(rounds)]
    cli = [(elapsed(EPOCH, applying[f"s{rounds + j}"]) - began_at) * 1000
           for j, began_at in enumerate(cli_ms)]
    return latencies, cli


def summary(ms: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(ms), 1), "p90": round(sorted(ms)[int(len(ms) * 0.9) - 1], 1),
            "max": round(max(ms), 1), "n": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--cli-rounds", type=int, default=5)
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")

    from engine.store import FileStore, open_store
    from tests.lab.postgres import remove, start_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-approve-"))
    server = start_server(fsync=True)
    try:
        signers, key = keys(tmp)
        os.environ["BREAKGLASS_ALLOWED_SIGNERS"] = str(signers)  # this process approves in-process too
        book = tmp / "bench-approve.yaml"
        book.write_text(runbook(args.rounds + args.cli_rounds))
        with server.admin() as conn:  # type: ignore[attr-defined]
            conn.execute("CREATE DATABASE bench")
        url = server.url("bench")
        open_store(url, check_schema=False).migrate()  # type: ignore[attr-defined]
        base = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        base.update(HOME=str(tmp / "oscar"), BREAKGLASS_ALLOWED_SIGNERS=str(signers), NO_COLOR="1")
        figures: dict[str, Any] = {}
        for name, store, env in (
                ("postgres", open_store(url), {**base, "BREAKGLASS_STORE": url,
                                               "BREAKGLASS_HOME": str(tmp / "pg-home")}),
                ("file", FileStore(tmp / "home"), {**base, "BREAKGLASS_STORE": "",
                                                   "BREAKGLASS_HOME": str(tmp / "home")})):
            latencies, cli = drive(store, env, book, args.rounds, args.cli_rounds, key)
            figures[name] = summary(latencies)
            f = figures[name]
            print(f"{name}: approval recorded → driver applying: median {f['median']} ms, p90 {f['p90']} ms, "
                  f"max {f['max']} ms over {f['n']} rounds (target ≤ {TARGET_MS[name]:.0f} ms median)")
            if cli:
                figures[f"{name}_cli"] = summary(cli)
                c = figures[f"{name}_cli"]
                print(f"  `breakglass approve` started → driver applying: median {c['median']} ms over {c['n']} "
                      "rounds (Python start-up and ssh-keygen -Y sign included)")
        print(json.dumps(figures))
    finally:
        remove(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
