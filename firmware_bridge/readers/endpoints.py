"""Where an emulated serial device plugs in: a pseudo-terminal or a TCP serial server.

``PtyEndpoint`` is a pty whose slave side a reader opens like any tty, reached through a
stable symlink (as udev's ``/dev/serial/by-id/...``); ``unplug()`` closes it, so the reader's
port fails and the path disappears, and ``replug()`` makes a new pty behind the same symlink.
``SocketEndpoint`` is a one-client TCP server, as a ser2net box is (``socket://host:port``);
``unplug()`` drops the client and stops listening, ``replug()`` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import tty
from pathlib import Path


class PtyEndpoint:
    def __init__(self, link: Path) -> None:
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return str(self.link)

    def plug(self) -> PtyEndpoint:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, before any reader opens it
        with self._lock:
            self._master, self._slave = master, slave
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        return self

    replug = plug

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()  # first, as udev does: a reader retrying must not find the dying pty
        with self._lock:
            fds, self._master, self._slave = (self._master, self._slave), None, None
        for fd in fds:
            if fd is not None:
                os.close(fd)

    close = unplug

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._master is not None:
                os.write(self._master, data)

    def read(self, timeout: float) -> bytes:
        master = self._master
        if master is None:
            return b""
        try:
            ready, _, _ = select.select([master], [], [], timeout)
            return os.read(master, 4096) if ready else b""
        except OSError:  # unplugged meanwhile, or no reader has the port open (EIO)
            return b""


class SocketEndpoint:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._bind = (host, port)
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"socket://{self._bind[0]}:{self._bind[1]}"

    def plug(self) -> SocketEndpoint:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self._bind)
        server.listen(1)
        self._bind = server.getsockname()[:2]
        self._server = server
        return self

    replug = plug

    def unplug(self) -> None:
        with self._lock:
            client, server, self._client, self._server = self._client, self._server, None, None
        for sock in (client, server):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    close = unplug

    @property
    def connected(self) -> bool:
        self._accept()
        return self._client is not None

    def write(self, data: bytes) -> None:
        self._accept()
        with self._lock:
            client = self._client
        if client is None:
            return  # nothing attached: the bytes go nowhere, as on a real line
        try:
            client.sendall(data)
        except OSError:
            self._drop(client)

    def read(self, timeout: float) -> bytes:
        self._accept(timeout)
        client = self._client
        if client is None:
            return b""
        try:
            ready, _, _ = select.select([client], [], [], timeout)
            if not ready:
                return b""
            data = client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop(client)
        return data

    def _accept(self, timeout: float = 0.0) -> None:
        server = self._server
        if server is None:
            return
        try:
            ready, _, _ = select.select([server], [], [], timeout if self._client is None else 0)
            if ready:
                client, _ = server.accept()
                with self._lock:
                    old, self._client = self._client, client
                if old is not None:
                    old.close()  # a new client replaces the old one, as ser2net does
        except OSError:
            return

    def _drop(self, client: socket.socket) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()
