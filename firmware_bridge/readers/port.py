"""A serial port that comes and goes: USB adapters get unplugged, ser2net boxes restart.

Ports are opened with ``serial.serial_for_url``, so a reader is configured with a device path
(``/dev/serial/by-id/...``, which udev re-creates when the adapter comes back), ``rfc2217://``
or ``socket://host:port`` (a serial server on the LAN). The reading loop is the same for
every reader: open, read until the port fails, report it (once: availability is state), wait
with exponential backoff and jitter, open again.
"""

from __future__ import annotations

import logging
import random
import termios
import threading
from collections.abc import Callable
from typing import Any

import serial

from firmware_bridge.errors import TerminalError, TerminalUnreachable

log = logging.getLogger(__name__)

# pyserial reports a vanished tty as SerialException, OSError or, from tcflush/tcsetattr, termios.error
PORT_GONE = (serial.SerialException, OSError, termios.error)

Status = Callable[[bool, str], None]  # (available, reason), called when availability changes


def open_port(url: str, *, baudrate: int, timeout: float) -> Any:
    """Open ``url`` or raise ``TerminalUnreachable`` saying which port and why."""
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as err:
        raise TerminalUnreachable(f"串口无法打开 / cannot open serial port {url}: {err}") from err


class PortLoop:
    """Runs ``session(port)`` on an open port, reopening it whenever it fails.

    ``session`` returns when asked to stop, and raises one of ``PORT_GONE`` when the port goes
    away. Construction does no I/O; ``start()`` begins.
    """

    def __init__(
        self,
        name: str,
        url: str,
        session: Callable[[Any, threading.Event], None],
        *,
        baudrate: int,
        timeout: float = 0.1,
        on_status: Status | None = None,
        backoff_s: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        self.name = name
        self.url = url
        self._session = session
        self._baudrate = baudrate
        self._timeout = timeout
        self._on_status = on_status
        self._backoff = backoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available: bool | None = None  # unknown until the first open
        self.last_error = ""
        self.opens = 0

    def start(self) -> PortLoop:
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                port = open_port(self.url, baudrate=self._baudrate, timeout=self._timeout)
            except TerminalUnreachable as err:
                self._set(False, str(err))
            else:
                self.opens += 1
                self._set(True, "")
                delay = self._backoff[0]
                try:
                    with port:
                        self._session(port, self._stop)
                except PORT_GONE as err:
                    self._set(False, f"串口断开 / serial port {self.url} lost: {err}")
                except TerminalError as err:  # the device answered nonsense for too long: start over
                    self._set(False, str(err))
            if self._stop.wait(delay * random.uniform(0.5, 1.0)):  # noqa: S311 - jitter, not crypto
                return
            delay = min(delay * 2, self._backoff[1])

    def _set(self, available: bool, reason: str) -> None:
        self.last_error = reason
        if available == self.available:
            return
        if available:
            log.info("reader %s: %s open", self.name, self.url)
        else:
            log.warning("reader %s unavailable: %s", self.name, reason)
        if self._on_status is not None:
            self._on_status(available, reason)
        self.available = available  # after the callback: whoever sees the new state has been told
