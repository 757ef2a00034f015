"""The receiver's connections, bounded: how many, for how long, how many bytes.

A terminal opens a connection, sends one small request and waits for the answer. Anything else
on the plant LAN can open hundreds of connections and say nothing, trickle bytes, or send a
body of any size, and the receiver runs in the daemon that signs and polls every terminal:

* ``Gate`` holds every connection that has not sent a byte yet on one thread of its own. A
  connection silent for ``idle_s`` is closed; at ``max_connections`` the oldest silent one is
  closed to admit the new one (when none is silent, the new one is answered ``503``). A
  connection that speaks goes to one of ``workers`` threads: idle sockets cost no thread.
* ``DeadlineReader`` gives a worker the request's bytes until a deadline ``request_s`` after it
  started (on every read, not per read: a byte every second does not keep it alive) and up to
  a byte budget.
* ``read_chunked`` decodes a chunked body strictly, up to ``max_body_bytes``.
"""

from __future__ import annotations

import io
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from firmware_bridge.adms.receiver import MAX_BODY_BYTES

log = logging.getLogger(__name__)

Address = tuple[str, int]
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\nRetry-After: 10\r\n\r\nBUSY\n"
MAX_CHUNK_LINE = 1024  # a chunk-size line with its extensions, or a trailer line


@dataclass(frozen=True, slots=True)
class Limits:
    """What the receiver lets anyone on the LAN take from the daemon."""

    max_connections: int = 64  # open at once, silent ones included (a plant has tens of terminals)
    workers: int = 8  # requests handled at once: the threads the receiver can use
    idle_s: float = 10.0  # connected and silent: a terminal sends its request at once
    request_s: float = 20.0  # from the request's first read to its last byte
    max_body_bytes: int = MAX_BODY_BYTES


class BodyTooLarge(Exception):
    """The body is larger than the receiver accepts: answered 413."""


class MalformedBody(Exception):
    """The body's framing is broken: answered 400."""


