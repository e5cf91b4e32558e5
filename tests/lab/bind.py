"""A real BIND 9 ``named`` on loopback for tests: any zones, a TSIG key, dynamic updates, secondaries.

Usage from any test module::

    from tests.lab.bind import BindServer, TsigKey  # bind_factory is a fixture (tests/conftest.py)

    def test_something(bind_factory):
        server = bind_factory({"example.test.": ZONE_TEXT})
        ...  # server.address == "127.0.0.1:<port>", server.host, server.port

``BindServer`` also works as a context manager outside pytest (the benchmarks use it). Each instance runs in
its own directory with its own port (free for TCP and UDP), in the foreground, and is considered started only
once every zone it is expected to load answers its SOA query, so tests never race the zone loader.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab import free_tcp_udp_port

NAMED = shutil.which("named") or "/usr/sbin/named"


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key (RFC 8945) as named.conf and dnspython both want it: name, algorithm, base64 secret."""

    name: str
    secret: str
    algorithm: str = "hmac-sha256"

    @classmethod
    def generate(cls, name: str = "update-key.", algorithm: str = "hmac-sha256") -> TsigKey:
        return cls(name=name, secret=base64.b64encode(os.urandom(32)).decode(), algorithm=algorithm)

    def conf(self) -> str:
        return f'key "{self.name}" {{ algorithm {self.algorithm}; secret "{self.secret}"; }};\n'


