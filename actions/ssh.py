"""SSH actions: run a command on a host, copy files onto it or off it.

Host keys are checked against known_hosts and unknown or changed keys are refused (see ssh_hostkeys), the
connection can go through a bastion, and every failure (refused key, bad credentials, timeout) comes back
as a result with ``ok: false`` and a message that says what to do. paramiko is imported only when a
connection is made.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Plan
from actions.clients.ssh_session import (
    ExecOutcome,
    Session,
    SshConnection,
    SshFailure,
    execute,
    open_session,
    secrets_of,
)
from actions.clients.ssh_transfer import (
    FilePair,
    TransferMismatch,
    get_files,
    local_pairs,
    put_files,
    remote_digests,
    verify,
)

if TYPE_CHECKING:
    import paramiko

# The engine's default Action.secrets_for reads these, so they are redacted before plan or gate.
_SECRET_PARAMS = frozenset({"password", "key_passphrase"})


class SshRunParams(SshConnection):
    command: str | list[str] = Field(
        description="What to run. A list is an argv: each item is quoted (shlex.join), so values cannot "
        "inject shell syntax. A string is handed to the remote login shell as written (pipes, globs, $VARS "
        "work; quote templated values yourself)."
    )
    read_only: bool = Field(
        False,
        strict=True,
        description="true marks a diagnostic that changes nothing: it runs in dry-runs and is not gated. "
        "Written as a literal true or false, never a template.",
    )
    command_timeout: float = Field(
        60.0, gt=0, description="Seconds the command may run before it is stopped."
    )
    max_output: int = Field(
        65536,
        ge=0,
        description="Bytes of stdout and of stderr kept; the rest is counted and marked truncated.",
    )
    expect_exit: int | list[int] = Field(0, description="Exit code(s) that count as success.")


class SshUploadParams(SshConnection):
    local: str = Field(description="Local file or directory to copy.")
    remote: str = Field(
        description="Remote destination path: the file's new path, or the directory to mirror into."
    )
    keep_copy: bool = Field(
        False,
        description="Before replacing a remote file, move it aside (<file>.breakglass-<run>-<step>) so that "
        "`rollback: auto` can put it back. Without it the undo removes only the files the upload created.",
    )
    restore: dict[str, Any] | None = Field(
        None,
        description="Put back what an earlier upload recorded in its output's `undo` instead of uploading "
        "(what `rollback: auto` writes; `local` is then not read).",
    )


class SshDownloadParams(SshConnection):
    remote: str = Field(description="Remote file or directory to copy.")
    local: str = Field(
        description="Local destination path: the file's new path, or the directory to mirror into."
    )


def _command_text(command: str | list[str]) -> str:
    return shlex.join(command) if isinstance(command, list) else command


def _where(p: SshConnection) -> dict[str, Any]:
    via = f"{p.jump_host.user}@{p.jump_host.host}:{p.jump_host.port}" if p.jump_host else None
    return {"host": p.host, "port": p.port, "user": p.user, "jump_host": via}


def _host_key(session: Session) -> dict[str, str]:
    return {"type": session.host_key_type, "fingerprint": session.host_key_fingerprint}


def _failure(p: SshConnection, exc: SshFailure, **extra: Any) -> ActionResult:
    output = {**_where(p), **extra, "error": exc.kind, "host_key_fingerprint": exc.fingerprint}
    return ActionResult(output=output, ok=False, message=str(exc), secrets=secrets_of(p))


class SshOutput(Output):
    """Where every SSH action ran, or why it could not."""

    host: str = Field(description="The host.")
    port: int = Field(description="The SSH port.")
    user: str = Field(description="The user logged in as.")
    jump_host: str | None = Field(description="The jump host, if any.")
    error: str = Field("", description="What failed (host_key, auth, connect, transfer...), when it failed.")
    host_key_fingerprint: str | None = Field(None, description="The key the host showed, when it was refused.")


class SshRunOutput(SshOutput):
    command: str = Field(description="The command as run.")
    exit_code: int | None = Field(None, description="Its exit status.")
    stdout: str = Field("", description="Standard output, cut at max_output.")
    stderr: str = Field("", description="Standard error, cut at max_output.")
    stdout_truncated: bool = Field(False, description="True when stdout was longer than max_output.")
    stderr_truncated: bool = Field(False, description="True when stderr was longer than max_output.")
    stdout_bytes: int = Field(0, description="Bytes of stdout in all.")
    stderr_bytes: int = Field(0, description="Bytes of stderr in all.")
    duration_ms: float = Field(0, description="How long it ran.")
    timed_out: bool = Field(False, description="True when command_timeout stopped it.")
    cancelled: bool = Field(False, description="True when the step's timeout or Ctrl-C stopped it.")
    host_key: dict[str, str] = Field({}, description="The host key verified: type, fingerprint.")


class SshRun(Action[SshRunParams]):
    """Run a command over SSH; a write unless ``read_only: true``."""

    name = "ssh.run"
    summary = "Run a command on a host over SSH (host key verified against known_hosts)"
    effect = Effect.WRITE
    Output = SshRunOutput
    secret_params: ClassVar[frozenset[str]] = _SECRET_PARAMS
    read_only_flag = "read_only"

    def plan(self, params: SshRunParams, ctx: ActionContext) -> Plan:
        where = _where(params)
        via = f" via {where['jump_host']}" if where["jump_host"] else ""
        command = _command_text(params.command)
        return Plan(
            summary=f"run on {params.user}@{params.host}:{params.port}{via}: {command}",
            changes=[{**where, "command": command, "timeout": params.command_timeout}],
        )

    def run(self, params: SshRunParams, ctx: ActionContext) -> ActionResult:
        return self._execute(params, ctx)

    def apply(self, params: SshRunParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        return self._execute(params, ctx)

    def _execute(self, p: SshRunParams, ctx: ActionContext) -> ActionResult:
        command = _command_text(p.command)
        try:
            with open_session(p) as session:
                outcome = execute(
                    session.client, command, ctx.remaining(p.command_timeout), p.max_output, ctx.cancel
                )
                host_key = _host_key(session)
        except SshFailure as exc:
            return _failure(p, exc, command=command)
        output = {**_where(p), "command": command, **_outcome_fields(outcome), "host_key": host_key}
        ok, message = _judge(p, command, outcome)
        return ActionResult(output=output, ok=ok, message=message, secrets=secrets_of(p))


def _outcome_fields(o: ExecOutcome) -> dict[str, Any]:
    return {
        "exit_code": o.exit_code,
        "stdout": o.stdout.text(),
        "stderr": o.stderr.text(),
        "stdout_truncated": o.stdout.truncated,
        "stderr_truncated": o.stderr.truncated,
        "stdout_bytes": o.stdout.total,
        "stderr_bytes": o.stderr.total,
        "duration_ms": o.duration_ms,
        "timed_out": o.timed_out,
        "cancelled": o.cancelled,
    }


def _judge(p: SshRunParams, command: str, o: ExecOutcome) -> tuple[bool, str]:
    where = f"{p.user}@{p.host}:{p.port}"
    if o.timed_out:
        took = o.duration_ms / 1000
        return False, f"{command!r} on {where} still running after {took:.1f}s (the time allowed); stopped"
    if o.cancelled:
        return False, f"{command!r} on {where} cancelled"
    expected = p.expect_exit if isinstance(p.expect_exit, list) else [p.expect_exit]
    if o.exit_code not in expected:
        last = o.stderr.text().strip().splitlines()[-1:] or [""]
        detail = f": {last[0]}" if last[0] else ""
        return False, f"{command!r} on {where} exited {o.exit_code} (expected {expected}){detail}"
    return True, f"{command!r} on {where} exited {o.exit_code}"


class SshTransferOutput(SshOutput):
    files: list[dict[str, Any]] = Field(description="Each file: local, remote, size.")
    total_bytes: int = Field(description="Bytes transferred.")
    verified_by: str = Field(description="How sizes and SHA-256 were verified.")
    host_key: dict[str, str] = Field(description="The host key verified: type, fingerprint.")
    undo: dict[str, Any] = Field(
        {}, description="ssh.upload: what puts the host back: restore [{remote, copy}] and remove [remote]."
    )
    restored: list[str] = Field([], description="ssh.upload with restore: the files put back from their copy.")
    removed: list[str] = Field([], description="ssh.upload with restore: the files removed (they were new).")


class SshUpload(Action[SshUploadParams]):
    """Copy a local file or directory onto a host over SFTP, verified by size and SHA-256."""

    name = "ssh.upload"
    summary = "Copy a file or directory onto a host over SFTP, verified by SHA-256"
    effect = Effect.WRITE
    Output = SshTransferOutput
    secret_params: ClassVar[frozenset[str]] = _SECRET_PARAMS

    @classmethod
    def undo(cls, args: Mapping[str, Any], recorded: str) -> dict[str, Any] | None:
        # The same host and credentials; what to put back is what the upload recorded, file by file.
        return {**{k: v for k, v in args.items() if k not in ("keep_copy", "restore")},
                "restore": "{{ %s.undo }}" % recorded}

    def plan(self, params: SshUploadParams, ctx: ActionContext) -> Plan:
        if params.restore is not None:
            back, gone = len(params.restore.get("restore") or []), len(params.restore.get("remove") or [])
            return Plan(summary=f"put back {back} file(s) on {params.user}@{params.host}:{params.port} from the "
                        f"copies the upload kept, remove {gone} it created",
                        changes=[{**_where(params), **params.restore}])
        local = Path(params.local).expanduser()
        try:
            pairs, _ = local_pairs(local, params.remote)
        except OSError as exc:
            return Plan(summary=f"cannot upload {local}: {exc}", refused=str(exc))
        sizes = [f.local.stat().st_size for f in pairs]
        files = [
            {"local": str(f.local), "remote": f.remote, "size": n} for f, n in zip(pairs, sizes, strict=True)
        ]
        total = sum(sizes)
        return Plan(
            summary=f"upload {len(files)} file(s), {total} bytes, from {local} to "
            f"{params.user}@{params.host}:{params.remote}",
            changes=[{**_where(params), "files": files}],
        )

    def apply(self, params: SshUploadParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        if params.restore is not None:
            return _restore(params, ctx, params.restore)
        local = Path(params.local).expanduser()
        undo: dict[str, list[Any]] = {"restore": [], "remove": []}
        suffix = f".breakglass-{ctx.run_id}-{ctx.step_id}"
        kept = (lambda remote: remote + suffix) if params.keep_copy else None
        result = _transfer(
            params, ctx, "upload", lambda sftp: put_files(sftp, local, params.remote, ctx.progress, kept, undo)
        )
        if not result.ok and (undo["restore"] or undo["remove"]):
            # A failed step is not rolled back: put the files it moved aside back now, or say what is where.
            back = _restore(params, ctx, undo)
            return ActionResult({**result.output, "undo": undo}, False,
                                f"{result.message}; put back: {back.message}", result.secrets)
        return ActionResult({**result.output, "undo": undo}, result.ok, result.message, result.secrets)


def _restore(p: SshUploadParams, ctx: ActionContext, undo: dict[str, Any]) -> ActionResult:
    from actions.clients.ssh_transfer import restore_files

    try:
        with open_session(p) as session, session.client.open_sftp() as sftp:
            done = restore_files(sftp, undo, ctx.progress)
    except SshFailure as exc:
        return _failure(p, exc)
    except OSError as exc:
        return _transfer_failure(p, "restore", exc)
    output = {**_where(p), "restored": done["restored"], "removed": done["removed"]}
    if done["not_kept"]:
        return ActionResult(output, False, f"no copy was kept of {', '.join(done['not_kept'])} (keep_copy was "
                            "false): put the old content back by hand", secrets_of(p))
    return ActionResult(output, True, f"put back {len(done['restored'])} file(s), removed "
                        f"{len(done['removed'])} new one(s)", secrets_of(p))


class SshDownload(Action[SshDownloadParams]):
    """Copy a remote file or directory to this machine over SFTP, verified by size and SHA-256."""

    name = "ssh.download"
    summary = "Copy a file or directory off a host over SFTP, verified by SHA-256"
    effect = Effect.READ
    Output = SshTransferOutput
    secret_params: ClassVar[frozenset[str]] = _SECRET_PARAMS

    def run(self, params: SshDownloadParams, ctx: ActionContext) -> ActionResult:
        local = Path(params.local).expanduser()
        return _transfer(
            params, ctx, "download", lambda sftp: get_files(sftp, params.remote, local, ctx.progress)
        )


def _transfer(
    p: SshConnection, ctx: ActionContext, verb: str, copy: Callable[[paramiko.SFTPClient], list[FilePair]]
) -> ActionResult:
    """Connect, copy, then verify every file by size and SHA-256 against the host's own reading of it."""
    try:
        with open_session(p) as session, session.client.open_sftp() as sftp:
            pairs = copy(sftp)
            digests, method = remote_digests(session.client, sftp, [f.remote for f in pairs], ctx.cancel)
            files = verify(pairs, sftp, digests)
            host_key = _host_key(session)
    except SshFailure as exc:
        return _failure(p, exc)
    except (OSError, TransferMismatch) as exc:
        return _transfer_failure(p, verb, exc)
    return _transfer_result(p, f"{verb}ed", files, method, host_key)


def _transfer_failure(p: SshConnection, verb: str, exc: Exception) -> ActionResult:
    # paramiko reports a missing remote path as FileNotFoundError with only errno and "No such file".
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    filename = getattr(exc, "filename", None)
    detail = f"{reason}: {filename}" if filename else reason
    return ActionResult(
        output={**_where(p), "error": "transfer"},
        ok=False,
        message=f"{verb} with {p.user}@{p.host}:{p.port} failed: {detail}",
        secrets=secrets_of(p),
    )


def _transfer_result(
    p: SshConnection, verb: str, files: list[dict[str, Any]], method: str, host_key: dict[str, str]
) -> ActionResult:
    total = sum(f["size"] for f in files)
    return ActionResult(
        output={
            **_where(p),
            "files": files,
            "total_bytes": total,
            "verified_by": method,
            "host_key": host_key,
        },
        message=f"{verb} {len(files)} file(s), {total} bytes, sizes and SHA-256 verified ({method})",
        secrets=secrets_of(p),
    )
