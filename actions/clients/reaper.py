"""The process that kills an engine's local commands when the engine dies.

Run by ``actions.clients.commands`` as ``python -I -S reaper.py FD``: stdlib only, nothing of breakglass.

Why a process of its own: a command must not go on changing the world behind a dead engine (kill -9, the
OOM killer, a closed laptop lid), and resume asks the operator about the step in doubt. Linux offers
``PR_SET_PDEATHSIG``, but only between fork and exec: through ``setpriv`` that is a second exec per command,
through a ``preexec_fn`` a full fork of the engine (10 ms and more), and it reaches only the command itself,
not its children. Here, the engine's end of the control socket closes when the engine dies, however it dies;
this process then kills the process group of every command still running, grandchildren included.

The engine starts and reaps its commands itself (a spawn here would add two process wake-ups to every
command); this process only watches. Per command the engine sends, on one ``SOCK_SEQPACKET`` socket (one
message per datagram, delivered in order, words separated by spaces):

- ``watch KEY INODE [DONE...]`` before it spawns: the inode of the command's stdout pipe, by which the
  command is found in /proc should the engine die before it could say more; then the keys of the commands
  the engine has reaped since its last ``watch`` (their pidfds already say they ended: nothing is lost by
  hearing it late);
- ``started KEY PID`` with the command's pidfd, taken while the engine had not reaped it, so it is that
  process and no other.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
from dataclasses import dataclass


@dataclass
class Command:
    pipe: int  # inode of its stdout pipe
    pid: int = 0
    pidfd: int = -1


def main(control: socket.socket) -> None:
    watched: dict[int, Command] = {}
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 4096, 1)
        except OSError:
            msg, fds = b"", []
        if not msg:
            # The engine is gone (its end closed whatever killed it): nothing it started outlives it.
            for command in watched.values():
                _kill(command)
            return
        what, key, number, *done = msg.split()
        if what == b"watch":
            watched[int(key)] = Command(int(number))
            for reaped in map(int, done):
                if reaped in watched and (command := watched.pop(reaped)).pidfd >= 0:
                    os.close(command.pidfd)
        elif what == b"started" and int(key) in watched and fds:
            command = watched[int(key)]
            command.pid, command.pidfd = int(number), fds.pop()
        for fd in fds:
            os.close(fd)


def _kill(command: Command) -> None:
    if command.pidfd < 0:
        # The engine died between spawning the command and handing over its pidfd: find it by its stdout.
        for pid in _holders(command.pipe):
            _kill_group(pid)
        return
    # A pidfd turns readable when its process has ended. Until then the pid, and so the group the command
    # leads (it started a session of its own), are still its own: killing the group cannot reach a stranger.
    if not select.select([command.pidfd], [], [], 0)[0]:
        _kill_group(command.pid)


def _holders(inode: int) -> list[int]:
    """Processes whose stdout or stderr is the pipe ``inode``."""
    wanted, found = f"pipe:[{inode}]", []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for fd in ("1", "2"):
                try:
                    if os.readlink(f"/proc/{entry}/fd/{fd}") == wanted:
                        found.append(int(entry))
                        break
                except OSError:
                    continue
    return found


def _kill_group(pid: int) -> None:
    """Kill ``pid``'s process group when it leads its session's (each command starts a session of its own);
    otherwise ``pid`` alone."""
    try:
        group = os.getpgid(pid)
        if group == os.getsid(pid) and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main(socket.socket(fileno=int(sys.argv[1])))
