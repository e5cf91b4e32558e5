"""Keys typed before a gate's prompt appeared do not answer it."""

from __future__ import annotations

from pathlib import Path

import pexpect

from tests.conftest import BREAKGLASS


def test_yes_typed_ahead_does_not_approve_a_gate(tmp_path: Path, bg_home: Path) -> None:
    marker = tmp_path / "changed"
    rb = tmp_path / "ahead.yaml"
    rb.write_text(f"""\
id: ahead
title: A gate nobody has read yet
steps:
  - id: change
    title: Change something
    action: shell.run
    with: {{argv: [touch, "{marker}"]}}
""")
    child = pexpect.spawn(BREAKGLASS, ["run", str(rb)], encoding="utf-8", timeout=30)
    child.sendline("yes")  # typed while breakglass is still starting: before any prompt exists
    child.expect(r"Approve\? \[yes / no = abort / skip\]: ")
    child.sendline("no")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3, child.before
    assert not marker.exists()


def test_a_mistyped_approval_is_refused_before_the_run(tmp_path: Path, bg_home: Path) -> None:
    import subprocess

    rb = tmp_path / "ahead.yaml"
    rb.write_text("""\
id: ahead
title: One gated step
steps:
  - id: touch_file
    title: Change something
    action: shell.run
    with: {argv: ["true"]}
""")
    proc = subprocess.run([BREAKGLASS, "run", str(rb), "--approve", "touch_fil"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 2
    assert "--approve touch_fil: no such step (did you mean 'touch_file'?)" in proc.stderr
    assert not (bg_home / "runs").exists()  # nothing started, nothing logged
