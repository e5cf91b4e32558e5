"""The listening socket and uvicorn: bound first, so port 0 works and the address printed is the real one."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from engine.errors import InputError
from engine.store import RunStore
from engine.web.access import Listen, access_for, check_exposure, read_token

NICENESS = 10


def bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except (OSError, UnicodeError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"--listen {listen.host}:{listen.port}: cannot listen there ({reason})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(store: RunStore, listen: Listen, token_file: Path | None, hosts: tuple[str, ...],
          announce: Callable[[str], None]) -> None:
    """Serve until interrupted; ``announce`` is told the address once the socket listens."""
    import uvicorn

    from engine.web.app import create_app

    check_exposure(listen, token_file)
    token = read_token(token_file) if token_file is not None else None
    sock = bind(listen)
    port = int(sock.getsockname()[1])
    access = access_for(listen, port, token, hosts)
    config = uvicorn.Config(create_app(store, access), log_level="warning", access_log=False,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=1)
    announce(listen.url(port))
    # The page is for the people watching; the run is for the people it serves. On the operator's machine the
    # run gets the CPU first (measured by bench/bench_web.py: a run's steps with 100 watchers).
    os.nice(NICENESS)
    uvicorn.Server(config).run(sockets=[sock])
