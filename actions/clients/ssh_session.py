"""One SSH connection for the SSH actions: arguments, host-key checking, jump host, bounded command runs.

paramiko is imported inside functions; its exceptions are translated here into ``SshFailure`` (a message
that reads like advice plus a short ``kind``), which the actions turn into results with ``ok: false``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from actions.base import Params
from actions.clients.ssh_hostkeys import (
    HostKeyRefused,
    changed_key_message,
    fingerprint,
    refusing_policy,
)
from engine.errors import ActionError

if TYPE_CHECKING:
    import paramiko


class JumpHost(Params):
    """A bastion to go through: the target is reached over a direct-tcpip channel opened on it."""

    host: str = Field(description="Bastion host name or address.")
    port: int = Field(22, ge=1, le=65535, description="Bastion SSH port.")
    user: str = Field(description="User to log in as on the bastion.")
    key_file: str | None = Field(None, description="Private key for the bastion (else the SSH agent).")


class SshConnection(Params):
    """Arguments shared by every SSH action: where to connect and how to prove who we are."""

    host: str = Field(description="Host name or address to connect to.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str = Field(description="User to log in as.")
    key_file: str | None = Field(None, description="Path of a private key file.")
    key_passphrase: str | None = Field(None, description="Passphrase of key_file (secret).")
    password: str | None = Field(None, description="Password (secret); prefer keys.")
    use_agent: bool = Field(False, description="Also offer the keys held by the SSH agent (SSH_AUTH_SOCK).")
    known_hosts: str = Field(
        "~/.ssh/known_hosts", description="known_hosts file the server's host key is checked against."
    )
    accept_new_host_key: bool = Field(
        False,
        description="Trust and record a host key absent from known_hosts (never a changed one). "
        "Off by default: unknown keys are refused with their fingerprint.",
    )
    jump_host: JumpHost | None = Field(
        None, description="Bastion to connect through: {host, port, user, key_file}."
    )
    connect_timeout: float = Field(
        10.0, gt=0, description="Seconds allowed for TCP connect, banner and auth."
    )


class SshFailure(ActionError):
    """The connection or session failed; ``kind`` is one of connect, host_key_unknown, host_key_changed,
    auth, ssh, credentials."""

    def __init__(self, message: str, kind: str, fingerprint: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.fingerprint = fingerprint


@dataclass
class Session:
    """A logged-in SSH client, the bastion it goes through (if any) and the verified host key."""

    client: paramiko.SSHClient
    host_key_type: str
    host_key_fingerprint: str
    jump: paramiko.SSHClient | None = None

    def close(self) -> None:
        self.client.close()
        if self.jump is not None:
            self.jump.close()


def secrets_of(p: SshConnection) -> tuple[str, ...]:
    """Secret argument values, handed to the engine so it redacts them wherever they appear."""
    return tuple(v for v in (p.password, p.key_passphrase) if v)


@contextmanager
def open_session(p: SshConnection) -> Iterator[Session]:
    """Connect (through the jump host if set), verify the host key, authenticate; close on exit."""
    known_hosts = Path(p.known_hosts).expanduser()
    jump = None
    try:
        sock = None
        if p.jump_host is not None:
            jh = p.jump_host
            jump = _login(jh.host, jh.port, jh.user, known_hosts, p, key_file=jh.key_file, bastion=True)
            sock = _tunnel(jump, p)
        client = _login(p.host, p.port, p.user, known_hosts, p, key_file=p.key_file, sock=sock)
    except BaseException:
        if jump is not None:
            jump.close()
        raise
    key = client.get_transport().get_remote_server_key()
    session = Session(client, key.get_name(), fingerprint(key), jump)
    try:
        yield session
    finally:
        session.close()


def _login(
    host: str,
    port: int,
    user: str,
    known_hosts: Path,
    p: SshConnection,
    *,
    key_file: str | None,
    sock: paramiko.Channel | None = None,
    bastion: bool = False,
) -> paramiko.SSHClient:
    import paramiko

    if not (key_file or p.use_agent or (p.password and not bastion)):
        raise SshFailure(
            f"no credentials for {user}@{host}:{port}: set key_file, password or use_agent: true",
            "credentials",
        )
    client = paramiko.SSHClient()
    if known_hosts.is_file():
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(refusing_policy(known_hosts, p.accept_new_host_key))
    where = f"{'bastion ' if bastion else ''}{user}@{host}:{port}"
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=str(Path(key_file).expanduser()) if key_file else None,
            passphrase=p.key_passphrase,
            password=None if bastion else p.password,
            allow_agent=p.use_agent,
            look_for_keys=False,  # only the credentials the runbook names: no surprise keys from ~/.ssh
            timeout=p.connect_timeout,
            banner_timeout=p.connect_timeout,
            auth_timeout=p.connect_timeout,
            sock=sock,
        )
    except BaseException as exc:
        client.close()
        raise _translate(exc, where, host, port, known_hosts) from exc
    return client


def _tunnel(jump: paramiko.SSHClient, p: SshConnection) -> paramiko.Channel:
    import paramiko

    transport = jump.get_transport()
    assert transport is not None  # connect() succeeded, so the transport exists
    try:
        return transport.open_channel(
            "direct-tcpip", (p.host, p.port), ("127.0.0.1", 0), timeout=p.connect_timeout
        )
    except (paramiko.SSHException, OSError) as exc:
        assert p.jump_host is not None
        raise SshFailure(
            f"bastion {p.jump_host.host} could not open a channel to {p.host}:{p.port}: "
            f"{exc or type(exc).__name__} "
            "(is AllowTcpForwarding enabled there, and is the target reachable from it?)",
            "connect",
        ) from exc


def _translate(exc: BaseException, where: str, host: str, port: int, known_hosts: Path) -> BaseException:
    """Turn a paramiko or socket exception into an SshFailure; anything else passes through unchanged."""
    import paramiko

    if isinstance(exc, HostKeyRefused):
        kind = "host_key_changed" if exc.changed else "host_key_unknown"
        return SshFailure(str(exc), kind, exc.fingerprint)
    if isinstance(exc, paramiko.BadHostKeyException):
        message = changed_key_message(host, port, exc.key, exc.expected_key, known_hosts)
        return SshFailure(message, "host_key_changed", fingerprint(exc.key))
    if isinstance(exc, paramiko.PasswordRequiredException):
        return SshFailure(f"{where}: the private key is encrypted; set key_passphrase", "credentials")
    if isinstance(exc, paramiko.AuthenticationException):
        return SshFailure(f"authentication failed for {where}: {exc}; check the user and key", "auth")
    if isinstance(exc, socket.timeout | TimeoutError):
        return SshFailure(f"cannot connect to {where}: timed out", "connect")
    if isinstance(exc, paramiko.SSHException):
        return SshFailure(f"SSH error with {where}: {exc}", "ssh")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return SshFailure(f"cannot connect to {where}: {reason}", "connect")
    return exc


@dataclass
class BoundedBuffer:
    """Keeps the first ``limit`` bytes of a stream and counts the rest: a chatty command cannot eat memory."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class ExecOutcome:
    """What a remote command produced; exit_code is None when it was stopped (timeout or cancel)."""

    exit_code: int | None
    stdout: BoundedBuffer
    stderr: BoundedBuffer
    duration_ms: int
    timed_out: bool = False
    cancelled: bool = False