class DeadlineReader(io.RawIOBase):
    """A socket's bytes until ``deadline`` (``TimeoutError`` after it) or ``budget`` bytes (then EOF)."""

    def __init__(
        self, sock: socket.socket, deadline: float, budget: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._sock = sock
        self.deadline = deadline
        self.budget = budget
        self._monotonic = monotonic

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.budget <= 0:
            return 0
        remaining = self.deadline - self._monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not received in time")
        self._sock.settimeout(remaining)
        view = memoryview(buffer)[: min(len(buffer), self.budget)]
        count = self._sock.recv_into(view)
        self.budget -= count
        return count


def read_chunked(stream: io.BufferedIOBase, max_bytes: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body; never reads a chunk that would pass ``max_bytes``."""
    body = bytearray()
    while True:
        size = _chunk_size(stream.readline(MAX_CHUNK_LINE + 1))
        if size == 0:
            break
        if len(body) + size > max_bytes:
            raise BodyTooLarge(f"chunked body above {max_bytes} bytes")
        data = stream.read(size)
        if len(data) < size:
            raise MalformedBody("the body ends inside a chunk")
        body += data
        if stream.readline(3) not in (b"\r\n", b"\n"):
            raise MalformedBody("a chunk is not followed by a line end")
    for _ in range(16):  # trailer lines, then the blank line that ends the body
        line = stream.readline(MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            raise MalformedBody("the body ends before its last line")
    raise MalformedBody("too many trailer lines")


def _chunk_size(line: bytes) -> int:
    if not line.endswith(b"\n"):
        raise MalformedBody("a chunk-size line is missing or too long")
    text = line.split(b";", 1)[0].strip()
    if not text or len(text) > 8 or text.strip(b"0123456789abcdefABCDEF"):
        raise MalformedBody(f"chunk size {text[:20]!r} is not a hexadecimal number")
    return int(text, 16)


class Gate:
    """Accepts on ``listener`` and hands each connection that speaks to ``serve`` on a worker.

    ``serve(sock, address)`` handles one connection; the gate closes the socket after it.
    Construction does no I/O; ``start()`` runs the gate's thread.
    """

    def __init__(
        self,
        listener: socket.socket,
        serve: Callable[[socket.socket, Address], None],
        limits: Limits,
        *,
        name: str = "adms",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._listener = listener
        self._serve = serve
        self.limits = limits
        self._name = name
        self._monotonic = monotonic
        self._silent: OrderedDict[socket.socket, tuple[Address, float]] = OrderedDict()  # oldest first
        self._busy: set[socket.socket] = set()  # speaking: queued for a worker or being served
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None
        self._full = False
        self.closed_idle = 0  # silent for idle_s
        self.evicted = 0  # the oldest silent one, closed to admit a new connection
        self.refused = 0  # every slot busy

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._silent) + len(self._busy)

    @property
    def busy_connections(self) -> int:
        """Connections that have spoken: waiting for a worker or being served."""
        with self._lock:
            return len(self._busy)

    def start(self) -> None:
        self._listener.setblocking(False)
        self._wake = socket.socketpair()
        self._workers = ThreadPoolExecutor(self.limits.workers, thread_name_prefix=f"{self._name}-worker")
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-gate", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting; close silent connections; cut the ones being served short."""
        self._stopping.set()
        if self._wake is not None:
            self._wake[1].send(b"x")
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            for sock in self._busy:
                _shutdown(sock)
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        if self._wake is not None:
            for end in self._wake:
                end.close()
        self._thread = self._workers = self._wake = None

    # ---- the gate's thread --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._wake is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake[0], selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                try:
                    self._step(selector)
                except Exception:  # noqa: BLE001 - the top of the gate's loop: the receiver must keep accepting
                    log.exception("%s receiver: the connection gate failed a step; it carries on", self._name)
                    self._stopping.wait(0.1)  # not a busy loop if the failure repeats
        finally:
            with self._lock:
                for sock in self._silent:
                    sock.close()
                self._silent.clear()
            selector.close()

    def _step(self, selector: selectors.BaseSelector) -> None:
        assert self._wake is not None
        for key, _ in selector.select(self._next_timeout()):
            if key.fileobj is self._listener:
                self._accept(selector)
            elif key.fileobj in self._silent:  # not closed by an accept earlier in this batch
                self._dispatch(selector, key.fileobj)  # type: ignore[arg-type]
        self._close_idle(selector)

    def _next_timeout(self) -> float:
        with self._lock:
            if not self._silent:
                return 1.0
            _, deadline = next(iter(self._silent.values()))
        return min(1.0, max(0.0, deadline - self._monotonic()))

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, address = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:  # out of file descriptors, say: the listener stays
            log.warning("%s receiver: accept failed: %s", self._name, err)
            return
        with self._lock:
            full = len(self._silent) + len(self._busy) >= self.limits.max_connections
            self._note_full(full)
            evicted = self._silent.popitem(last=False)[0] if full and self._silent else None
            admitted = not full or evicted is not None
            if admitted:
                self._silent[sock] = (address, self._monotonic() + self.limits.idle_s)
            if evicted is not None:
                self.evicted += 1
            elif not admitted:
                self.refused += 1
        if evicted is not None:
            selector.unregister(evicted)
            evicted.close()
        if not admitted:
            _refuse(sock)
            return
        selector.register(sock, selectors.EVENT_READ)

    def _dispatch(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        selector.unregister(sock)
        with self._lock:
            address, _ = self._silent.pop(sock)
            self._busy.add(sock)
        assert self._workers is not None
        try:
            self._workers.submit(self._work, sock, address)
        except RuntimeError:  # shutting down
            self._done(sock)

    def _work(self, sock: socket.socket, address: Address) -> None:
        try:
            self._serve(sock, address)
        except Exception:  # noqa: BLE001 - the top of the worker's loop: one connection's failure stays with it
            log.exception("%s receiver: request from %s failed", self._name, address[0])
        finally:
            self._done(sock)

    def _done(self, sock: socket.socket) -> None:
        with self._lock:  # stop() shuts busy sockets down under the lock: never one already closed
            self._busy.discard(sock)
        sock.close()

    def _close_idle(self, selector: selectors.BaseSelector) -> None:
        now = self._monotonic()
        expired = []
        with self._lock:
            while self._silent:
                sock, (_, deadline) = next(iter(self._silent.items()))
                if deadline > now:
                    break
                self._silent.pop(sock)
                expired.append(sock)
            self.closed_idle += len(expired)
            self._note_full(len(self._silent) + len(self._busy) >= self.limits.max_connections)
        for sock in expired:
            selector.unregister(sock)
            sock.close()

    def _note_full(self, full: bool) -> None:
        """Log the change, not every connection (called with the lock held)."""
        if full and not self._full:
            log.warning(
                "%s receiver: %d connections open, the limit; the oldest silent ones are closed for new ones",
                self._name,
                self.limits.max_connections,
            )
        elif self._full and not full:
            log.info("%s receiver: below its connection limit again", self._name)
        self._full = full


def _refuse(sock: socket.socket) -> None:
    try:
        sock.setblocking(False)
        sock.send(BUSY)
    except OSError:
        pass
    sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
