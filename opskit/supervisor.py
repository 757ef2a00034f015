"""What a long-running process tells its supervisor, and the stand-in when there is none.

Both long-running processes (``appliance run``, ``cloud ingest``) are handed a ``ServiceManager``
by the launcher (``punchproof.sdnotify.ServiceNotifier`` under systemd) and say when they are
ready, while they are healthy, and when they stop; outside systemd they get ``Unsupervised``.
"""

from __future__ import annotations

from typing import Protocol


class ServiceManager(Protocol):
    """What a daemon tells its supervisor (systemd, through ``punchproof.sdnotify``)."""

    @property
    def watchdog_interval_s(self) -> float | None: ...

    def ready(self, status: str = "") -> bool: ...

    def watchdog(self) -> bool: ...

    def status(self, text: str) -> bool: ...

    def stopping(self, status: str = "") -> bool: ...


class Unsupervised:
    """No supervisor to tell: a terminal, a test, a container without systemd."""

    watchdog_interval_s = None

    def ready(self, status: str = "") -> bool:
        return False

    def watchdog(self) -> bool:
        return False

    def status(self, text: str) -> bool:
        return False

    def stopping(self, status: str = "") -> bool:
        return False
