"""Host-key checking for the SSH actions: refuse what known_hosts does not vouch for, and say how to fix it.

An incident is exactly when someone may be impersonating a host (a hijacked IP, a poisoned DNS record), so
an unknown key is never trusted on first use and a changed key is refused loudly, as OpenSSH does with
``StrictHostKeyChecking yes``. The messages show the key type and the SHA256 fingerprint in OpenSSH's
format (``SHA256:`` + unpadded base64) so an operator can compare it with ``ssh-keygen -lf`` on the console.

paramiko is imported lazily: listing actions must not pay for it.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ActionError

if TYPE_CHECKING:
    import paramiko


class HostKeyRefused(ActionError):
    """The server's host key is not in known_hosts, or differs from the one recorded there."""

    def __init__(self, message: str, *, changed: bool, fingerprint: str, key_type: str) -> None:
        super().__init__(message)
        self.changed = changed
        self.fingerprint = fingerprint
        self.key_type = key_type


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint of a public key: ``SHA256:`` + base64 without padding."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare for port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def keyscan_hint(host: str, port: int, known_hosts: Path) -> str:
    """The command that records the host's key, to run only after checking the fingerprint out of band."""
    port_opt = "" if port == 22 else f"-p {port} "
    return f"ssh-keyscan {port_opt}{shlex.quote(host)} >> {shlex.quote(str(known_hosts))}"


def unknown_key_message(host: str, port: int, key: paramiko.PKey, known_hosts: Path) -> str:
    return (
        f"host key of {known_hosts_name(host, port)} is not in {known_hosts}: "
        f"the server offered {key.get_name()} {fingerprint(key)}. Refusing to connect. "
        "Compare that fingerprint with the one the host's console shows "
        "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then record it with: "
        f"{keyscan_hint(host, port, known_hosts)} "
        "(or set accept_new_host_key: true to trust it on first use)"
    )


def changed_key_message(
    host: str, port: int, offered: paramiko.PKey, expected: paramiko.PKey, known_hosts: Path
) -> str:
    name = known_hosts_name(host, port)
    return (
        f"WARNING: HOST KEY OF {name} HAS CHANGED. Someone could be intercepting the connection "
        f"(man-in-the-middle), or the host was reinstalled. known_hosts ({known_hosts}) expects "
        f"{expected.get_name()} {fingerprint(expected)}; the server offered "
        f"{offered.get_name()} {fingerprint(offered)}. Refusing to connect. Only if the change is "
        f"confirmed out of band: ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(str(known_hosts))} "
        f"and then {keyscan_hint(host, port, known_hosts)}"
    )


def refusing_policy(known_hosts: Path, accept_new: bool) -> Any:
    """A paramiko MissingHostKeyPolicy that raises HostKeyRefused, or (opt-in) records a new key.

    Built in a function so that paramiko's class is only imported when a connection is made. Accepting a
    new key only ever applies to a host absent from known_hosts: a changed key never reaches a policy
    (paramiko raises BadHostKeyException before), so it stays refused whatever the option says.
    """
    import paramiko

    class RefuseUnknownHostKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            host, port = _split_known_hosts_name(hostname)
            if accept_new:
                _append_known_host(known_hosts, hostname, key)
                return
            raise HostKeyRefused(
                unknown_key_message(host, port, key, known_hosts),
                changed=False,
                fingerprint=fingerprint(key),
                key_type=key.get_name(),
            )

    return RefuseUnknownHostKey()


def _split_known_hosts_name(name: str) -> tuple[str, int]:
    if name.startswith("[") and "]:" in name:
        host, _, port = name[1:].rpartition("]:")
        return host, int(port)
    return name, 22


def _append_known_host(known_hosts: Path, name: str, key: paramiko.PKey) -> None:
    # Append rather than rewrite: paramiko's save_host_keys would drop comments and @cert-authority lines.
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    with known_hosts.open("a", encoding="ascii") as f:
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
