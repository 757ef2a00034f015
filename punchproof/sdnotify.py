"""Tell systemd how a service is doing (``sd_notify(3)``): one datagram per state, no dependency.

systemd names a socket in ``NOTIFY_SOCKET`` when a unit has ``Type=notify``, and with
``WatchdogSec=`` also ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``): the service sends ``READY=1``
once it really serves, ``WATCHDOG=1`` at least every half of that interval while its main
loop is healthy, and ``STOPPING=1`` when it begins to stop. Outside systemd the variable is
absent and every call does nothing, so the same code runs under a terminal or the tests.

The launcher builds one from the environment and hands it to the long-running processes
(``appliance run``, ``cloud ingest``), which know when they are ready and healthy.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class ServiceNotifier:
    """Datagrams to systemd's notification socket; a no-op without one."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServiceNotifier:
        """From ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (a watchdog meant for
        another process, e.g. a parent that exec'd us under another PID, is ignored)."""
        env = os.environ if environ is None else environ
        usec: int | None = None
        pid = env.get("WATCHDOG_PID", "")
        if env.get("WATCHDOG_USEC", "").isdigit() and (not pid or pid == str(os.getpid())):
            usec = int(env["WATCHDOG_USEC"]) or None
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=usec)

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half the deadline, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when there is no systemd to tell."""
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address  # abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(assignments).encode(), target)
        except OSError as err:
            if not self._failed:  # said once: a watchdog ping failing every few seconds would flood the journal
                log.warning("cannot notify systemd at %s: %s", self.address, err)
            self._failed = True
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))
