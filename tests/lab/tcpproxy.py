"""A TCP proxy on 127.0.0.1 whose wire can be cut: while cut, nothing goes through either way and nothing is
closed, as when a cable is pulled or a laptop's Wi-Fi drops (the peers' kernels still ACK what reached the
proxy, so only a deadline in the application notices). ``restore`` lets everything held back through.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.lab import free_port


class TcpProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.upstream = host, upstream_port
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._listener = socket.create_server((host, self.port))
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closing = True
        self._flowing.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.host, self.upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                self._flowing.wait()  # cut while this was read: hold it until the wire is back
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def proxy(upstream_port: int) -> Iterator[TcpProxy]:
    p = TcpProxy(upstream_port)
    try:
        yield p
    finally:
        p.close()
