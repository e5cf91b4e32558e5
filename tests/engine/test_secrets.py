"""No secret value appears anywhere: audit log, terminal, --json, `audit show`, `runs`, reports (bytes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pexpect
import pytest

from engine.errors import InputError
from engine.redact import TOO_SHORT, Redactor

BG = shutil.which("breakglass") or "breakglass"

TOKEN = "tok-9f8e7d6c5b4a3921"          # type: secret, given with -i
PASSWORD = "pw-Zq81-wellhidden"          # type: secret, read from the environment
API_KEY = "key-from-env-55aa77cc"        # a plain string read through `env:`
AUTH = "bearer-cred-3141592653"          # a plain -i input that only the action declares secret
LITERAL = "literal-key-2718281828"       # written in the runbook itself, in a header the action declares
SECRETS = [TOKEN, PASSWORD, API_KEY, AUTH, LITERAL]

RUNBOOK = """
id: secrets
title: secrets never leak
inputs:
  token: {type: secret}
  password: {type: secret, env: BG_TEST_PASSWORD}
  api_key: {type: string, env: BG_TEST_API_KEY}
  auth: {type: string}
  port: {type: integer}
steps:
  - id: probe_api
    title: probe the API with credentials
    action: http.probe
    on_failure: continue
    with:
      url: "http://127.0.0.1:{{ inputs.port }}/health"
      headers: {Authorization: "Bearer {{ inputs.auth }}", X-Api-Key: "LITERAL"}
      timeout: 2
  - id: echo_all
    title: a command that prints every secret
    action: shell.run
    with:
      argv: [sh, -c, 'echo "$@"; echo "$1 $5" >&2', x, "{{ inputs.token }}", "{{ inputs.password }}",
             "{{ inputs.api_key }}", "{{ inputs.auth }}", "LITERAL"]
      read_only: true
  - id: push
    title: a gated change that shows secrets in its gate
    action: shell.run
    confirm: "push with {{ inputs.token }} and {{ inputs.password }}?"
    with: {argv: [sh, -c, 'echo "pushed $0 $1"', "{{ inputs.api_key }}", "{{ inputs.auth }}"]}
  - id: fails_loudly
    title: a failure whose output holds a secret
    action: shell.run
    on_failure: continue
    with: {argv: [sh, -c, 'echo "$0"; exit 3', "{{ inputs.token }}"], read_only: true}
  - id: remember
    title: a note with secrets in it
    action: log.note
    with: {text: "used {{ inputs.token }} / {{ inputs.auth }} / LITERAL"}
""".replace("LITERAL", LITERAL)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def setup(tmp_path: Path, bg_home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("BG_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("BG_TEST_API_KEY", API_KEY)
    path = tmp_path / "secrets.yaml"
    path.write_text(RUNBOOK)
    args = ["run", str(path), "-i", f"token={TOKEN}", "-i", f"auth={AUTH}", "-i", f"port={closed_port()}"]
    return path, args


def bg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([BG, *args], capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)


def assert_clean(where: str, data: bytes) -> None:
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} leaked into {where}"


def every_view_of_the_runs(bg_home: Path) -> None:
    logs = sorted((bg_home / "runs").glob("*/audit.jsonl"))
    assert logs
    for log in logs:
        data = log.read_bytes()
        assert_clean(f"audit log {log}", data)
        assert b"***" in data
        run_id = log.parent.name
        for argv in (["audit", "show", run_id], ["audit", "show", run_id, "--json"],
                     ["audit", "verify", run_id, "--json"], ["report", run_id],
                     ["report", run_id, "--format", "html"], ["report", run_id, "--format", "json"]):
            proc = bg(*argv)
            assert proc.returncode == 0, (argv, proc.stderr)
            assert_clean(" ".join(argv[:2]) + " stdout", proc.stdout)
            assert_clean(" ".join(argv[:2]) + " stderr", proc.stderr)
    assert_clean("runs --json", bg("runs", "--json").stdout)


def test_secrets_stay_out_of_json_output_and_every_view(setup: tuple[Path, list[str]], bg_home: Path) -> None:
    _, args = setup
    proc = bg(*args, "--approve", "push", "--json")
    assert proc.returncode == 0, proc.stderr
    assert_clean("--json stdout", proc.stdout)
    assert_clean("--json stderr", proc.stderr)
    text = proc.stdout.decode()
    # The paths that carry secrets really ran: masked values are there instead.
    assert '"stdout": "*** *** *** *** ***\\n"' in text
    assert '"stderr": "*** ***\\n"' in text
    assert '"stdout": "pushed *** ***\\n"' in text
    assert "push with *** and ***?" in text
    assert '"Authorization": "***"' in text or "Bearer ***" in text
    every_view_of_the_runs(bg_home)


def test_secrets_stay_off_the_terminal(setup: tuple[Path, list[str]], bg_home: Path, tmp_path: Path) -> None:
    _, args = setup
    transcript = tmp_path / "terminal.bin"
    with open(transcript, "wb") as log:
        child = pexpect.spawn(BG, args, env=dict(os.environ), timeout=60, logfile=log)
        child.expect(rb"GATE push: push with \*\*\* and \*\*\*\?")
        child.expect(rb"Approve\? ")
        child.sendline(b"yes")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0
    data = transcript.read_bytes()
    assert b"run succeeded" in data and b"fails_loudly" in data
    assert_clean("the terminal", data)
    every_view_of_the_runs(bg_home)


def test_resume_asks_for_secrets_again(setup: tuple[Path, list[str]], bg_home: Path) -> None:
    """The log holds only ***, so a resumed run must be given its secrets again, never use the mask."""
    _, args = setup
    refused = bg(*args)
    assert refused.returncode == 3
    assert_clean("refused run", refused.stdout + refused.stderr)
    run_id = next((bg_home / "runs").iterdir()).name
    missing = bg("resume", run_id, "--approve", "push")
    assert missing.returncode == 2, missing.stderr
    assert b"token" in missing.stderr and b"auth" in missing.stderr, missing.stderr
    given = ["-i", f"token={TOKEN}", "-i", f"auth={AUTH}"]
    resumed = bg("resume", run_id, "--approve", "push", *given, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert b'"stdout": "pushed *** ***\\n"' in resumed.stdout
    assert_clean("resumed --json", resumed.stdout + resumed.stderr)
    every_view_of_the_runs(bg_home)


# --- a secret that is also a word the records use ------------------------------------------------------

WORDY = """
id: wordy
title: a secret that is also a word of the log
inputs:
  token: {type: secret}
