"""Local commands that die with the engine: started by a small helper process (``reaper``), read here.

On Linux each engine process starts one ``reaper`` at its first command; the reaper starts every command in
a session of its own and, when the engine dies however it dies, kills the process group of each command
still running. Elsewhere commands are started directly (no such guarantee there, as before).
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REAPER = Path(__file__).with_name("reaper.py")


@dataclass(frozen=True)
class Finished:
    """How a command ended. ``exit_code`` None: it could not start (``error`` says why) or was killed."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    error: str = ""


def run(argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], stdin: bytes | None,
        timeout: float | None) -> Finished:
    """Run ``argv`` (``argv[0]`` a path) with exactly ``env``; past ``timeout`` seconds its group is killed.

    Ctrl-C (KeyboardInterrupt) kills it too, then propagates."""
    if sys.platform != "linux":
        return _run_directly(argv, cwd, env, stdin, timeout)
    return _reaper().run(argv, cwd, env, stdin, timeout)


class Reaper:
    """This engine process's reaper: one control socket, one channel per command."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            # Its own process group: Ctrl-C at the terminal is for the engine, which then ends the command.
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(REAPER), str(theirs.fileno())], pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
        self.control = ours
        self.lock = threading.Lock()

    def run(self, argv: Sequence[str], cwd: str | None, env: Mapping[str, str], stdin: bytes | None,
            timeout: float | None) -> Finished:
        deadline = None if timeout is None else time.monotonic() + timeout
        request = json.dumps({"argv": list(argv), "cwd": cwd, "env": dict(env)}).encode()
        in_r, in_w = os.pipe() if stdin is not None else (os.open(os.devnull, os.O_RDONLY), -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self.lock:
                socket.send_fds(self.control, [request], [in_r, out_w, err_w, theirs.fileno()])
        except OSError as exc:
            for fd in (in_w, out_r, err_r):
                if fd >= 0:
                    os.close(fd)
            channel.close()
            return Finished(None, b"", b"", error=f"the command helper is gone ({exc.strerror})")
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
            theirs.close()
        with channel:
            return _communicate(channel, in_w, out_r, err_r, stdin or b"", deadline)


def _communicate(channel: socket.socket, in_w: int, out_r: int, err_r: int, data: bytes,
                 deadline: float | None) -> Finished:
    """Feed stdin and read stdout and stderr to their end; then hear from the helper how the command ended.

    The channel is read only after the outputs closed (a wake-up less per command): until then it is only
    written to, to kill the command past its deadline."""
    outputs: dict[int, list[bytes]] = {out_r: [], err_r: []}
    sel = selectors.DefaultSelector()
    for fd in outputs:
        sel.register(fd, selectors.EVENT_READ)
    if in_w >= 0 and data:
        os.set_blocking(in_w, False)
        sel.register(in_w, selectors.EVENT_WRITE)
    elif in_w >= 0:
        os.close(in_w)
        in_w = -1
    pending, timed_out = memoryview(data), False
    try:
        while out_r in sel.get_map() or err_r in sel.get_map():  # stdin left unread does not keep us waiting
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                timed_out, deadline, left = True, None, None
                _kill(channel)
            for key, _ in sel.select(left):
                if key.fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(in_w)
                        os.close(in_w)
                        in_w = -1
                else:
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        outputs[key.fd].append(chunk)
                    else:
                        sel.unregister(key.fd)
    finally:
        sel.close()
        for fd in (in_w, out_r, err_r):
            if fd >= 0:
                os.close(fd)
    exit_code, error = None, "the command helper died"
    while (message := _receive(channel)) is not None:
        if "exit" in message:
            exit_code, error = int(str(message["exit"])), ""
            break
        if "error" in message:
            error = str(message["error"])
            break
    return Finished(exit_code, b"".join(outputs[out_r]), b"".join(outputs[err_r]), timed_out, error)


def _kill(channel: socket.socket) -> None:
    """Ask the helper to kill the command's group; if the helper is gone, do it here."""
    try:
        channel.send(b"kill")
        return
    except OSError:
        pass
    channel.setblocking(False)
    try:
        message = _receive(channel)
    finally:
        channel.setblocking(True)
    if message is not None and "pid" in message:
        _kill_group(int(str(message["pid"])))


def _receive(channel: socket.socket) -> dict[str, object] | None:
    try:
        raw = channel.recv(4096)
    except (BlockingIOError, OSError):
        return None
    if not raw:
        return None
    message = json.loads(raw)
    return message if isinstance(message, dict) else None


@functools.lru_cache(maxsize=1)
def _reaper_of(pid: int) -> Reaper:
    return Reaper()


def _reaper() -> Reaper:
    """This process's reaper (a forked child gets its own: the control socket is its parent's)."""
    reaper = _reaper_of(os.getpid())
    if reaper.process.poll() is not None:  # killed from outside: start another rather than fail every command
        _reaper_of.cache_clear()
        reaper = _reaper_of(os.getpid())
    return reaper


def _run_directly(argv: Sequence[str], cwd: str | None, env: Mapping[str, str], stdin: bytes | None,
                  timeout: float | None) -> Finished:
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), start_new_session=True,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return Finished(None, b"", b"", error=exc.strerror or str(exc))
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        return Finished(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        return Finished(proc.returncode, out, err, timed_out=True)
    except KeyboardInterrupt:
        _kill_group(proc.pid)
        raise


def _kill_group(pid: int) -> None:
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
