"""A real OpenSSH sshd on 127.0.0.1 and a free port, with a throwaway host key and user key.

It runs in the foreground (``-D -e``) from a config written to a temporary directory, so nothing of the
machine's own sshd setup is used or touched. It needs root (privilege separation and logging in as root)
and /usr/sbin/sshd; the fixture skips otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab import free_port, wait_for_port

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class SshServer:
    """Where the lab sshd listens and the files a client needs to log in to it."""

    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    host_key_pub: Path
    root: Path

    def params(self, **extra: object) -> dict[str, object]:
        """Connection arguments for the SSH actions."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
            **extra,
        }


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A new passphrase-less key pair at ``path`` (and ``path.pub``)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "breakglass-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def known_hosts_line(host: str, port: int, pub: Path) -> str:
    key_type, key_b64 = pub.read_text().split()[:2]
    return f"[{host}]:{port} {key_type} {key_b64}\n"


def _config(root: Path, port: int, host_key: Path, authorized: Path) -> Path:
    config = root / "sshd_config"
    config.write_text(
        f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root / "sshd.pid"}
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
PermitOpen 127.0.0.1:{port}
"""
    )
    return config


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """Start sshd for the module's tests; stop it afterwards."""
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server is not installed (.ci/run installs openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("the lab sshd needs root for privilege separation")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    root = tmp_path_factory.mktemp("sshd")
    host_key = keygen(root / "host_ed25519")
    user_key = keygen(root / "user_ed25519")
    authorized = root / "authorized_keys"
    authorized.write_text((root / "user_ed25519.pub").read_text())
    port = free_port()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(known_hosts_line("127.0.0.1", port, root / "host_ed25519.pub"))
    config = _config(root, port, host_key, authorized)
    log = (root / "sshd.log").open("wb")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port)
        yield SshServer("127.0.0.1", port, "root", user_key, known_hosts, root / "host_ed25519.pub", root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
