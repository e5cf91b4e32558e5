"""ssh.run, ssh.upload and ssh.download against a real OpenSSH sshd on loopback."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext, ActionResult, Effect
from actions.ssh import SshDownload, SshRun, SshUpload
from tests.lab.sshd import SshServer, keygen, known_hosts_line


def run(
    server: SshServer, command: str | list[str], ctx: ActionContext | None = None, **extra: Any
) -> ActionResult:
    action = SshRun()
    params = action.Params(**server.params(command=command, read_only=True, **extra))
    return action.run(params, ctx or ActionContext())


def openssh_fingerprint(pub: Path) -> str:
    """The fingerprint as OpenSSH itself prints it, to check ours against."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def test_listing_actions_does_not_import_paramiko() -> None:
    code = "import sys, actions.ssh; sys.exit('paramiko' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_runs_argv_command_and_reports_host_key(sshd: SshServer) -> None:
    result = run(sshd, ["printf", "%s|", "two words", "$HOME"])
    assert result.ok, result.message
    # shlex.join quoted each item: no word splitting, no variable expansion on the far side
    assert result.output["stdout"] == "two words|$HOME|"
    assert result.output["exit_code"] == 0
    assert result.output["host_key"]["fingerprint"] == openssh_fingerprint(sshd.host_key_pub)
    assert result.output["duration_ms"] >= 0


def test_string_command_goes_to_remote_shell(sshd: SshServer) -> None:
    result = run(sshd, "echo out; echo err >&2; exit 3", expect_exit=[0, 3])
    assert result.ok
    assert (result.output["stdout"], result.output["stderr"], result.output["exit_code"]) == (
        "out\n",
        "err\n",
        3,
    )


def test_unexpected_exit_code_fails_with_stderr_in_message(sshd: SshServer) -> None:
    result = run(sshd, "echo 'disk full' >&2; exit 7")
    assert not result.ok
    assert result.output["exit_code"] == 7
    assert "exited 7" in result.message and "disk full" in result.message


def test_output_is_bounded_and_marked_truncated(sshd: SshServer) -> None:
    result = run(sshd, "head -c 100000 /dev/zero | tr '\\0' x", max_output=1000)
    assert result.ok
    assert result.output["stdout"] == "x" * 1000
    assert result.output["stdout_truncated"] is True
    assert result.output["stdout_bytes"] == 100000
    assert result.output["stderr_truncated"] is False


def test_command_timeout_is_a_failed_result(sshd: SshServer) -> None:
    result = run(sshd, "sleep 30", command_timeout=1)
    assert not result.ok
    assert result.output["timed_out"] is True
    assert result.output["exit_code"] is None
    assert result.output["duration_ms"] < 10000
    assert "still running after 1.0s" in result.message


def test_cancel_stops_a_running_command(sshd: SshServer) -> None:
    ctx = ActionContext()
    threading.Timer(0.5, ctx.cancel.set).start()
    result = run(sshd, "sleep 30", ctx)
    assert not result.ok and result.output["cancelled"] is True


