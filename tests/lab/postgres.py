"""A real PostgreSQL server on 127.0.0.1 and a free port, in a throwaway data directory.

initdb refuses to run as root, so under root the server runs as the ``postgres`` user (Debian's package
creates it) or ``nobody``, through ``runuser``. Clients log in over TCP with a password (scram-sha-256) that
only a ``.pgpass`` file holds (``PGPASSFILE``): the way the store is meant to be used. The fixture skips
when no PostgreSQL binaries are installed (.ci/run installs Debian's ``postgresql``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab import free_port, wait_for_port

ADMIN = "bgadmin"
PGPASS_PREFIX = "bg-pgpass-"


def bindir() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    pytest.skip("running as root and neither a postgres nor a nobody user exists to run initdb as")


@dataclass
class PostgresServer:
    """A running server; ``url(db)`` is how the store reaches a database on it (password from PGPASSFILE)."""

    bindir: Path
    root: Path
    port: int
    run_as: list[str]
    fsync: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{ADMIN}@127.0.0.1:{self.port}/{db}"

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.run_as, *args], capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=300")
        result = self._pg(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o",
                          opts, "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            log = (self.root / "log").read_text(errors="replace") if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{log[-2000:]}")
        wait_for_port("127.0.0.1", self.port)

    def stop(self, mode: str = "fast") -> None:
        self._pg(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def admin(self, db: str = "postgres") -> object:
        import psycopg

        return psycopg.connect(self.url(db), autocommit=True)

    def also_on(self, port: int) -> None:
        """Let clients log in through ``port`` too (a proxy in front of the server): .pgpass matches ports."""
        pgpass = Path(os.environ["PGPASSFILE"])
        mine = next(line for line in pgpass.read_text().splitlines() if line.startswith(f"127.0.0.1:{self.port}:"))
        with open(pgpass, "a") as f:
            f.write(mine.replace(f":{self.port}:", f":{port}:", 1) + "\n")

    def new_database(self) -> str:
        """A fresh, empty database for one test."""
        name = f"t_{secrets.token_hex(6)}"
        with self.admin() as conn:  # type: ignore[attr-defined]
            conn.execute(f"CREATE DATABASE {name}")
        return name


def start_server(fsync: bool = False) -> PostgresServer:
    """initdb and start a server in a new temporary directory; the caller stops it and removes ``root``."""
    bins = bindir()
    if bins is None:
        pytest.skip("no PostgreSQL binaries (initdb) found; install Debian's postgresql package")
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="bg-pg-"))
    password = secrets.token_urlsafe(18)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        owner = pwd.getpwnam(run_as[2])
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    os.chmod(root, 0o700)
    server = PostgresServer(bins, root, free_port(), run_as, fsync)
    server._pg(str(bins / "initdb"), "-D", str(server.data), "-U", ADMIN, "--pwfile", str(pwfile),
               "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
    pwfile.unlink()
    # The password lives only in a .pgpass, as an operator's would: never in a URL, argv or the environment.
    # One file for every server this process starts (the session's, and those a test starts to stop).
    current = os.environ.get("PGPASSFILE", "")
    pgpass = Path(current) if PGPASS_PREFIX in current else Path(tempfile.mkdtemp(prefix=PGPASS_PREFIX)) / "pgpass"
    with open(os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as f:
        f.write(f"127.0.0.1:{server.port}:*:{ADMIN}:{password}\n")
    os.environ["PGPASSFILE"] = str(pgpass)
    server.start()
    return server


def remove(server: PostgresServer) -> None:
    server.stop("immediate")
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One server for the session (each test takes its own database with ``new_database``)."""
    before = os.environ.get("PGPASSFILE")
    server = start_server()
    try:
        yield server
    finally:
        remove(server)
        shutil.rmtree(Path(os.environ["PGPASSFILE"]).parent, ignore_errors=True)
        if before is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = before