def ipv6_loopback_available() -> bool:
    """Whether ::1 can be bound here (containers often run without IPv6)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def zone_text(origin: str, records: str, *, serial: int = 1, ttl: int = 300) -> str:
    """A zone file with a SOA and one NS (ns1.<origin> at 127.0.0.1) followed by ``records``."""
    return (
        f"$ORIGIN {origin}\n$TTL {ttl}\n"
        f"@ IN SOA ns1.{origin} hostmaster.{origin} {serial} 3600 600 86400 60\n"
        f"@ IN NS ns1.{origin}\n"
        f"ns1 IN A 127.0.0.1\n"
        f"{records}\n"
    )


class BindServer:
    """One ``named`` process serving ``zones`` ({origin: zone file text}) on 127.0.0.1 (and ::1 if asked).

    ``update_zones`` accept RFC 2136 updates signed with ``tsig`` (or from 127.0.0.1 if no key is given).
    ``broken_zones`` are expected to fail loading (named answers SERVFAIL for them); they are not waited for.
    ``secondary_of`` makes every zone in ``zones`` a secondary of that server (zone text is ignored).
    """

    def __init__(
        self,
        zones: Mapping[str, str],
        *,
        tsig: TsigKey | None = None,
        update_zones: Iterable[str] = (),
        broken_zones: Iterable[str] = (),
        ipv6: bool = False,
        secondary_of: BindServer | None = None,
        workdir: Path | None = None,
        start_timeout: float = 20.0,
        port: int | None = None,
    ) -> None:
        self.zones = {_fqdn(o): t for o, t in zones.items()}
        self.tsig = tsig
        self.update_zones = {_fqdn(z) for z in update_zones}
        self.broken_zones = {_fqdn(z) for z in broken_zones}
        self.ipv6 = ipv6
        self.secondary_of = secondary_of
        self.start_timeout = start_timeout
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bg-named-"))
        self.host = "127.0.0.1"
        # A port given: a server taking over another's port once that one stopped (the nameservers of a
        # delegation all answer on one port, and a lab can only replace one on 127.0.0.1).
        self.port = port or free_tcp_udp_port(self.host)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``ip:port`` as the DNS actions take it."""
        return f"{self.host}:{self.port}"

    @property
    def address6(self) -> str:
        """``[::1]:port``; only answers when started with ``ipv6=True``."""
        return f"[::1]:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def zone_file(self, origin: str) -> Path:
        return self.workdir / f"db.{_fqdn(origin).rstrip('.') or 'root'}"

    # -- configuration ---------------------------------------------------------------------------------

    def _options(self) -> str:
        v6 = f"listen-on-v6 port {self.port} {{ ::1; }};" if self.ipv6 else "listen-on-v6 { none; };"
        return (
            "options {\n"
            f'  directory "{self.workdir}";\n'
            f'  pid-file "{self.workdir}/named.pid";\n'
            f'  session-keyfile "{self.workdir}/session.key";\n'
            f'  managed-keys-directory "{self.workdir}";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
            f"  {v6}\n"
            "  recursion no;\n  dnssec-validation no;\n  notify no;\n"
            "  allow-transfer { any; };\n"
            # Big TXT RRsets must come back truncated over UDP to exercise the TCP fallback (RFC 1035 4.2.1).
            "  max-udp-size 1232;\n"
            "};\n"
            "controls { };\n"
        )

    def _zone_conf(self, origin: str, text: str) -> str:
        path = self.zone_file(origin)
        if self.secondary_of is not None:
            primary = self.secondary_of
            return (
                f'zone "{origin}" {{ type secondary; file "{path}";'
                f" primaries {{ {primary.host} port {primary.port}; }}; }};\n"
            )
        path.write_text(text)
        update = ""
        if origin in self.update_zones:
            who = f'key "{self.tsig.name}";' if self.tsig else "127.0.0.1;"
            update = f" allow-update {{ {who} }};"
        return f'zone "{origin}" {{ type primary; file "{path}";{update} }};\n'

    def _write_conf(self) -> Path:
        conf = self._options() + (self.tsig.conf() if self.tsig else "")
        conf += "".join(self._zone_conf(o, t) for o, t in self.zones.items())
        path = self.workdir / "named.conf"
        path.write_text(conf)
        return path

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> BindServer:
        conf = self._write_conf()
        log = (self.workdir / "named.log").open("wb")
        # -g: foreground, log to stderr; -n 1: one worker thread, the test machine is small.
        self._proc = subprocess.Popen(
            [NAMED, "-g", "-n", "1", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        waiting = [z for z in self.zones if z not in self.broken_zones]
        deadline = time.monotonic() + self.start_timeout
        while waiting:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"named exited with {self._proc.returncode}:\n{self.log[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"named did not serve {waiting} in {self.start_timeout}s:\n{self.log[-3000:]}"
                )
            waiting = [z for z in waiting if self.soa_serial(z) is None]
            if waiting:
                time.sleep(0.05)

    def soa_serial(self, origin: str, timeout: float = 0.5) -> int | None:
        """The serial this server answers for ``origin`` (authoritatively), or None if it does not yet."""
        import dns.exception
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdatatype

        query = dns.message.make_query(_fqdn(origin), dns.rdatatype.SOA)
        try:
            reply = dns.query.udp(query, self.host, port=self.port, timeout=timeout)
        except (dns.exception.DNSException, OSError):
            return None
        if reply.rcode() != dns.rcode.NOERROR or not reply.flags & dns.flags.AA or not reply.answer:
            return None
        return int(reply.answer[0][0].serial)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BindServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _require_named() -> None:
    if not os.access(NAMED, os.X_OK):
        pytest.skip(f"BIND 9 named is not installed ({NAMED}); .ci/run installs bind9")


def _starter(base: Path, servers: list[BindServer]) -> Callable[..., BindServer]:
    def start(zones: Mapping[str, str], **kwargs: Any) -> BindServer:
        _require_named()
        kwargs.setdefault("workdir", base / f"named{len(servers)}")
        kwargs["workdir"].mkdir(parents=True, exist_ok=True)
        server = BindServer(zones, **kwargs)
        servers.append(server)
        return server.start()

    return start


@pytest.fixture
def bind_factory(tmp_path: Path) -> Iterator[Callable[..., BindServer]]:
    """Start ``named`` with ``bind_factory(zones, **BindServer kwargs)``; every one stops after the test."""
    servers: list[BindServer] = []
    yield _starter(tmp_path, servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def bind_module_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., BindServer]]:
    """Like ``bind_factory`` but the servers live for the whole test module (start-up costs ~0.5 s each)."""
    servers: list[BindServer] = []
    yield _starter(tmp_path_factory.mktemp("named"), servers)
    for server in servers:
        server.stop()