steps:
  - id: one
    title: a note
    action: log.note
    with: {text: hello}
  - id: echo
    title: a command that prints the secret
    action: shell.run
    with: {argv: [sh, -c, 'echo "$0"', "{{ inputs.token }}"], read_only: true}
  - id: after
    title: reads the output of the step before
    action: log.note
    with: {text: "exit {{ steps.echo.output.exit_code }}"}
"""


@pytest.mark.parametrize("word", ["step", "succeeded", "one", "token", "output", "stdout"])
def test_a_secret_equal_to_a_record_word_masks_text_not_the_run(word: str, tmp_path: Path, bg_home: Path) -> None:
    """Issue 14, item 13: redaction reached record keys and statuses ('step' → '***'), and the run broke."""
    path = tmp_path / "wordy.yaml"
    path.write_text(WORDY)
    proc = bg("run", str(path), "-i", f"token={word}", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert b"Traceback" not in proc.stderr
    assert b'"stdout": "***\\n"' in proc.stdout  # the secret itself is still masked
    assert b"exit 0" in proc.stdout
    run_id = next((bg_home / "runs").iterdir()).name
    assert bg("audit", "verify", run_id).returncode == 0
    records = [json.loads(line) for line in (bg_home / "runs" / run_id / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["type"] == "run.finished" and records[-1]["status"] == "succeeded"
    assert records[0]["secret_inputs"] == ["token"]
    assert [r["step"] for r in records if r["type"] == "step.succeeded"] == ["one", "echo", "after"]
    assert bg("report", run_id).returncode == 0


def test_redaction_keeps_keys_and_the_engines_own_fields() -> None:
    redact = Redactor({"step", "tok-123"})
    data = {"step": "step", "status": "succeeded", "output": {"step": "a step with tok-123"}, "reason": "step"}
    assert redact.record(data) == {"step": "step", "status": "succeeded", "output": {"step": "a *** with ***"},
                                   "reason": "***"}


@pytest.mark.parametrize("value", ["a", "ab"])
def test_a_secret_too_short_to_mask_is_refused_not_ignored(value: str) -> None:
    with pytest.raises(InputError) as info:
        Redactor().add(value)
    assert str(info.value) == TOO_SHORT


# --- secrets on a command line ---------------------------------------------------------------------------

ARGV = """\
id: argv
title: secrets on a command line
inputs:
  token: {type: secret}
  hook: {type: url, env: BG_HOOK}
  zone: {type: domain}
steps:
  - id: push
    title: push with the token on the command line
    action: shell.run
    with:
      argv:
        - curl
        - "--oauth2-bearer={{ inputs.token }}"
        - "{{ inputs.zone }}"
      read_only: true
    rollback:
      action: shell.run
      with: {argv: "undo {{ inputs.hook }}"}
  - id: quiet
    title: the token through the environment and stdin
    action: shell.run
    with:
      argv: [sh, -c, 'cat >/dev/null; test -n "$TOKEN"', "{{ inputs.zone }}"]
      env: {TOKEN: "{{ inputs.token }}"}
      stdin: "{{ inputs.token }}"
      read_only: true
"""


def test_validate_warns_about_secrets_on_a_command_line(tmp_path: Path) -> None:
    """Issue 14, item 13: argv is readable by every user of the host (ps); validate says so, and passes."""
    path = tmp_path / "argv.yaml"
    path.write_text(ARGV)
    proc = bg("validate", str(path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 2, lines
    token, hook = lines
    assert re.match(rf"{re.escape(str(path))}:14:\d+: warning: secret input 'token' is placed on a command line", token)
    assert "ps" in token and "env:" in token and "stdin" in token
    assert re.match(rf"{re.escape(str(path))}:19:\d+: warning: secret input 'hook'", hook)
    assert b"ok  " in proc.stdout
    result = json.loads(bg("validate", str(path), "--json").stdout)
    assert result[0]["ok"] and len(result[0]["warnings"]) == 2
