"""SFTP copies for ssh.upload and ssh.download: files or whole directories, each verified by size and SHA-256.

The remote digest comes from ``sha256sum`` run on the host, so the check covers the bytes as the far disk
holds them, not just the stream we sent; hosts without coreutils fall back to reading the file back over
SFTP. A backup restored onto a standby is only worth something if it is bit-identical.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actions.clients.ssh_session import execute
from engine.errors import ActionError

if TYPE_CHECKING:
    import paramiko

_CHUNK = 1 << 20
_HASH_BATCH = 100  # files per sha256sum call: keeps the command line far below ARG_MAX
Progress = Callable[[str], None]
_DIGEST = re.compile(r"^\\?([0-9a-f]{64}) ")


@dataclass(frozen=True)
class FilePair:
    """One file to copy: its local path and its remote (POSIX) path."""

    local: Path
    remote: str


class TransferMismatch(ActionError):
    """A copied file differs from its source in size or SHA-256."""


def local_pairs(local: Path, remote: str) -> tuple[list[FilePair], list[str]]:
    """Files under ``local`` (a file or a directory) mapped to remote paths, and remote dirs to create."""
    if local.is_file():
        parent = posixpath.dirname(remote)
        return [FilePair(local, remote)], [parent] if parent else []
    if not local.is_dir():
        raise FileNotFoundError(f"local path {local} does not exist")
    pairs, dirs = [], [remote]
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local).as_posix()
        if path.is_dir():
            dirs.append(posixpath.join(remote, rel))
        elif path.is_file():
            pairs.append(FilePair(path, posixpath.join(remote, rel)))
    return pairs, dirs


def remote_pairs(sftp: paramiko.SFTPClient, remote: str, local: Path) -> tuple[list[FilePair], list[Path]]:
    """Files under ``remote`` (a file or a directory) mapped to local paths, and local dirs to create."""
    if not stat.S_ISDIR(sftp.stat(remote).st_mode or 0):
        return [FilePair(local, remote)], []
    pairs: list[FilePair] = []
    dirs = [local]
    pending = [(remote, local)]
    while pending:
        rdir, ldir = pending.pop()
        for entry in sorted(sftp.listdir_attr(rdir), key=lambda e: e.filename):
            rpath, lpath = posixpath.join(rdir, entry.filename), ldir / entry.filename
            mode = entry.st_mode or 0
            if stat.S_ISDIR(mode):
                dirs.append(lpath)
                pending.append((rpath, lpath))
            elif stat.S_ISREG(mode):
                pairs.append(FilePair(lpath, rpath))
    return sorted(pairs, key=lambda p: p.remote), dirs


def naming(exc: OSError, path: str) -> OSError:
    """The same error with the path in it: paramiko's SFTP errors say "No such file" but not which one."""
    if exc.filename:
        return exc
    return type(exc)(exc.errno or 0, exc.strerror or str(exc) or type(exc).__name__, path)


def put_files(sftp: paramiko.SFTPClient, local: Path, remote: str, progress: Progress,
              kept: Callable[[str], str | None] | None = None,
              undo: dict[str, list[Any]] | None = None) -> list[FilePair]:
    """Upload a file or a directory tree; returns what was copied.

    ``kept``: where to move a remote file before it is replaced (None: replace it in place); ``undo``
    collects what would put the host back: ``restore`` [{remote, copy}] (copy None when none was kept) and
    ``remove`` [remote] for files that did not exist."""
    pairs, dirs = local_pairs(local, remote)
    make_remote_dirs(sftp, dirs)
    for n, pair in enumerate(pairs, 1):
        progress(f"upload {n}/{len(pairs)}: {pair.remote}")
        try:
            if undo is not None:
                _note_before(sftp, pair.remote, kept, undo)
            sftp.put(str(pair.local), pair.remote, confirm=True)  # confirm: paramiko checks the size
        except OSError as exc:
            raise naming(exc, pair.remote) from exc
    return pairs


def _note_before(sftp: paramiko.SFTPClient, remote: str, kept: Callable[[str], str | None] | None,
                 undo: dict[str, list[Any]]) -> None:
    try:
        sftp.stat(remote)
    except FileNotFoundError:
        undo["remove"].append(remote)
        return
    copy = kept(remote) if kept is not None else None
    if copy is not None:
        # A rename on the same file system: the old content is never half-copied, and it stays untouched.
        sftp.posix_rename(remote, copy)
    undo["restore"].append({"remote": remote, "copy": copy})


