"""Server addresses as runbooks write them: "192.0.2.1", "192.0.2.1:5353", "::1", "[::1]:53", "ns1.example.com"."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

FORMS = "ip, ip:port, [ipv6]:port or a hostname (host:port)"


@dataclass(frozen=True)
class Address:
    """A server as ``host`` (an IP literal or a hostname) and ``port``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_address(text: str, default_port: int) -> Address:
    """Parse one address; a bare IPv6 literal has no port (it cannot without brackets). ValueError says why."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad server address {text!r}: expected [ipv6]:port")
        return Address(host, _port(rest[1:], text) if rest else default_port)
    if text.count(":") > 1:
        return Address(text, default_port)
    host, sep, port = text.partition(":")
    if not host:
        raise ValueError(f"bad server address {text!r}: no host")
    return Address(host, _port(port, text) if sep else default_port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in server address {whole!r}")
    return int(text)
