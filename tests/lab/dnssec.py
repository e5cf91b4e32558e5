"""Signed zones and a validating resolver for DNSSEC tests, with BIND's own tools (bind9-utils).

    keys = ZoneKeys.generate(tmp_path / "keys", "example.test.")          # a KSK and a ZSK
    child = keys.sign(zone_text(...), start=-30, end=-1)                  # signatures that ended yesterday
    parent = parent_keys.sign(parent_text(..., ds=keys.ds))               # the DS of the child's KSK
    auth = bind_factory({"test.": parent, "example.test.": child})        # tests/lab/bind.py
    resolver = ValidatingResolver(tmp_path / "r", auth, anchor=parent_keys).start()
    resolver.rndc("flushtree", "example.test")                            # argv of rndc for this resolver

The resolver is a second ``named`` that recurses, validates with a static trust anchor for the lab's parent
zone (``test.``), and forwards everything under it to the lab's authoritative server, so the chain of trust
it walks is the lab's and nothing leaves 127.0.0.1.

It remembers a failed validation the way a production BIND does: a DNSKEY or DS whose chain broke goes into
the resolver's "bad cache" for max(lame-ttl, 30) s (``DNS_RESOLVER_BADCACHETTL`` in lib/dns/resolver.c, 9.18),
whatever ``servfail-ttl`` and ``max-cache-ttl`` say, so after a fix it keeps answering SERVFAIL for 30 s.
``rndc flushtree ZONE`` empties both caches under the zone, as an operator does on their own resolvers; the
resolver listens for rndc on a control port of its own, with a key of its own.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.lab import free_port
from tests.lab.bind import BindServer

KEYGEN = shutil.which("dnssec-keygen") or "/usr/sbin/dnssec-keygen"
SIGNZONE = shutil.which("dnssec-signzone") or "/usr/sbin/dnssec-signzone"
DSFROMKEY = shutil.which("dnssec-dsfromkey") or "/usr/sbin/dnssec-dsfromkey"
RNDC = shutil.which("rndc") or "/usr/sbin/rndc"
ALGORITHM = "ECDSAP256SHA256"  # algorithm 13


def require_tools() -> None:
    if not all(shutil.which(t) for t in (KEYGEN, SIGNZONE, DSFROMKEY)):
        pytest.skip("dnssec-keygen/dnssec-signzone are not installed; .ci/run installs bind9-utils")


def _stamp(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True)
class ZoneKeys:
    """A KSK and a ZSK for ``origin``, as K-files in ``directory``."""

    origin: str
    directory: Path
    ksk: str  # K-file base name, without .key/.private
    zsk: str

    @classmethod
    def generate(cls, directory: Path, origin: str, algorithm: str = ALGORITHM) -> ZoneKeys:
        directory.mkdir(parents=True, exist_ok=True)

        def keygen(*flags: str) -> str:
            out = subprocess.run([KEYGEN, "-q", "-K", str(directory), "-a", algorithm, *flags, origin],
                                 capture_output=True, text=True, check=True)
            return out.stdout.strip()

        return cls(origin, directory, keygen("-f", "KSK"), keygen())

    @property
    def ds(self) -> str:
        """The KSK's DS (SHA-256) in zone-file form: ``example.test. IN DS tag alg 2 digest``."""
        out = subprocess.run([DSFROMKEY, "-2", str(self.directory / f"{self.ksk}.key")],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    @property
    def ksk_dnskey(self) -> str:
        """The KSK's public key line (``origin IN DNSKEY 257 3 13 ...``)."""
        lines = (self.directory / f"{self.ksk}.key").read_text().splitlines()
        return next(line for line in lines if not line.startswith(";"))

    def sign(self, text: str, *, start: float = -1, end: float = 30) -> str:
        """``text`` with the keys added and signed, valid from ``start`` to ``end`` days from now."""
        unsigned = self.directory / f"{self.origin}zone"
        keys = "".join(f"$INCLUDE {self.directory / k}.key\n" for k in (self.ksk, self.zsk))
        unsigned.write_text(text + keys)
        signed = unsigned.with_suffix(".signed")
        # dnssec-signzone verifies what it signed, which signatures outside their window fail: -P skips that
        verify = ["-P"] if end <= 0 or start > 0 else []
        subprocess.run([SIGNZONE, "-q", *verify, "-K", str(self.directory), "-o", self.origin,
                        "-s", _stamp(start), "-e", _stamp(end), "-f", str(signed), str(unsigned),
                        str(self.directory / self.ksk), str(self.directory / self.zsk)],
                       capture_output=True, text=True, check=True, cwd=self.directory)  # dsset-* files land here
        return signed.read_text()


class ValidatingResolver(BindServer):
    """A recursive, validating ``named``: trust anchor = ``anchor``'s KSK, ``anchor.origin`` forwarded to
    ``upstream``."""

    def __init__(self, workdir: Path, upstream: BindServer, anchor: ZoneKeys) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__({}, workdir=workdir)
        self.upstream, self.anchor = upstream, anchor
        self.control_port = free_port(host=self.host)
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        self._key = f'key "rndc-key" {{ algorithm hmac-sha256; secret "{key}"; }};\n'
        self.rndc_conf = workdir / "rndc.conf"
        self.rndc_conf.write_text(self._key + 'options { default-key "rndc-key"; default-server 127.0.0.1; '
                                  f"default-port {self.control_port}; }};\n")

    def rndc(self, *args: str) -> list[str]:
        """The argv of ``rndc`` talking to this resolver (``flushtree example.test``, ``flush``...)."""
        return [RNDC, "-c", str(self.rndc_conf), *args]

    def _options(self) -> str:
        owner, _cls, _type, flags, proto, alg, *key = self.anchor.ksk_dnskey.split()
        anchor_key = "".join(key)
        return (
            "options {\n"
            f'  directory "{self.workdir}";\n'
            f'  pid-file "{self.workdir}/named.pid";\n'
            f'  session-keyfile "{self.workdir}/session.key";\n'
            f'  managed-keys-directory "{self.workdir}";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
            "  listen-on-v6 { none; };\n"
            "  recursion yes;\n  allow-recursion { 127.0.0.1; };\n"
            "  dnssec-validation yes;\n  notify no;\n"
            # each test re-asks after changing the world: no cached SERVFAIL, nothing kept past 2 s (but a
            # failed validation stays in the bad cache for 30 s: rndc flushtree, see the module's docstring)
            "  servfail-ttl 0;\n  max-cache-ttl 2;\n  max-ncache-ttl 2;\n"
            "};\n"
            f"{self._key}"
            f'controls {{ inet 127.0.0.1 port {self.control_port} allow {{ 127.0.0.1; }} keys {{ "rndc-key"; }}; }};\n'
            f'trust-anchors {{ "{owner}" static-key {flags} {proto} {alg} "{anchor_key}"; }};\n'
            f'zone "{self.anchor.origin}" {{ type forward; forward only; '
            f"forwarders {{ {self.upstream.host} port {self.upstream.port}; }}; }};\n"
        )

    def _wait_ready(self) -> None:
        import time

        deadline = time.monotonic() + self.start_timeout
        while self._proc is not None and self._proc.poll() is None:
            if "running" in self.log or time.monotonic() > deadline:
                return
            time.sleep(0.05)
        raise RuntimeError(f"named (resolver) exited:\n{self.log[-3000:]}")