def test_unknown_host_key_is_refused_with_fingerprint_and_advice(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = run(sshd, "true", known_hosts=str(empty))
    assert not result.ok
    assert result.output["error"] == "host_key_unknown"
    fp = openssh_fingerprint(sshd.host_key_pub)
    assert f"ssh-ed25519 {fp}" in result.message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in result.message
    assert empty.read_text() == ""  # nothing was recorded


def test_accept_new_host_key_records_it_then_connects(sshd: SshServer, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    first = run(sshd, "true", known_hosts=str(kh), accept_new_host_key=True)
    assert first.ok, first.message
    assert kh.read_text() == known_hosts_line("127.0.0.1", sshd.port, sshd.host_key_pub).replace(
        " breakglass-test", ""
    )
    assert run(sshd, "true", known_hosts=str(kh)).ok


def test_changed_host_key_is_refused_loudly_even_with_accept_new(sshd: SshServer, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "other_host_key")
    kh = tmp_path / "known_hosts"
    kh.write_text(known_hosts_line("127.0.0.1", sshd.port, Path(f"{impostor}.pub")))
    result = run(sshd, "true", known_hosts=str(kh), accept_new_host_key=True)
    assert not result.ok
    assert result.output["error"] == "host_key_changed"
    assert "HAS CHANGED" in result.message
    assert openssh_fingerprint(sshd.host_key_pub) in result.message
    assert openssh_fingerprint(Path(f"{impostor}.pub")) in result.message


def test_wrong_user_key_is_an_auth_failure(sshd: SshServer, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    result = run(sshd, "true", key_file=str(stranger))
    assert not result.ok and result.output["error"] == "auth"
    assert "authentication failed for root@127.0.0.1" in result.message


def test_connection_refused_is_a_result(sshd: SshServer) -> None:
    from tests.lab import free_port

    result = run(sshd, "true", port=free_port(), connect_timeout=3)
    assert not result.ok and result.output["error"] == "connect"
    assert "cannot connect" in result.message


def test_password_is_secret_and_effect_follows_read_only(sshd: SshServer) -> None:
    action = SshRun()
    assert action.secret_params == frozenset({"password", "key_passphrase"})
    params = action.Params(**sshd.params(command="true", password="hunter2-secret"))
    assert SshRun.effect_of({"command": "true"}) is Effect.WRITE
    assert SshRun.effect_of({"command": "true", "read_only": True}) is Effect.READ
    plan = action.plan(params, ActionContext())
    assert "hunter2-secret" not in repr(plan)
    assert plan.summary.endswith(": true")
    result = action.apply(params, ActionContext(), plan)  # the key works; the password is never needed
    assert result.ok and "hunter2-secret" in result.secrets


def test_jump_host_reaches_target_through_bastion(sshd: SshServer) -> None:
    bastion = {"host": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(sshd.key_file)}
    result = run(sshd, "echo via-bastion", jump_host=bastion)
    assert result.ok, result.message
    assert result.output["stdout"] == "via-bastion\n"
    assert result.output["jump_host"] == f"root@127.0.0.1:{sshd.port}"


def test_jump_host_that_cannot_reach_target_is_a_result(sshd: SshServer) -> None:
    from tests.lab import free_port

    bastion = {"host": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(sshd.key_file)}
    result = run(sshd, "true", jump_host=bastion, port=free_port())
    assert not result.ok and result.output["error"] == "connect"
    # the lab sshd only permits channels to itself (PermitOpen): the refusal proves the bastion opened it
    assert "bastion 127.0.0.1 could not open a channel" in result.message
    assert "Administratively prohibited" in result.message


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_upload_file_is_verified_by_sha256(sshd: SshServer, tmp_path: Path) -> None:
    src = tmp_path / "backup.tar"
    src.write_bytes(bytes(range(256)) * 4096)
    dest = sshd.root / "restore" / "backup.tar"
    action = SshUpload()
    params = action.Params(**sshd.params(local=str(src), remote=str(dest)))
    plan = action.plan(params, ActionContext())
    assert "1 file(s), 1048576 bytes" in plan.summary
    assert not dest.exists()  # planning changed nothing
    result = action.apply(params, ActionContext(), plan)
    assert result.ok, result.message
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert result.output["files"] == [
        {"local": str(src), "remote": str(dest), "size": 1048576, "sha256": digest}
    ]
    assert result.output["verified_by"] == "sha256sum"
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest


def test_upload_and_download_directory_round_trip(sshd: SshServer, tmp_path: Path) -> None:
    src = tmp_path / "site"
    (src / "css").mkdir(parents=True)
    (src / "index.html").write_text("<h1>standby</h1>")
    (src / "css" / "a b.css").write_text("body{}")
    (src / "empty").mkdir()
    remote = sshd.root / "www"
    up = SshUpload()
    up_params = up.Params(**sshd.params(local=str(src), remote=str(remote)))
    uploaded = up.apply(up_params, ActionContext(), up.plan(up_params, ActionContext()))
    assert uploaded.ok, uploaded.message
    assert _tree(remote) == _tree(src)
    assert (remote / "empty").is_dir()

    back = tmp_path / "back"
    down = SshDownload()
    assert down.effect is Effect.READ
    got = down.run(down.Params(**sshd.params(remote=str(remote), local=str(back))), ActionContext())
    assert got.ok, got.message
    assert _tree(back) == _tree(src)
    assert sorted(f["remote"] for f in got.output["files"]) == [
        str(remote / "css" / "a b.css"),
        str(remote / "index.html"),
    ]
    assert all(len(f["sha256"]) == 64 for f in got.output["files"])


def test_download_of_missing_path_is_a_failed_result(sshd: SshServer, tmp_path: Path) -> None:
    down = SshDownload()
    params = down.Params(**sshd.params(remote="/nonexistent/backup.tar", local=str(tmp_path / "x")))
    result = down.run(params, ActionContext())
    assert not result.ok and "download" in result.message and "failed" in result.message


@pytest.mark.parametrize("action", [SshUpload(), SshDownload()])
def test_transfers_refuse_unknown_host_key(sshd: SshServer, tmp_path: Path, action: Any) -> None:
    (tmp_path / "f").write_text("x")
    params = action.Params(
        **sshd.params(
            local=str(tmp_path / "f"), remote=str(sshd.root / "f"), known_hosts=str(tmp_path / "none")
        )
    )
    result = (
        action.run(params, ActionContext())
        if action.effect is Effect.READ
        else action.apply(params, ActionContext(), action.plan(params, ActionContext()))
    )
    assert not result.ok and result.output["error"] == "host_key_unknown"


def test_verification_catches_a_remote_copy_that_differs(sshd: SshServer, tmp_path: Path) -> None:
    from actions.clients.ssh_session import open_session
    from actions.clients.ssh_transfer import FilePair, TransferMismatch, remote_digests, verify

    src = tmp_path / "dump.sql"
    src.write_text("INSERT 1;\n")
    remote = sshd.root / "dump.sql"
    remote.write_text("INSERT 2;\n")  # same size, different bytes: only the digest can tell
    params = SshRun.Params(**sshd.params(command="true"))
    with open_session(params) as session, session.client.open_sftp() as sftp:
        digests, method = remote_digests(session.client, sftp, [str(remote)], threading.Event())
        assert method == "sha256sum"
        with pytest.raises(TransferMismatch, match="differs after transfer"):
            verify([FilePair(src, str(remote))], sftp, digests)


def test_upload_keeps_a_copy_and_its_undo_puts_the_host_back(sshd: SshServer, tmp_path: Path) -> None:
    """What `rollback: auto` runs: ssh.upload with the `restore` its undo() writes from the step's output."""
    from engine import templates

    remote = sshd.root / "undo-www"
    remote.mkdir()
    (remote / "index.html").write_text("the old page")
    src = tmp_path / "site"
    src.mkdir()
    (src / "index.html").write_text("the new page")
    (src / "new.css").write_text("body{}")
    up = SshUpload()
    args = sshd.params(local=str(src), remote=str(remote), keep_copy=True)
    params = up.Params(**args)
    ctx = ActionContext(run_id="r1", step_id="publish")
    result = up.apply(params, ctx, up.plan(params, ctx))
    assert result.ok, result.message
    assert (remote / "index.html").read_text() == "the new page"
    copy = f"{remote}/index.html.breakglass-r1-publish"
    assert result.output["undo"] == {"restore": [{"remote": f"{remote}/index.html", "copy": copy}],
                                     "remove": [f"{remote}/new.css"]}

    undo_args = SshUpload.undo(args, "steps.publish.output")
    assert undo_args is not None
    rendered = templates.render_value(undo_args, {"steps": {"publish": {"output": result.output}}})
    back = up.Params(**rendered)
    plan = up.plan(back, ActionContext())
    assert plan.summary.startswith("put back 1 file(s)") and "remove 1" in plan.summary
    undone = up.apply(back, ActionContext(), plan)
    assert undone.ok, undone.message
    assert (remote / "index.html").read_text() == "the old page"
    assert sorted(p.name for p in remote.iterdir()) == ["index.html"], "the copy is used up, new files removed"


def test_undo_without_a_kept_copy_says_so(sshd: SshServer, tmp_path: Path) -> None:
    remote = sshd.root / "undo-conf"
    remote.mkdir()
    (remote / "app.conf").write_text("old")
    src = tmp_path / "app.conf"
    src.write_text("new")
    up = SshUpload()
    args = sshd.params(local=str(src), remote=f"{remote}/app.conf")
    params = up.Params(**args)
    result = up.apply(params, ActionContext(), up.plan(params, ActionContext()))
    assert result.ok and result.output["undo"]["restore"] == [{"remote": f"{remote}/app.conf", "copy": None}]
    back = up.Params(**{**args, "restore": result.output["undo"]})
    undone = up.apply(back, ActionContext(), up.plan(back, ActionContext()))
    assert not undone.ok and "no copy was kept" in undone.message
    assert (remote / "app.conf").read_text() == "new", "nothing guessed: the file is left as it is"
