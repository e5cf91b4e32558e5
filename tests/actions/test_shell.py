"""shell.run: argv without a shell, clear failures, and no command left running behind a dead engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actions.base import ActionContext, Effect
from actions.shell import ShellRun, ShellRunParams
from tests.conftest import BREAKGLASS


def _run(**params: object) -> tuple[bool, dict, str]:
    action = ShellRun()
    result = action.run(ShellRunParams.model_validate(params), ActionContext())
    return result.ok, result.output, result.message


def test_templated_text_stays_one_argument(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ok, out, _ = _run(argv=["echo", f"example.com; touch {marker}"])
    assert ok and out["stdout"] == f"example.com; touch {marker}\n"
    assert not marker.exists()


def test_missing_program_is_a_clear_failure() -> None:
    ok, out, message = _run(argv=["no-such-program-breakglass"])
    assert not ok and out["exit_code"] is None
    assert message == "cannot run no-such-program-breakglass: not found"


def test_exit_codes_and_ok_codes() -> None:
    assert _run(argv=["sh", "-c", "exit 3"])[:2][0] is False
    ok, out, _ = _run(argv=["sh", "-c", "exit 3"], ok_codes=[0, 3])
    assert ok and out["exit_code"] == 3


def test_stdin_cwd_env_and_output_reach_the_command(tmp_path: Path) -> None:
    big = "x" * 300_000  # more than a pipe holds: fed while the output is read, or both sides would wait
    ok, out, _ = _run(argv=["sh", "-c", 'pwd; echo "$BG_TEST"; wc -c; echo oops >&2; exit 0'], cwd=str(tmp_path),
                      env={"BG_TEST": "from the runbook"}, stdin=big)
    assert ok, out
    assert out["stdout"].split() == [str(tmp_path), "from", "the", "runbook", "300000"]
    assert out["stderr"] == "oops\n" and out["exit_code"] == 0


def test_a_command_that_cannot_start_says_why(tmp_path: Path) -> None:
    ok, out, message = _run(argv=["true"], cwd=str(tmp_path / "gone"))
    assert not ok and out["exit_code"] is None
    assert message == "cannot run true: No such file or directory"
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    ok, _, message = _run(argv=[str(script)])
    assert not ok and message == f"cannot run {script}: Permission denied"


def test_timeout_kills_the_commands_children_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    result = ShellRun().run(ShellRunParams(argv=["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"]),
                            ActionContext(timeout=0.5))
    assert result.output["timed_out"] is True
    _dies(int(pidfile.read_text()), "the command's child kept running after the timeout")


def test_read_only_decides_the_effect() -> None:
    assert ShellRun.effect_of({"argv": ["true"]}) is Effect.WRITE
    assert ShellRun.effect_of({"argv": ["true"], "read_only": True}) is Effect.READ


def test_timeout_kills_the_command() -> None:
    action = ShellRun()
    began = time.monotonic()
    result = action.run(ShellRunParams(argv=["sleep", "30"]), ActionContext(timeout=0.5))
    assert not result.ok and result.output["timed_out"] is True
    assert time.monotonic() - began < 5


@pytest.mark.skipif(sys.platform != "linux", reason="the command helper (actions/clients/reaper.py) is Linux-only")
@pytest.mark.parametrize("command", [
    "echo $$ > {pidfile}; exec sleep 60",
    # A command's own children die too: the whole process group is killed, not only the process started.
    "sleep 60 & echo $! > {pidfile}; wait",
], ids=["command", "its-child"])
def test_command_dies_when_the_engine_is_killed(tmp_path: Path, bg_home: Path, command: str) -> None:
    pidfile = tmp_path / "pid"
    rb = tmp_path / "long-change.yaml"
    rb.write_text(f"""\
id: long-change
title: A change that takes a while
steps:
  - id: change
    title: Change slowly
    action: shell.run
    with: {{argv: [sh, -c, '{command.format(pidfile=pidfile)}']}}
""")
    engine = subprocess.Popen([BREAKGLASS, "run", str(rb), "--approve", "change"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    engine.send_signal(signal.SIGKILL)
    engine.wait(10)
    _dies(child, "the command kept running after the engine was killed")


def _dies(pid: int, why: str) -> None:
    """``pid`` is gone (or a zombie waiting for its new parent to reap it) within 5 s; else kill it and fail."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(why)


def test_timeout_holds_after_the_command_closes_its_outputs() -> None:
    began = time.monotonic()
    result = ShellRun().run(ShellRunParams(argv=["sh", "-c", "exec >/dev/null 2>&1; sleep 30"]),
                            ActionContext(timeout=0.5))
    assert result.output["timed_out"] is True and not result.ok
    assert time.monotonic() - began < 5


@pytest.mark.skipif(sys.platform != "linux", reason="the command helper (actions/clients/reaper.py) is Linux-only")
def test_reaper_finds_a_command_the_engine_died_before_naming(tmp_path: Path) -> None:
    """The engine told the reaper of the command's stdout pipe, spawned it, and died before it could hand over
    the command's pidfd: the reaper finds the command by that pipe and kills it."""
    from actions.clients.commands import Reaper

    reaper = Reaper()
    out_r, out_w = os.pipe()
    try:
        reaper.tell(f"watch 1 {os.fstat(out_r).st_ino}")
        command = subprocess.Popen(["sleep", "60"], stdout=out_w, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)  # not on that pipe
        reaper.control.close()  # as the kernel closes it when the engine dies
        assert reaper.process.wait(10) == 0
        assert command.wait(5) == -signal.SIGKILL
        assert bystander.poll() is None, "the reaper killed a process that was not the engine's command"
        bystander.kill()
        bystander.wait()
    finally:
        os.close(out_r)
        os.close(out_w)


@pytest.mark.skipif(sys.platform != "linux", reason="the command helper (actions/clients/reaper.py) is Linux-only")
def test_concurrent_commands_each_get_their_own_end_and_the_helper_keeps_no_descriptors() -> None:
    """A loop runs its items' commands from many threads at once: each gets its own output and exit code,
    and the helper lets go of every command's pidfd once the engine has reaped it."""
    from concurrent.futures import ThreadPoolExecutor

    from actions.clients import commands

    def one(i: int) -> commands.Finished:
        return commands.run(["/bin/sh", "-c", f"echo {i}; exit {i % 7}"], cwd=None, env=dict(os.environ),
                            stdin=None, timeout=30)

    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(one, range(200)))
    assert [(d.stdout, d.exit_code) for d in done] == [(f"{i}\n".encode(), i % 7) for i in range(200)]
    one(0)  # its `watch` carries the last reaped keys to the helper
    helper = commands._reaper().process.pid
    deadline = time.monotonic() + 5
    while len(os.listdir(f"/proc/{helper}/fd")) > 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir(f"/proc/{helper}/fd")) <= 8, os.listdir(f"/proc/{helper}/fd")
