"""One worker per terminal: a slow or dead terminal never delays another.

Availability is state: it is logged when it changes, not at every failed poll, and failed
polls back off exponentially (with jitter) up to a minute.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Protocol

from appliance.clock import Clock, to_ms
from appliance.ingest import PunchIngest
from appliance.store import TerminalHealth
from firmware_bridge.errors import TerminalError
from firmware_bridge.types import Download

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


class PunchSource(Protocol):
    def download(self, since_index: int = 0, *, known_count: int | None = None) -> Download: ...


class TerminalWorker:
    def __init__(self, name: str, source: PunchSource, ingest: PunchIngest, clock: Clock, *, interval_s: float) -> None:
        self.name = name
        self._source = source
        self._ingest = ingest
        self._clock = clock
        self._interval = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.available: bool | None = None  # unknown until the first poll
        self._failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"terminal-{self.name}", daemon=True)
        self._thread.start()

    def poll_soon(self) -> None:
        """Read the terminal now rather than at the next interval (e.g. after live capture reconnected)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def poll_once(self) -> int:
        """Read the terminal once; return how many new punches were stored."""
        try:
            cursor = self._ingest.cursor(self.name)
            download = self._source.download(self._ingest.read_from(self.name), known_count=cursor)
            if download.record_count < cursor:
                log.warning(
                    "terminal %s now holds %d records, fewer than the %d already stored: its log was cleared "
                    "or replaced; reading it from the start",
                    self.name,
                    download.record_count,
                    cursor,
                )
                download = self._source.download(0)
        except TerminalError as err:
            self._failures += 1
            if self.available is not False:
                log.warning("terminal %s unavailable: %s", self.name, err)
            self.available = False
            TerminalHealth.insert(name=self.name, available=False, last_error=str(err)).on_conflict(
                conflict_target=[TerminalHealth.name],
                update={TerminalHealth.available: False, TerminalHealth.last_error: str(err)},
            ).execute()
            return 0
        stored = self._ingest.accept(self.name, download)
        if self.available is not True:
            log.info(
                "terminal %s (%s) available, clock offset %d ms",
                self.name,
                download.terminal_sn,
                download.clock_offset_ms,
            )
        self.available, self._failures = True, 0
        if stored:
            log.info("terminal %s: %d new punch(es), up to seq %d", self.name, len(stored), stored[-1])
        return len(stored)

    def _delay(self) -> float:
        if not self._failures:
            return self._interval
        backoff = min(MAX_BACKOFF_S, self._interval * 2 ** min(self._failures, 6))
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the top of a worker loop: log with traceback, keep polling
                log.exception("terminal %s: unexpected error while polling", self.name)
                self._failures += 1
            self._wake.wait(self._delay())
            self._wake.clear()
        log.debug("terminal %s worker stopped at %d", self.name, to_ms(self._clock.now()))
