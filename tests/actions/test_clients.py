"""The shared client layer (actions/clients) against a real BIND on loopback: one DNS client, one async bridge,
one name for the DNS servers an action asks, old names still accepted with a deprecation note."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.base import Action, ActionContext
from actions.clients import fanout
from actions.clients.dns import DnsFailure, Resolver
from actions.registry import Registry
from tests.lab import free_tcp_udp_port
from tests.lab.bind import BindServer, zone_text

ACTIONS = Path(__file__).resolve().parents[2] / "actions"

# Every action that asks DNS servers a question (dns.update sends its change to one primary: `server`).
READS_DNS = ("dns.lookup", "dns.authoritative", "dns.propagation", "mail.auth_records", "mail.spf_check",
             "mail.blacklist", "mail.smtp_probe")
OLD_NAMES = {"server", "servers", "resolver"}

RECORDS = """
www      IN A     192.0.2.10
@        IN MX    10 mail
mail     IN A     192.0.2.25
@        IN TXT   "v=spf1 ip4:192.0.2.25 -all"
2.0.0.127.bl IN A 127.0.0.2
"""


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    zones = {"example.test.": zone_text("example.test.", RECORDS),
             "down.test.": "not a zone file: named answers SERVFAIL for down.test\n"}
    with BindServer(zones, broken_zones=["down.test."], workdir=tmp_path_factory.mktemp("clients")) as server:
        yield server


def run(name: str, args: dict[str, Any]) -> Any:
    cls: type[Action[Any]] = Registry().get(name)
    action = cls()
    params = cls.Params.model_validate(args)
    return action.run(params, ActionContext())


# -- one name -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READS_DNS)
def test_every_action_that_asks_dns_calls_its_servers_nameservers(name: str) -> None:
    fields = set(Registry().get(name).Params.model_fields)
    assert "nameservers" in fields and not fields & OLD_NAMES, sorted(fields)


CASES = [
    ("dns.lookup", "server", {"name": "www.example.test"}, lambda out: out["answers"] == ["192.0.2.10"]),
    ("dns.propagation", "servers", {"name": "www.example.test", "expected": "192.0.2.10", "retries": 0},
     lambda out: out["all_match"]),
    ("mail.spf_check", "resolver", {"ip": "192.0.2.25", "mail_from": "a@example.test", "helo": "mail.example.test"},
     lambda out: out["result"] == "pass"),
    ("mail.auth_records", "resolver", {"domain": "example.test"},
     lambda out: out["mx"]["records"][0]["addresses"] == ["192.0.2.25"]),
    ("mail.blacklist", "resolver", {"targets": ["127.0.0.2"], "zones": ["bl.example.test"]},
     lambda out: out["listed_count"] == 1),
]


@pytest.mark.parametrize(("name", "old", "args", "worked"), CASES, ids=[c[0] for c in CASES])
def test_old_name_still_works_and_says_it_is_deprecated(bind: BindServer, name: str, old: str,
                                                         args: dict[str, Any], worked: Any) -> None:
    assert old in Registry().arguments(name).accepted  # `validate` accepts runbooks written before the rename
    result = run(name, {**args, old: bind.address})
    assert worked(result.output), result.output
    assert f"argument '{old}' is deprecated: write 'nameservers'" in result.message, result.message


@pytest.mark.parametrize(("name", "old", "args", "worked"), CASES, ids=[c[0] for c in CASES])
def test_new_name_works_without_a_note(bind: BindServer, name: str, old: str, args: dict[str, Any],
                                       worked: Any) -> None:
    assert "nameservers" in Registry().arguments(name).accepted
    result = run(name, {**args, "nameservers": bind.address})
    assert worked(result.output), result.output
    assert "deprecated" not in result.message


def test_nameservers_are_asked_in_order_until_one_answers(bind: BindServer) -> None:
    dead = f"127.0.0.1:{free_tcp_udp_port()}"
    result = run("dns.lookup", {"name": "www.example.test", "nameservers": [dead, bind.address],
                                "timeout": 0.3, "retries": 0})
    assert result.ok and result.output["answers"] == ["192.0.2.10"]
    assert result.output["server"] == bind.address


def test_shipped_runbooks_use_the_current_name() -> None:
    runbooks = Path(__file__).resolve().parents[2] / "runbooks"
    for path in sorted(runbooks.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for action in READS_DNS:
            for block in re.findall(rf"action: {re.escape(action)}\n\s+with:\n((?:\s{{6,}}.*\n)+)", text):
                assert not re.search(r"^\s+(server|servers|resolver):", block, re.MULTILINE), (path.name, block)


# -- the DNS client ------------------------------------------------------------------------------------------


def test_records_distinguish_absent_from_unanswered(bind: BindServer) -> None:
    resolver = Resolver.of(bind.address, timeout=2)
    assert resolver.addresses("www.example.test", 4) == ["192.0.2.10"]
    assert resolver.records("nothing.example.test", "A") == []  # NXDOMAIN: nothing there
    assert resolver.records("www.example.test", "TXT") == []  # NODATA
    assert resolver.records("a" * 64 + ".example.test", "A") == []  # a name DNS cannot hold
    with pytest.raises(DnsFailure, match="SERVFAIL"):
        resolver.records("down.test", "TXT")


def test_a_silent_server_is_a_failure_within_the_timeout() -> None:
    resolver = Resolver.of(f"127.0.0.1:{free_tcp_udp_port()}", timeout=0.3)
    with pytest.raises(DnsFailure, match="DNS A www.example.test: no response before the timeout"):
        resolver.records("www.example.test", "A")


def test_smtp_probe_with_a_bad_host_is_a_finding_not_a_crash() -> None:
    result = run("mail.smtp_probe", {"host": "127.0.0.1:smtp"})
    assert not result.ok and result.output["failed_stage"] == "resolve"
    assert "bad port" in result.output["text"] and "ip:port" in result.output["text"]


# -- one async bridge ----------------------------------------------------------------------------------------


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


async def _broken() -> int:
    raise LookupError("the world misbehaved")


def test_fanout_runs_from_plain_code_and_from_inside_a_running_loop() -> None:
    assert fanout.run(_answer) == 42

    async def inside() -> int:
        return fanout.run(_answer)

    assert asyncio.run(inside()) == 42


def test_fanout_passes_the_coroutines_exception_on_from_inside_a_running_loop() -> None:
    async def inside() -> int:
        return fanout.run(_broken)

    with pytest.raises(LookupError, match="misbehaved"):
        asyncio.run(inside())


def test_gather_bounded_keeps_order_and_the_bound() -> None:
    running, peak = 0, 0

    def job(i: int) -> Any:
        async def go() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01 * (5 - i))
            running -= 1
            return i

        return go

    assert fanout.run(lambda: fanout.gather_bounded([job(i) for i in range(5)], 2)) == [0, 1, 2, 3, 4]
    assert peak == 2


def test_call_all_keeps_order_and_the_bound_and_starts_nothing_after_an_exception() -> None:
    import threading
    import time

    lock, running, peak, started = threading.Lock(), 0, 0, []

    def call(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            started.append(i)
        time.sleep(0.01 * (5 - i % 5))
        with lock:
            running -= 1
        if i == 2:
            raise LookupError("item 2 misbehaved")
        return i

    assert fanout.call_all([lambda i=i: call(i) if i != 2 else i for i in range(8)], 3) == list(range(8))
    assert peak == 3
    started.clear()
    with pytest.raises(LookupError, match="item 2"):
        fanout.call_all([lambda i=i: call(i) for i in range(40)], 2)
    assert len(started) < 40, "the calls still queued when one raised were not started"


def test_actions_hold_no_dns_client_or_event_loop_of_their_own() -> None:
    """The DNS resolver setup and the sync→async bridge are said once, in actions/clients."""
    for path in sorted(ACTIONS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"dns\.(async)?resolver", r"asyncio\.run\(", r"ThreadPoolExecutor", r"dns\.asyncquery",
                        r"udp_with_fallback", r"threading\.Thread\("):
            assert not re.search(pattern, text), (path.name, pattern)
