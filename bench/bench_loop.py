"""``for_each`` loops: concurrent read-only items, and the engine's overhead per item against per step.

    python bench/bench_loop.py [--items 1000] [--concurrency 50] [--delay-ms 50 300] [--trivial 1000]

1. A 1,000-item ``http.probe`` loop, then a ``dns.lookup`` loop, with ``concurrency: 50`` against a local
   HTTP / DNS server that answers each request after ``--delay-ms``: the loop should take about
   items / concurrency delays (20), not 1,000; then the same loop of ``wait.sleep`` (the engine's own cost,
   no protocol client). Each delay given is measured (default 50 ms and 300 ms). The CPU per item says
   how much of the time the work under one GIL takes: when items x CPU per item nears 20 delays (at 50 ms
   per answer, 1 s), the loop is bound by that work, not by the server; at 300 ms it is not, and the
   figure shows what the concurrency itself achieves.
2. A sequential loop of ``log.note`` over 1,000 items, against 1,000 ``log.note`` steps: the median gap
   between consecutive outcomes (``step.succeeded`` of items, and of steps), fsyncs included, as
   bench/bench_engine.py measures the per-step overhead.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        time.sleep(float(sys.argv[1]))
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")

    def log_message(self, *args):
        pass

ThreadingHTTPServer.request_queue_size = 256  # 50 connections at once must not be refused
server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


DNS_SERVER = """
import asyncio, sys
import dns.message, dns.rrset

class Slow(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        query = dns.message.from_wire(data)
        answer = dns.message.make_response(query)
        answer.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "127.0.0.1"))
        asyncio.get_running_loop().call_later(float(sys.argv[1]), self.transport.sendto, answer.to_wire(), addr)

async def main():
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Slow, local_addr=("127.0.0.1", 0))
    print(transport.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def slow_server(delay_s: float, program: str = SERVER) -> tuple[subprocess.Popen[str], int]:
    """The delayed server in a process of its own: in this one, its threads would take the GIL from the
    loop being measured."""
    proc = subprocess.Popen([sys.executable, "-c", program, str(delay_s)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def probe_loop(n: int, concurrency: int, port: int) -> str:
    return f"""id: bench-loop
title: a read-only loop against a slow local server
steps:
  - id: probe
    title: probe each path
    for_each: "{{{{ range({n}) | list }}}}"
    concurrency: {concurrency}
    action: http.probe
    with:
      url: "http://127.0.0.1:{port}/{{{{ item }}}}"
      timeout: 30
"""


def lookup_loop(n: int, concurrency: int, port: int) -> str:
    return f"""id: bench-dns-loop
title: a read-only loop against a slow local DNS server
steps:
  - id: lookup
    title: look up each name
    for_each: "{{{{ range({n}) | list }}}}"
    concurrency: {concurrency}
    action: dns.lookup
    with:
      name: "host{{{{ item }}}}.example.test"
      nameservers: "127.0.0.1:{port}"
      timeout: 30
      retries: 0
"""


def sleep_loop(n: int, concurrency: int, delay_s: float) -> str:
    return f"""id: bench-sleep-loop
title: the engine's own concurrency, no protocol client
steps:
  - id: wait
    title: wait each
    for_each: "{{{{ range({n}) | list }}}}"
    concurrency: {concurrency}
    action: wait.sleep
    with: {{seconds: {delay_s}}}
"""


def note_loop(n: int) -> str:
    return f"""id: bench-note-loop
title: a sequential loop of notes
steps:
  - id: note
    title: note each
    for_each: "{{{{ range({n}) | list }}}}"
    action: log.note
    with:
      text: "note {{{{ item }}}}"
"""


def note_steps(n: int) -> str:
    lines = ["id: bench-note-steps", "title: notes, one step each", "steps:"]
    for i in range(n):
        lines += [f"  - id: s{i}", f"    title: note {i}", "    action: log.note", f"    with: {{text: note {i}}}"]
    return "\n".join(lines) + "\n"


def run(text: str, home: Path) -> tuple[float, list[dict[str, Any]]]:
    from engine import audit
    from engine.console import NullReporter
    from engine.loader import load_text
    from engine.session import RunOptions, start
    from engine.store import FileStore

    loaded = load_text(text, str(home / "bench.yaml"))
    store = FileStore(home)
    began, cpu = time.perf_counter(), time.process_time()
    outcome = start(loaded, {}, RunOptions(operator="bench"), NullReporter(), store=store)
    wall = time.perf_counter() - began
    if outcome.status != "succeeded":
        raise SystemExit(f"{loaded.runbook.id}: run ended {outcome.status}")
    CPU[loaded.runbook.id] = time.process_time() - cpu
    return wall, [r.to_dict() for r in audit.read(store.log_path(outcome.run_id))[0]]


CPU: dict[str, float] = {}  # CPU seconds this process spent per run: when it nears the wall time, the loop
# is bound by the engine's and httpx's Python work under one GIL, not by the server's delay


def gaps_ms(records: list[dict[str, Any]], item: bool) -> list[float]:
    from engine import audit
    from engine.events import parent_of

    ends = [r["ts"] for r in records
            if r["type"] == "step.succeeded" and (parent_of(str(r["step"])) is not None) == item]
    return [audit.elapsed(a, b) * 1000 for a, b in zip(ends, ends[1:], strict=False)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--delay-ms", type=float, nargs="+", default=[50.0, 300.0])
    ap.add_argument("--trivial", type=int, default=1000)
    args = ap.parse_args(argv)

    ideal = args.items / args.concurrency
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        home = Path(tmp)
        for delay_ms in args.delay_ms:
            delay = delay_ms / 1000
            for label, program, loop in (("http.probe", SERVER, probe_loop), ("dns.lookup", DNS_SERVER, lookup_loop)):
                server, port = slow_server(delay, program)
                try:
                    wall, records = run(loop(args.items, args.concurrency, port), home / f"{label}-{delay_ms:g}")
                finally:
                    server.terminate()
                    server.wait()
                done = sum(1 for r in records if r["type"] == "step.succeeded" and "[" in str(r["step"]))
                cpu = CPU[records[0]["runbook"]["id"]]
                print(f"{delay_ms:g} ms per answer, {label}: {done} items, concurrency {args.concurrency}: "
                      f"{wall:.2f} s = {wall / delay:.1f} delays (ideal {ideal:.0f}; one at a time: {args.items}); "
                      f"CPU {cpu:.2f} s = {cpu / done * 1000:.1f} ms per item")
            wall, records = run(sleep_loop(args.items, args.concurrency, delay), home / f"sleep-{delay_ms:g}")
            cpu = CPU["bench-sleep-loop"]
            print(f"{delay_ms:g} ms per answer, the engine alone (wait.sleep, no protocol client): {wall:.2f} s = "
                  f"{wall / delay:.1f} delays; CPU {cpu / args.items * 1000:.1f} ms per item")

        _, loop_records = run(note_loop(args.trivial), home / "b")
        _, step_records = run(note_steps(args.trivial), home / "c")
        per_item = statistics.median(gaps_ms(loop_records, item=True))
        per_step = statistics.median(gaps_ms(step_records, item=False))
        print(f"sequential loop, log.note: {per_item:.3f} ms per item (median of {args.trivial - 1} gaps)")
        print(f"separate steps, log.note:  {per_step:.3f} ms per step (median of {args.trivial - 1} gaps)")
        print(f"per-item overhead / per-step overhead: {per_item / per_step:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
