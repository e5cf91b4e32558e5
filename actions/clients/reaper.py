"""The process that starts local commands for one engine and kills them when the engine dies.

Run by ``actions.clients.commands`` as ``python -I -S reaper.py FD``: stdlib only, nothing of breakglass.

Why a process of its own: a command must not go on changing the world behind a dead engine (kill -9, the
OOM killer, a closed laptop lid), and resume asks the operator about the step in doubt. Linux offers
``PR_SET_PDEATHSIG``, but only between fork and exec: through ``setpriv`` that is a second exec per command
(it doubled the cost of a ``shell.run``), through a ``preexec_fn`` a full fork of the engine (10 ms and more).
Here, the engine's end of the control socket closes when the engine dies, however it dies; this process then
kills the process group of every command still running, grandchildren included (``PR_SET_PDEATHSIG`` only
reached the command itself).

One thread, one loop: a command is started by ``posix_spawn`` (vfork: the cost of one exec), its end is
seen on a pidfd, and it is reaped in this same loop, so a kill can never reach a pid already reused.

Messages are JSON over ``SOCK_SEQPACKET`` (one message, one datagram). On the control socket the engine sends
``{"argv", "cwd", "env"}`` with four descriptors: the command's stdin, stdout, stderr, and a socket that is the
command's own channel. On that channel this process answers ``{"pid"}`` or ``{"error"}``, later ``{"exit"}``;
the engine sends ``kill`` there (a timeout, Ctrl-C), and closing the channel kills the command too.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Command:
    pid: int
    pidfd: int
    channel: socket.socket
    heard: bool = False  # the engine said kill, or closed its end: the channel is no longer watched


def main(control: socket.socket) -> None:
    sel = selectors.DefaultSelector()
    sel.register(control, selectors.EVENT_READ)
    live: dict[int, Command] = {}
    while True:
        for key, _ in sel.select():
            what = key.data
            if what is None:  # a request, or the engine gone
                if not _request(control, sel, live):
                    # The engine is gone (its end closed whatever killed it): nothing it started outlives it.
                    for command in live.values():
                        _kill_group(command.pid)
                    return
            elif isinstance(what, tuple):  # ("ended", command) or ("said", command) for a channel
                kind, command = what
                if kind == "ended":
                    _reap(command, sel, live)
                else:
                    _heard(command, sel)


def _request(control: socket.socket, sel: selectors.BaseSelector, live: dict[int, Command]) -> bool:
    try:
        msg, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
    except OSError:
        msg, fds = b"", []
    if not msg or len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return bool(msg)
    stdin, stdout, stderr, channel_fd = fds
    channel = socket.socket(fileno=channel_fd)
    request = json.loads(msg)
    try:
        pid = _spawn(request, stdin, stdout, stderr)
    except OSError as exc:
        _send(channel, {"error": exc.strerror or str(exc)})
        channel.close()
        return True
    finally:
        for fd in (stdin, stdout, stderr):
            os.close(fd)
    command = Command(pid, os.pidfd_open(pid), channel)
    live[pid] = command
    _send(channel, {"pid": pid})
    sel.register(command.pidfd, selectors.EVENT_READ, ("ended", command))
    sel.register(channel, selectors.EVENT_READ, ("said", command))
    return True


def _spawn(request: dict[str, object], stdin: int, stdout: int, stderr: int) -> int:
    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in request["env"].items()}  # type: ignore[attr-defined]
    # A session of its own: no controlling terminal to read a password from, no Ctrl-C meant for the engine,
    # and one process group to kill. SIGPIPE and SIGXFSZ back to their defaults, which Python (this process)
    # ignores, as subprocess does.
    if request.get("cwd") is None:
        return os.posix_spawn(argv[0], argv, env, setsid=True, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                              file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                                            (os.POSIX_SPAWN_DUP2, stderr, 2)])
    # posix_spawn cannot change directory here (no addchdir in Python 3.11): subprocess can, by vfork too.
    proc = subprocess.Popen(argv, cwd=str(request["cwd"]), env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                            start_new_session=True)
    proc.returncode = 0  # reaped by this loop, not by Popen
    return proc.pid


def _reap(command: Command, sel: selectors.BaseSelector, live: dict[int, Command]) -> None:
    sel.unregister(command.pidfd)
    if not command.heard:
        sel.unregister(command.channel)
    os.close(command.pidfd)
    _, status = os.waitpid(command.pid, 0)
    del live[command.pid]
    _send(command.channel, {"exit": os.waitstatus_to_exitcode(status)})
    command.channel.close()


def _heard(command: Command, sel: selectors.BaseSelector) -> None:
    """"kill", or the engine stopped waiting (closed the channel): either way the command ends now. It is not
    reaped yet (that happens in this loop), so its pid is still its own."""
    sel.unregister(command.channel)
    command.heard = True
    _kill_group(command.pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _send(channel: socket.socket, message: dict[str, object]) -> None:
    try:
        channel.send(json.dumps(message).encode())
    except OSError:
        pass  # the engine closed its end: it no longer waits for this answer


if __name__ == "__main__":
    main(socket.socket(fileno=int(sys.argv[1])))
