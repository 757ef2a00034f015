"""Health rows for devices that are not polled: push terminals and serial readers.

A ZK terminal's worker writes its health at every poll. Push terminals call us, and serial
readers speak only when a card or finger is presented, so their rows are refreshed by a small
periodic task instead: the board shows them, and the attendance watermarks move on with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.store import TerminalHealth

log = logging.getLogger(__name__)


def record_health(name: str, **fields: object) -> None:
    """Create or update the device's row with ``fields`` (its own transaction)."""
    update = {getattr(TerminalHealth, key): value for key, value in fields.items()}
    TerminalHealth.insert(name=name, **fields).on_conflict(
        conflict_target=[TerminalHealth.name], update=update
    ).execute()


class Ticker:
    """Calls ``tick`` every ``every_s`` seconds on its own thread until stopped; ``tick`` raising
    is logged and the next period tries again. No thread until ``start()``."""

    def __init__(self, name: str, tick: Callable[[], None], every_s: float) -> None:
        self._name = name
        self._tick = tick
        self._every = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._tick()
            except Exception:  # the top of a loop: the next period tries again
                log.exception("%s failed", self._name)
