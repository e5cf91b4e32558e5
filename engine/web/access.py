"""Where ``breakglass serve`` may listen, and who may read what it serves.

A run tells what was done to production, by whom, with which arguments: the page is for the team, not for
whoever can reach the machine. On a loopback address only local users can connect (a reverse proxy on the
same machine can add authentication, see docs/web.md). Any other address needs a token file; without one
the server refuses to start rather than serve the incident to the network. 127.0.0.2 and the rest of
127.0.0.0/8 count as "elsewhere" on purpose: only the exact names people mean by "this machine" are local.
"""

from __future__ import annotations

import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

DEFAULT_LISTEN = "127.0.0.1:8470"
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MIN_TOKEN_CHARS = 16
COOKIE = "breakglass_token"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}/"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` (``[::1]:8470`` for IPv6); port 0 lets the system choose."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise InputError(f"--listen {text!r}: write it as HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:8470")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen {text!r}: the port must be a number from 0 to 65535")
    return Listen(host, int(port))


@dataclass(frozen=True)
class Access:
    """Who may read: everyone who can connect (loopback), or whoever shows the token."""

    token: str | None
    hosts: frozenset[str]  # Host header values accepted (DNS rebinding: a web page must not read a local run)

    def allows(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())


def check_exposure(listen: Listen, token_file: Path | None) -> None:
    """Refuse to serve runs beyond loopback to readers without a token."""
    if not listen.local and token_file is None:
        raise InputError(
            f"refusing to serve runs on {listen.host}, which is not this machine's loopback: anyone who can reach "
            "it would read the incident. Give --token-file FILE (readers then need the token), or listen on "
            "127.0.0.1 behind a reverse proxy that authenticates (docs/web.md)"
        )


def access_for(listen: Listen, port: int, token: str | None, extra_hosts: tuple[str, ...] = ()) -> Access:
    """The access policy of a server bound to ``listen``, on ``port`` once the socket has one."""
    if not listen.local and token is None:
        raise InputError(f"{listen.host} is not loopback: a token is required there")
    names = {listen.host, *LOCAL_HOSTS, *extra_hosts} if listen.local else {listen.host, *extra_hosts}
    hosts = set()
    for name in names:
        shown = f"[{name}]" if ":" in name else name
        hosts |= {shown, f"{shown}:{port}"}
    return Access(token, frozenset(hosts))


def read_token(path: Path) -> str:
    """The token in ``path``: owner-only (as an SSH key is), one line, long enough not to be guessed."""
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"--token-file {path}: not UTF-8 text; put one token on one line") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"--token-file {path}: not a regular file")
    if info.st_mode & 0o077:
        raise InputError(f"--token-file {path}: readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                         f"chmod 600 {path}")
    if len(text) < MIN_TOKEN_CHARS or any(c.isspace() for c in text):
        raise InputError(f"--token-file {path}: the token must be one word of at least {MIN_TOKEN_CHARS} "
                         "characters, e.g. the output of `openssl rand -hex 32`")
    return text


def new_token_file(path: Path) -> str:
    """Write a fresh random token to ``path`` (owner-only) and return it: for tests and first-time setup."""
    import secrets

    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token
