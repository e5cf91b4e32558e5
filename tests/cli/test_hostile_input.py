"""What the command line is handed can be hostile (issue 14, item 14): bytes that are not UTF-8, a control
character rendered into a URL, an alias bomb as --inputs, a symlink to /dev/zero, a planted symlink or a
future-dated directory in the store. Each gets a clear one-line refusal and a distinct exit code, never a
traceback, and the audit log stays whole; what breakglass writes is owner-only."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BREAKGLASS

NOTE_ONLY = """\
id: note-only
title: One note
inputs:
  who: {type: string, required: false}
steps:
  - id: say
    title: Say something
    action: log.note
    with: {text: "hello {{ inputs.who }}"}
"""

PROBE = """\
id: probe
title: Probe a rendered URL
inputs:
  path: {type: string}
steps:
  - id: probe
    title: Probe the page
    action: http.probe
    with: {url: "http://127.0.0.1:9/{{ inputs.path }}"}
  - id: after
    title: After the probe
    action: log.note
    with: {text: after}
"""


def _bg(*args: str | bytes, limit_memory: int | None = None) -> subprocess.CompletedProcess[str]:
    def cap() -> None:
        if limit_memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    return subprocess.run([BREAKGLASS, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60, errors="backslashreplace", preexec_fn=cap)


def _runbook(tmp_path: Path, text: str = NOTE_ONLY, name: str = "note-only") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _logs(home: Path) -> list[Path]:
    return sorted((home / "runs").glob("*/audit.jsonl"))


def _refused_cleanly(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


# --- bytes that are not UTF-8 ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [b"--operator", b"ana\xff"],
    [b"-i", b"who=\xfe\xff"],
])
def test_non_utf8_arguments_start_no_run(tmp_path: Path, bg_home: Path, args: list[bytes]) -> None:
    rb = _runbook(tmp_path)
    assert _bg("run", str(rb)).returncode == 0
    first = _logs(bg_home)
    refused = _bg("run", str(rb), *args)  # type: ignore[arg-type]
    _refused_cleanly(refused, 2, "is not valid UTF-8 (byte 0x")
    assert _logs(bg_home) == first, "no run directory, no empty audit log"
    assert json.loads(_bg("runs", "--json").stdout)[-1]["id"] == first[0].parent.name


def test_a_non_utf8_note_is_refused_and_the_log_kept(tmp_path: Path, bg_home: Path) -> None:
    assert _bg("run", str(_runbook(tmp_path))).returncode == 0
    log = _logs(bg_home)[0]
    before = log.read_bytes()
    refused = _bg("note", "last", b"rolled back \xff")  # type: ignore[arg-type]
    _refused_cleanly(refused, 2, "the note is not valid UTF-8")
    assert log.read_bytes() == before
    assert _bg("audit", "verify", "last").returncode == 0


# --- a control character rendered into a URL -------------------------------------------------------------


@pytest.mark.parametrize("path", ["a\x01b", "a\nb", "a\x7fb"])
def test_a_control_character_in_a_rendered_url_fails_that_step(tmp_path: Path, bg_home: Path, path: str) -> None:
    result = _bg("run", str(_runbook(tmp_path, PROBE, "probe")), "-i", f"path={path}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    records = [json.loads(line) for line in _logs(bg_home)[0].read_text().splitlines()]
    failed = [r for r in records if r["type"] == "step.failed"]
    assert [r["step"] for r in failed] == ["probe"]
    assert "control character" in failed[0]["error"]
    assert records[-1]["type"] == "run.finished" and records[-1]["status"] == "failed"


# --- an alias bomb as --inputs ---------------------------------------------------------------------------


def test_an_alias_bomb_in_inputs_is_refused_fast_in_bounded_memory(tmp_path: Path, bg_home: Path) -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = tmp_path / "inputs.yaml"
    bomb.write_text("\n".join([*lines, "who: *l9"]) + "\n")  # 10^10 strings once expanded
    began = time.monotonic()
    # Capped at 1 GiB of address space: without the fix, the bomb runs into the cap instead of the machine.
    result = _bg("run", str(_runbook(tmp_path)), "--inputs", str(bomb), limit_memory=1 << 30)
    _refused_cleanly(result, 2, "alias bomb")
    assert f"{bomb}:" in result.stderr
    assert time.monotonic() - began < 20
    assert not _logs(bg_home)


# --- files that are no runbook ---------------------------------------------------------------------------


def test_validate_of_a_symlink_to_dev_zero_or_a_fifo_is_refused_fast(tmp_path: Path) -> None:
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result = _bg("validate", str(zero), str(fifo))  # the 60 s timeout of _bg fails the test if it reads on
    assert result.returncode == 2
    for path in (zero, fifo):
        assert f"{path}:1:1: not a regular file" in result.stderr


def test_a_runbook_over_the_size_cap_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    from engine.yamlsource import MAX_BYTES

    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # 2 GiB, sparse: costs no disk, and cannot be read whole under the 1 GiB cap
    result = _bg("validate", str(big), limit_memory=1 << 30)
    assert result.returncode == 2
    assert f"{big}:1:1: file is over {MAX_BYTES} bytes" in result.stderr


# --- what breakglass writes is owner-only -----------------------------------------------------------------


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_state_directories_logs_and_torn_tails_are_owner_only(tmp_path: Path, bg_home: Path) -> None:
    old = os.umask(0o022)  # the usual umask: breakglass must not rely on a stricter one
    try:
        rb = _runbook(tmp_path)
        assert _bg("run", str(rb)).returncode == 0
        log = _logs(bg_home)[0]
        for path in (bg_home, bg_home / "runs", log.parent, log):
            assert _private(path), oct(path.stat().st_mode)
        torn_line = log.read_bytes().count(b"\n") + 1
        with open(log, "ab") as f:
            f.write(b'{"seq": 99, "type": "no')  # a record cut short by a crash
        planted = log.parent / f"audit.jsonl.torn-line-{torn_line}"
        planted.symlink_to(tmp_path / "elsewhere")  # where the torn bytes would go: not through this
        resumed = _bg("resume", "last")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        sides = sorted(log.parent.glob("audit.jsonl.torn-line-*"))
        kept = [p for p in sides if not p.is_symlink()]
        assert len(kept) == 1 and kept[0].read_bytes() == b'{"seq": 99, "type": "no'
        assert _private(kept[0])
        assert not (tmp_path / "elsewhere").exists(), "the torn tail was written through a symlink"
    finally:
        os.umask(old)


def test_a_crash_report_is_owner_only(bg_home: Path) -> None:
    from engine.cli import _save_crash_report

    old = os.umask(0o022)
    try:
        try:
            raise RuntimeError("a bug")
        except RuntimeError:
            where = Path(_save_crash_report())
    finally:
        os.umask(old)
    assert "RuntimeError: a bug" in where.read_text()
    assert _private(where) and _private(where.parent)


# --- the store is not taken over by what is planted in it ---------------------------------------------------


def test_a_symlinked_audit_log_is_not_written_through(tmp_path: Path, bg_home: Path) -> None:
    assert _bg("run", str(_runbook(tmp_path))).returncode == 0
    log = _logs(bg_home)[0]
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(log.read_bytes())
    log.unlink()
    log.symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    refused = _bg("note", "last", "a note")
    _refused_cleanly(refused, 6, "is a symbolic link")
    assert elsewhere.read_bytes() == before


def test_last_is_the_run_started_last_not_the_directory_named_last(tmp_path: Path, bg_home: Path) -> None:
    rb = _runbook(tmp_path)
    assert _bg("run", str(rb)).returncode == 0
    older = _logs(bg_home)[0].parent
    planted = older.with_name("29991231T235959Z-note-only-ffffff")  # a name from the future
    older.rename(planted)
    time.sleep(0.01)
    assert _bg("run", str(rb)).returncode == 0
    newer = next(p.parent for p in _logs(bg_home) if p.parent != planted)
    (bg_home / "runs" / "30000101T000000Z-empty-000000").mkdir()
    (bg_home / "runs" / "30000101T000000Z-empty-000000" / "audit.jsonl").write_bytes(b"")  # a run never begun
    noted = _bg("note", "last", "which one?")
    assert noted.returncode == 0, noted.stderr
    assert f"added to {newer.name}" in noted.stdout
    assert [r["id"] for r in json.loads(_bg("runs", "--json").stdout)] == [planted.name, newer.name]
