"""A card reader (or Wiegand-to-RS232 converter) on a serial port: each card read, a punch.

These readers have no clock and no memory: the punch's time is the appliance's clock when
the line arrived (``time_source="appliance"``), and a read missed while the port is gone is
gone. A card held at the reader repeats its number, so the same card within
``repeat_window`` is one punch. Cards are mapped to employees by a table; an unknown card,
a line that is not a card number and garbage bytes are each reported as a
``RejectedRecord`` with the bytes and the reason.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from firmware_bridge.readers.cards import CardFormat, canonical_card
from firmware_bridge.readers.port import PortLoop, Status
from firmware_bridge.types import STATE_UNKNOWN, TIME_FROM_APPLIANCE, RawPunch, RejectedRecord

log = logging.getLogger(__name__)

VERIFY_CARD = 4  # the code ZK push firmware uses for a card
MAX_LINE = 64  # bytes without a line end: not a reader talking, drop them
_LINE_END = re.compile(rb"[\r\n\x03]")


class Clock(Protocol):
    def now(self) -> datetime: ...


class CardReader:
    """Reads ``url`` (any ``serial_for_url`` URL). Construction does no I/O; ``start()`` opens."""

    def __init__(
        self,
        reader_id: str,
        url: str,
        *,
        cards: Mapping[str, str],
        card_format: CardFormat,
        tz: tzinfo,
        clock: Clock,
        on_punch: Callable[[RawPunch], None],
        on_rejected: Callable[[RejectedRecord], None],
        on_status: Status | None = None,
        baudrate: int = 9600,
        repeat_window: timedelta = timedelta(seconds=3),
    ) -> None:
        self.reader_id = reader_id
        self._cards = {canonical_card(card): employee for card, employee in cards.items()}
        self._format = card_format
        self._tz = tz
        self._clock = clock
        self._on_punch = on_punch
        self._on_rejected = on_rejected
        self._repeat_window = repeat_window
        self._last_read: dict[str, datetime] = {}
        self._buffer = b""
        self.reads = 0  # lines seen since start: the ``index`` of each punch and rejection
        self.loop = PortLoop(reader_id, url, self._session, baudrate=baudrate, on_status=on_status)

    def start(self) -> CardReader:
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()

    def feed(self, data: bytes) -> None:
        """Bytes from the port, in any pieces: each complete line becomes a punch or a rejection."""
        self._buffer += data
        *lines, self._buffer = _LINE_END.split(self._buffer)
        if len(self._buffer) > MAX_LINE:
            lines.append(self._buffer)
            self._buffer = b""
        for line in lines:
            if line.strip(b"\x02 \t"):
                self._line(line)

    def _session(self, port: Any, stop: threading.Event) -> None:
        self._buffer = b""  # a partial line from before the port went away is not a read
        while not stop.is_set():
            data = port.read(max(1, port.in_waiting))
            if data:
                self.feed(data)

    def _line(self, line: bytes) -> None:
        index = self.reads
        self.reads += 1
        now = self._clock.now()
        try:
            card = self._format.parse(line)
        except ValueError as err:
            self._reject(index, line, f"不是卡号 / not a card read: {err}")
            return
        last = self._last_read.get(card)
        self._last_read[card] = now
        if last is not None and now - last < self._repeat_window:
            return  # the card is still held at the reader
        employee = self._cards.get(card)
        if employee is None:
            self._reject(index, line, f"未登记的卡 / unknown card {card}")
            return
        local = now.astimezone(self._tz).replace(tzinfo=None, microsecond=0)
        self._on_punch(
            RawPunch(
                terminal_sn=self.reader_id,
                user_id=employee,
                uid=0,
                device_time=local,
                at_utc=local.replace(tzinfo=self._tz).astimezone(UTC),
                verify=VERIFY_CARD,
                state=STATE_UNKNOWN,  # a reader has no in/out keys
                workcode=0,
                index=index,
                raw=line,
                time_source=TIME_FROM_APPLIANCE,
            )
        )

    def _reject(self, index: int, line: bytes, reason: str) -> None:
        log.debug("reader %s: %s (%r)", self.reader_id, reason, line)  # the appliance says it, once per episode
        self._on_rejected(RejectedRecord(self.reader_id, index, line, reason))
