"""``shell.run``: run a local command from an argv list. Never through a shell: templated text cannot become
shell syntax, so an input like ``example.com; rm -rf /`` stays one argument."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionResult, Effect, Output, Params, Plan

MAX_OUTPUT = 64 * 1024


class ShellRunParams(Params):
    argv: list[str] | str = Field(
        description="The command as a list of arguments (preferred), or a string split like a POSIX shell "
        "would split words (no pipes, redirections or variables: there is no shell)."
    )
    cwd: str | None = Field(None, description="Working directory.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    stdin: str | None = Field(None, description="Text fed to the command's standard input.")
    read_only: bool = Field(False, strict=True, description="true marks a diagnostic: it runs in dry-runs and is not "
                            "gated. Written as a literal true or false, never a template.")
    ok_codes: list[int] = Field(default_factory=lambda: [0], description="Exit codes that count as success.")
    max_output: int = Field(MAX_OUTPUT, ge=0, description="Bytes of stdout/stderr kept in the output.")


def _argv(params: ShellRunParams) -> list[str]:
    return list(params.argv) if isinstance(params.argv, list) else shlex.split(params.argv)


def _clip(data: bytes, limit: int) -> tuple[str, bool]:
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


class ShellRunOutput(Output):
    argv: list[str] = Field(description="The command as run.")
    exit_code: int | None = Field(description="Its exit status; null when it could not start.")
    stdout: str = Field(description="Standard output, cut at max_output bytes.")
    stderr: str = Field(description="Standard error, cut at max_output bytes.")
    stdout_truncated: bool = Field(description="True when stdout was longer than max_output.")
    stderr_truncated: bool = Field(description="True when stderr was longer than max_output.")
    timed_out: bool = Field(description="True when the step's timeout or a cancel stopped it.")
    duration_ms: float = Field(description="How long it ran.")


class ShellRun(Action[ShellRunParams]):
    name = "shell.run"
    summary = "Run a local command (argv, no shell); exit code, stdout and stderr in the output."
    effect = Effect.WRITE
    read_only_flag = "read_only"
    Output = ShellRunOutput

    def plan(self, params: ShellRunParams, ctx: ActionContext) -> Plan:
        where = f" in {params.cwd}" if params.cwd else ""
        return Plan(summary=f"run {shlex.join(_argv(params))}{where}")

    def run(self, params: ShellRunParams, ctx: ActionContext) -> ActionResult:
        argv = _argv(params)
        if not argv:
            return ActionResult({"exit_code": None}, False, "empty command")
        # Resolved here so a missing program is reported as such, not as an error of the setpriv wrapper.
        search = params.env.get("PATH", os.environ.get("PATH"))
        program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=search)
        if program is None:
            return ActionResult({"exit_code": None, "argv": argv}, False, f"cannot run {argv[0]}: not found")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                _dying_with_parent([program, *argv[1:]]), cwd=params.cwd,
                env={**os.environ, **params.env} if params.env else None,
                stdin=subprocess.PIPE if params.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as exc:
            return ActionResult({"exit_code": None, "argv": argv}, False, f"cannot run {argv[0]}: {exc.strerror}")
        out, err, timed_out = self._communicate(proc, params, ctx)
        stdout, cut_out = _clip(out, params.max_output)
        stderr, cut_err = _clip(err, params.max_output)
        output: dict[str, Any] = {
            "argv": argv, "exit_code": proc.returncode, "stdout": stdout, "stderr": stderr,
            "stdout_truncated": cut_out, "stderr_truncated": cut_err, "timed_out": timed_out,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        if timed_out:
            return ActionResult(output, False, "command stopped: step timeout or cancel")
        ok = proc.returncode in params.ok_codes
        return ActionResult(output, ok, "" if ok else f"exit code {proc.returncode}")

    def _communicate(self, proc: subprocess.Popen[bytes], params: ShellRunParams,
                     ctx: ActionContext) -> tuple[bytes, bytes, bool]:
        data = params.stdin.encode() if params.stdin is not None else None
        if ctx.timeout is None:
            try:
                out, err = proc.communicate(data)
            except KeyboardInterrupt:
                _kill(proc)
                raise
            return out, err, False
        try:
            out, err = proc.communicate(data, timeout=ctx.remaining(3600))
            return out, err, False
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, err = proc.communicate()
            return out, err, True
        except KeyboardInterrupt:
            _kill(proc)
            raise

    def apply(self, params: ShellRunParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        return self.run(params, ctx)


def _dying_with_parent(argv: list[str]) -> list[str]:
    """Linux: wrap the command so it gets SIGKILL if breakglass itself dies (kill -9, OOM); nothing then
    keeps changing the world behind a dead engine, and resume asks the operator about the step in doubt.

    util-linux's setpriv sets PR_SET_PDEATHSIG and execs the command (about 1 ms); a preexec_fn would cost
    more, because it forces a full fork of the Python process.
    """
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform == "linux" else None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the whole process group: the command may have children of its own."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
