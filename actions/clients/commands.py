"""Local commands that die with the engine: started and reaped here, watched by a small helper process
(``reaper``) that kills them if the engine dies.

On Linux each engine process starts one ``reaper`` at its first command. Every command runs in a session
of its own; the reaper, told of each command before it is spawned, kills the process group of each one
still running when the engine dies, however it dies. Elsewhere commands are started directly, with no
such guarantee.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
import select
import signal
import socket
import subprocess
import sys
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
    reaper = _reaper()
    deadline = None if timeout is None else time.monotonic() + timeout
    in_r, in_w = os.pipe() if stdin is not None else (os.dup(_devnull(os.getpid())), -1)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    key = next(reaper.keys)
    try:
        # Told before the spawn: were the engine killed right after it, the reaper still finds the command.
        reaper.tell(f"watch {key} {os.fstat(out_r).st_ino}{reaper.reaped()}")
        pid = _spawn(argv, cwd, env, in_r, out_w, err_w)
    except OSError as exc:
        for fd in (in_w, out_r, err_r):
            if fd >= 0:
                os.close(fd)
        reaper.forget(key)
        error = exc.strerror or str(exc)
        return Finished(None, b"", b"", error=error if reaper.alive() else f"the command helper is gone ({error})")
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    pidfd = os.pidfd_open(pid)  # before any wait: this pid is still this command's
    try:
        reaper.tell(f"started {key} {pid}", [pidfd], quiet=True)
        return _communicate(pid, pidfd, in_w, out_r, err_r, stdin or b"", deadline)
    except BaseException:
        _end(pid, pidfd)  # Ctrl-C, or anything else that stops the engine waiting: the command ends too
        raise
    finally:
        os.close(pidfd)
        reaper.forget(key)


def _spawn(argv: Sequence[str], cwd: str | None, env: Mapping[str, str], stdin: int, stdout: int,
           stderr: int) -> int:
    # A session of its own: no controlling terminal to read a password from, no Ctrl-C meant for the engine,
    # and one process group to kill. SIGPIPE and SIGXFSZ back to their defaults, which Python (the engine)
    # ignores, as subprocess does; no signal blocked, whatever an engine thread blocks.
    if cwd is None:
        return os.posix_spawn(argv[0], list(argv), env, setsid=True, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                              setsigmask=(), file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0),
                                                           (os.POSIX_SPAWN_DUP2, stdout, 1),
                                                           (os.POSIX_SPAWN_DUP2, stderr, 2)])
    # posix_spawn cannot change directory here (no addchdir in Python 3.11): subprocess can, by vfork too.
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=stdin, stdout=stdout, stderr=stderr,
                            start_new_session=True)
    proc.returncode = 0  # reaped by run(), by its pid: Popen must not reap it behind our back
    return proc.pid


class Reaper:
    """This engine process's reaper, and the one socket on which the engine tells it about commands."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            # Its own process group: Ctrl-C at the terminal is for the engine, which then ends the command.
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(REAPER), str(theirs.fileno())], pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
        self.control = ours
        # Shared by the threads that run commands: next() and the deque's ends are atomic under the GIL.
        self.keys = itertools.count(1)
        self.done: collections.deque[int] = collections.deque()

    def tell(self, message: str, fds: Sequence[int] = (), quiet: bool = False) -> None:
        """One message, sent whole (SOCK_SEQPACKET) even with other threads sending; OSError unless
        ``quiet``: a reaper gone after the spawn cannot undo it, and the command is still waited for."""
        try:
            socket.send_fds(self.control, [message.encode()], fds)
        except OSError:
            if not quiet:
                raise

    def forget(self, key: int) -> None:
        """Command ``key`` is reaped. The reaper hears it with the next command's ``watch``, a message less
        per command: until then it keeps the pidfd, which says the command has ended, so it is not killed."""
        self.done.append(key)

    def reaped(self) -> str:
        """The commands reaped since the last ``watch``, as that message's tail."""
        keys = []
        while self.done:
            try:
                keys.append(self.done.popleft())
            except IndexError:  # another thread took the last one
                break
        return "".join(f" {k}" for k in keys)

    def alive(self) -> bool:
        return self.process.poll() is None


def _communicate(pid: int, pidfd: int, in_w: int, out_r: int, err_r: int, data: bytes,
                 deadline: float | None) -> Finished:
    """Feed stdin and read stdout and stderr to their end, then reap the command. Past ``deadline`` its
    group is killed: it is not reaped yet, so the pid is still its own."""
    outputs: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()  # not epoll: no descriptor of its own to make and close for every command
    watching = set(outputs)
    for fd in outputs:
        poller.register(fd, select.POLLIN)
    if in_w >= 0 and data:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
        watching.add(in_w)
    elif in_w >= 0:
        os.close(in_w)
        in_w = -1
    pending, timed_out, ended = memoryview(data), False, None
    try:
        while True:
            if out_r not in watching and err_r not in watching:  # stdin left unread does not keep us waiting
                ended = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
                if ended is not None:
                    break
                if pidfd not in watching:  # its outputs are closed and it goes on: the deadline still holds
                    poller.register(pidfd, select.POLLIN)
                    watching.add(pidfd)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                timed_out, deadline, left = True, None, None
                _kill_group(pid)
            for fd, _ in poller.poll(None if left is None else math.ceil(left * 1000)):
                if fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(in_w)
                        watching.discard(in_w)
                        os.close(in_w)
                        in_w = -1
                elif fd in outputs:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        outputs[fd].append(chunk)
                    else:
                        poller.unregister(fd)
                        watching.discard(fd)
    finally:
        for fd in (in_w, out_r, err_r):
            if fd >= 0:
                os.close(fd)
    return Finished(_exit_code(ended), b"".join(outputs[out_r]), b"".join(outputs[err_r]), timed_out)


def _exit_code(ended: os.waitid_result) -> int:
    """As ``os.waitstatus_to_exitcode`` says it: the code it exited with, or minus the signal that killed it."""
    return ended.si_status if ended.si_code == os.CLD_EXITED else -ended.si_status


def _end(pid: int, pidfd: int) -> None:
    """Kill the command's group unless it is already reaped, and reap it. Through its pidfd: a pid already
    reaped may be another process's by now."""
    try:
        if os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG) is None:
            _kill_group(pid)
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
    except ChildProcessError:
        pass  # reaped already


@functools.lru_cache(maxsize=1)
def _devnull(pid: int) -> int:
    """This process's /dev/null, opened once (kept open, as stdin for every command that is given none)."""
    return os.open(os.devnull, os.O_RDONLY)


@functools.lru_cache(maxsize=1)
def _reaper_of(pid: int) -> Reaper:
    return Reaper()


def _reaper() -> Reaper:
    """This process's reaper (a forked child gets its own: the control socket is its parent's)."""
    reaper = _reaper_of(os.getpid())
    if not reaper.alive():  # killed from outside: start another rather than run commands unwatched
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
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
