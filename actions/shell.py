"""``shell.run``: run a local command from an argv list. Never through a shell: templated text cannot become
shell syntax, so an input like ``example.com; rm -rf /`` stays one argument."""

from __future__ import annotations

import os
import shlex
import shutil
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
    env: dict[str, str] = Field(default={}, description="Extra environment variables.")
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
        # Resolved here, on the PATH the command gets, so a missing program is reported as such.
        env = {**os.environ, **params.env}
        program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
        if program is None:
            return ActionResult({"exit_code": None, "argv": argv}, False, f"cannot run {argv[0]}: not found")
        # Here, not at the top: validating a runbook imports this module, and needs no process machinery.
        from actions.clients import commands

        started = time.monotonic()
        done = commands.run([program, *argv[1:]], cwd=params.cwd, env=env,
                            stdin=params.stdin.encode() if params.stdin is not None else None,
                            timeout=None if ctx.timeout is None else ctx.remaining(3600))
        if done.error and done.exit_code is None and not done.timed_out:
            return ActionResult({"exit_code": None, "argv": argv}, False, f"cannot run {argv[0]}: {done.error}")
        stdout, cut_out = _clip(done.stdout, params.max_output)
        stderr, cut_err = _clip(done.stderr, params.max_output)
        output: dict[str, Any] = {
            "argv": argv, "exit_code": done.exit_code, "stdout": stdout, "stderr": stderr,
            "stdout_truncated": cut_out, "stderr_truncated": cut_err, "timed_out": done.timed_out,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        if done.timed_out:
            return ActionResult(output, False, "command stopped: step timeout or cancel")
        ok = done.exit_code in params.ok_codes
        return ActionResult(output, ok, "" if ok else f"exit code {done.exit_code}")

    def apply(self, params: ShellRunParams, ctx: ActionContext, plan: Plan) -> ActionResult:
        return self.run(params, ctx)