def execute(
    client: paramiko.SSHClient, command: str, timeout: float, max_output: int, cancel: threading.Event
) -> ExecOutcome:
    """Run one command in a new channel, reading stdout and stderr until exit, timeout or cancel."""
    transport = client.get_transport()
    assert transport is not None  # the session is open
    started = time.monotonic()
    chan = transport.open_session(timeout=timeout)
    out, err = BoundedBuffer(max_output), BoundedBuffer(max_output)
    try:
        chan.exec_command(command)
        chan.shutdown_write()  # no stdin: a command that reads it sees EOF instead of hanging until timeout
        stopped = _pump(chan, out, err, started + timeout, cancel)
        code = None if stopped else chan.recv_exit_status()
    finally:
        chan.close()
    return ExecOutcome(
        exit_code=code,
        stdout=out,
        stderr=err,
        duration_ms=round((time.monotonic() - started) * 1000),
        timed_out=stopped == "timeout",
        cancelled=stopped == "cancel",
    )


def _pump(
    chan: paramiko.Channel, out: BoundedBuffer, err: BoundedBuffer, deadline: float, cancel: threading.Event
) -> str | None:
    """Drain both streams; returns "timeout" or "cancel" when stopped early, None when the command ended."""
    while True:
        busy = False
        if chan.recv_ready():
            out.add(chan.recv(65536))
            busy = True
        if chan.recv_stderr_ready():
            err.add(chan.recv_stderr(65536))
            busy = True
        # sshd may send exit-status before the last output; wait for EOF too, as ssh(1) does.
        if not busy and chan.exit_status_ready() and (chan.eof_received or chan.closed):
            return None
        if time.monotonic() > deadline:
            return "timeout"
        if cancel.is_set():
            return "cancel"
        if not busy:
            cancel.wait(0.02)