def restore_files(sftp: paramiko.SFTPClient, undo: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Put back what ``put_files`` recorded in ``undo``: each kept copy over the file it was, and remove the
    files that did not exist. Returns what was done and what could not be (a file replaced without a copy)."""
    restored, removed, missing = [], [], []
    for item in undo.get("restore") or []:
        remote, copy = str(item["remote"]), item.get("copy")
        if not copy:
            missing.append(remote)
            continue
        progress(f"put back {remote}")
        try:
            sftp.posix_rename(str(copy), remote)
        except OSError as exc:
            raise naming(exc, str(copy)) from exc
        restored.append(remote)
    for remote in undo.get("remove") or []:
        try:
            sftp.remove(str(remote))
        except FileNotFoundError:
            pass  # already gone: what the undo wants
        except OSError as exc:
            raise naming(exc, str(remote)) from exc
        removed.append(str(remote))
    return {"restored": restored, "removed": removed, "not_kept": missing}


def get_files(sftp: paramiko.SFTPClient, remote: str, local: Path, progress: Progress) -> list[FilePair]:
    """Download a file or a directory tree; returns what was copied."""
    try:
        pairs, dirs = remote_pairs(sftp, remote, local)
    except OSError as exc:
        raise naming(exc, remote) from exc
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for n, pair in enumerate(pairs, 1):
        progress(f"download {n}/{len(pairs)}: {pair.remote}")
        pair.local.parent.mkdir(parents=True, exist_ok=True)
        try:
            sftp.get(pair.remote, str(pair.local))
        except OSError as exc:
            raise naming(exc, pair.remote) from exc
    return pairs


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_remote_dirs(sftp: paramiko.SFTPClient, dirs: Iterable[str]) -> None:
    """``mkdir -p`` for each directory, over SFTP."""
    for d in dirs:
        path = ""
        for part in d.split("/"):
            path = f"{path}/{part}" if path or d.startswith("/") else part
            if not part:
                continue
            try:
                sftp.stat(path)
            except FileNotFoundError:
                sftp.mkdir(path)


def remote_digests(
    client: paramiko.SSHClient, sftp: paramiko.SFTPClient, paths: list[str], cancel: threading.Event
) -> tuple[dict[str, str], str]:
    """SHA-256 of remote files, and how it was obtained (``sha256sum`` on the host or ``sftp-reread``)."""
    found: dict[str, str] = {}
    for start in range(0, len(paths), _HASH_BATCH):
        batch = paths[start : start + _HASH_BATCH]
        got = _sha256sum(client, batch, cancel)
        if got is None:
            return {p: _sha256_over_sftp(sftp, p) for p in paths}, "sftp-reread"
        found.update(got)
    return found, "sha256sum"


def _sha256sum(
    client: paramiko.SSHClient, paths: list[str], cancel: threading.Event
) -> dict[str, str] | None:
    """Digests from the host's sha256sum, in argument order; None when it is missing or its output is odd."""
    outcome = execute(client, shlex.join(["sha256sum", "--", *paths]), 600.0, 1 << 20, cancel)
    lines = outcome.stdout.text().splitlines()
    if outcome.exit_code != 0 or outcome.stdout.truncated or len(lines) != len(paths):
        return None
    digests = {}
    for path, line in zip(paths, lines, strict=True):
        m = _DIGEST.match(line)
        if m is None:
            return None
        digests[path] = m.group(1)
    return digests


def _sha256_over_sftp(sftp: paramiko.SFTPClient, path: str) -> str:
    digest = hashlib.sha256()
    with sftp.open(path, "rb") as f:
        f.prefetch()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(pairs: list[FilePair], sftp: paramiko.SFTPClient, remote: dict[str, str]) -> list[dict[str, Any]]:
    """Compare size and SHA-256 of both copies of each file; TransferMismatch on the first difference."""
    rows = []
    for pair in pairs:
        local_size = pair.local.stat().st_size
        remote_size = sftp.stat(pair.remote).st_size
        local_sha = sha256_file(pair.local)
        if local_size != remote_size or local_sha != remote[pair.remote]:
            raise TransferMismatch(
                f"{pair.remote} differs after transfer: local {local_size} bytes sha256 {local_sha}, "
                f"remote {remote_size} bytes sha256 {remote[pair.remote]}"
            )
        rows.append(
            {"local": str(pair.local), "remote": pair.remote, "size": local_size, "sha256": local_sha}
        )
    return rows
