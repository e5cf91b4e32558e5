"""mail.blacklist: one IP against 50 lists whose answers each take ~100 ms, concurrent vs one at a time.

A small asyncio UDP DNS responder on 127.0.0.1 (dnspython for the wire format) answers every query after
``--delay`` seconds: NXDOMAIN, or 127.0.0.2 plus a TXT reason for the zones chosen with ``--listed``.
The same action runs twice: with its default concurrency, then with ``concurrency=1`` (a sequential loop).

    python bench/bench_blacklist.py [--zones 50] [--delay 0.1] [--listed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from actions.base import ActionContext
from actions.mail_blacklist import MailBlacklist, MailBlacklistParams, ZoneSpec


class DelayedResponder(asyncio.DatagramProtocol):
    """Answers each DNS query after ``delay`` seconds; names under a ``listed`` zone get 127.0.0.2."""

    def __init__(self, delay: float, listed: set[str]) -> None:
        self.delay, self.listed = delay, listed
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.get_running_loop().create_task(self.answer(data, addr))

    async def answer(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        question = query.question[0]
        zone = question.name.to_text().split(".", 4)[-1].rstrip(".")
        if zone not in self.listed:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.2"))
        elif question.rdtype == dns.rdatatype.TXT:
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", '"listed for bench"'))
        await asyncio.sleep(self.delay)
        self.transport.sendto(reply.to_wire(), addr)


def start_responder(delay: float, listed: set[str]) -> tuple[int, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def serve() -> None:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: DelayedResponder(delay, listed), local_addr=("127.0.0.1", 0)
        )
        port.append(transport.get_extra_info("sockname")[1])
        ready.set()

    threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True).start()
    ready.wait(5)
    return port[0], loop


def timed(params: MailBlacklistParams) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = MailBlacklist().run(params, ActionContext())
    return time.perf_counter() - started, result.output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--listed", type=int, default=0, help="how many zones list the IP (adds a TXT query)")
    args = parser.parse_args()
    zones = [f"list{i}.bench.test" for i in range(args.zones)]
    port, loop = start_responder(args.delay, set(zones[: args.listed]))
    specs: list[str | ZoneSpec] = [ZoneSpec(zone=z) for z in zones]
    common = {"targets": ["192.0.2.1"], "zones": specs, "resolver": f"127.0.0.1:{port}", "timeout": 5.0}
    # The first run pays for importing dnspython's async stack; time it apart so the ratio measures queries.
    first, _ = timed(MailBlacklistParams(**common))
    concurrent, out = timed(MailBlacklistParams(**common))
    sequential, _ = timed(MailBlacklistParams(**common, concurrency=1))
    loop.call_soon_threadsafe(loop.stop)
    print(f"1 IP x {args.zones} zones, answers delayed {args.delay * 1000:.0f} ms, {args.listed} listed")
    print(f"  first run  : {first:7.3f} s  (includes importing dnspython)")
    print(f"  concurrent : {concurrent:7.3f} s  ({out['counts']})")
    print(f"  sequential : {sequential:7.3f} s")
    print(f"  ratio      : {sequential / concurrent:7.1f}x  (concurrent = {concurrent / args.delay:.1f} delays)")


if __name__ == "__main__":
    main()
