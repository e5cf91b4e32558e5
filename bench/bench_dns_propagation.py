"""dns.propagation over 20 slow servers: concurrent fan-out vs a sequential loop of dns.lookup.

Twenty UDP DNS responders on 127.0.0.1 each answer after DELAY seconds (asyncio, replies built with
dnspython). Concurrent propagation should take about one delay; the sequential loop about twenty.

    python bench/bench_dns_propagation.py [--servers 20] [--delay 0.1] [--rounds 3]

Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from typing import Any

import dns.message
import dns.rrset

from actions.base import ActionContext
from actions.dns import DnsLookup, DnsPropagation

ANSWER = "192.0.2.10"


class DelayedResponder(asyncio.DatagramProtocol):
    """Answers every A query with ANSWER after ``delay`` seconds, without blocking other queries."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        question = query.question[0]
        reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", ANSWER))
        asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, reply.to_wire(), addr)


def start_responders(count: int, delay: float) -> tuple[list[str], asyncio.AbstractEventLoop]:
    """Start ``count`` responders on one event loop in a background thread; return their addresses."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def open_all() -> list[str]:
        addresses = []
        for _ in range(count):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: DelayedResponder(delay), local_addr=("127.0.0.1", 0)
            )
            addresses.append(f"127.0.0.1:{transport.get_extra_info('sockname')[1]}")
        return addresses

    return asyncio.run_coroutine_threadsafe(open_all(), loop).result(), loop


def concurrent(servers: list[str]) -> float:
    action = DnsPropagation()
    params = action.Params(name="www.example.test", expected=ANSWER, servers=servers, timeout=2.0, retries=0)
    started = time.perf_counter()
    result = action.run(params, ActionContext())
    elapsed = time.perf_counter() - started
    assert result.output["percent"] == 100, result.message
    return elapsed


def sequential(servers: list[str]) -> float:
    action = DnsLookup()
    started = time.perf_counter()
    for server in servers:
        params = action.Params(name="www.example.test", server=server, timeout=2.0, retries=0)
        assert action.run(params, ActionContext()).output["answers"] == [ANSWER]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    servers, loop = start_responders(args.servers, args.delay)
    par = statistics.median(concurrent(servers) for _ in range(args.rounds))
    seq = statistics.median(sequential(servers) for _ in range(args.rounds))
    loop.call_soon_threadsafe(loop.stop)
    print(f"{args.servers} servers, {args.delay * 1000:.0f} ms delay each, median of {args.rounds} rounds")
    print(f"  dns.propagation (concurrent): {par * 1000:7.1f} ms  ({par / args.delay:.1f} delays)")
    print(f"  dns.lookup loop (sequential): {seq * 1000:7.1f} ms  ({seq / args.delay:.1f} delays)")
    print(f"  ratio sequential/concurrent:  {seq / par:7.1f}x")


if __name__ == "__main__":
    main()
