"""An R30x fingerprint module on a serial port, used as a punch reader (our own kiosk).

The module only answers: "is a finger on the sensor?" (GenImg), "extract its features"
(Img2Tz), "which page of my library is it?" (Search). It returns a page number, never an
employee, so the reader maps pages to employees; templates live only in the module's flash.
It has no clock and keeps no log: the punch's time is the appliance's clock at the match
(``time_source="appliance"``), and the Search acknowledgement is kept as the punch's raw bytes.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from firmware_bridge.errors import TerminalAuthFailed, TerminalProtocolError, TerminalUnreachable
from firmware_bridge.readers import r30x
from firmware_bridge.readers.port import PortLoop, Status
from firmware_bridge.types import STATE_UNKNOWN, TIME_FROM_APPLIANCE, RawPunch, RejectedRecord

log = logging.getLogger(__name__)

VERIFY_FINGERPRINT = 1  # as ZK terminals report it


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Match:
    page: int
    score: int
    raw: bytes  # the Search acknowledgement as received


class NoMatch(Exception):
    """A finger was read but is not in the module's library (or its image was unusable)."""

    def __init__(self, code: int, raw: bytes) -> None:
        super().__init__(r30x.meaning(code))
        self.code = code
        self.raw = raw


class R30xModule:
    """The command/acknowledgement exchange over an open port."""

    def __init__(
        self,
        port: Any,
        *,
        address: int = r30x.DEFAULT_ADDRESS,
        timeout: float = 1.0,
        retries: int = 2,
        on_bad_packet: Callable[[r30x.R30xChecksumError], None] = lambda err: log.warning("%s", err),
    ) -> None:
        self._port = port
        self._address = address
        self._timeout = timeout
        self._retries = retries
        self._on_bad_packet = on_bad_packet
        self._deframer = r30x.Deframer()

    def call(self, packet: r30x.Packet) -> r30x.Packet:
        """Send a command and return its acknowledgement. Garbage before it is skipped; a reply
        with a bad checksum is discarded, reported, and the command sent again (every command
        used here is safe to repeat); after ``retries`` bad replies ``R30xChecksumError`` is raised."""
        for attempt in range(self._retries + 1):
            try:
                return self._exchange(packet)
            except r30x.R30xChecksumError as err:
                self._on_bad_packet(err)
                if attempt == self._retries:
                    raise
        raise AssertionError("unreachable")

    def _exchange(self, packet: r30x.Packet) -> r30x.Packet:
        self._port.reset_input_buffer()
        self._deframer = r30x.Deframer()
        self._port.write(packet.encode())
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            data = self._port.read(max(1, self._port.in_waiting))
            for item in self._deframer.feed(data):
                if isinstance(item, r30x.R30xChecksumError):
                    raise item
                if item.pid == r30x.PID_ACK and item.address == self._address:
                    return item
        raise TerminalUnreachable(f"指纹模块无应答 / the fingerprint module did not answer in {self._timeout}s")

    def verify_password(self, password: int) -> None:
        reply = self.call(r30x.command(r30x.VFY_PWD, struct.pack(">I", password), self._address))
        if reply.code == 0x13:
            raise TerminalAuthFailed("指纹模块口令错误 / the fingerprint module refused the password")
        if reply.code != r30x.OK:
            raise TerminalProtocolError(f"VfyPwd: {r30x.meaning(reply.code)}")

    def library_size(self) -> int:
        reply = self.call(r30x.command(r30x.READ_SYS_PARA, address=self._address))
        if reply.code != r30x.OK or len(reply.payload) < 17:
            raise TerminalProtocolError(f"ReadSysPara: {r30x.meaning(reply.code)}")
        return struct.unpack_from(">H", reply.payload, 1 + 4)[0]  # status u16, system id u16, library u16

    def finger_present(self) -> bool:
        reply = self.call(r30x.command(r30x.GEN_IMG, address=self._address))
        if reply.code not in (r30x.OK, r30x.NO_FINGER):
            log.debug("GenImg: %s", r30x.meaning(reply.code))  # a smudge: the next poll tries again
        return reply.code == r30x.OK

    def identify(self, pages: int) -> Match:
        """After ``finger_present``: features into buffer 1, then search pages 0..pages-1."""
        reply = self.call(r30x.command(r30x.IMG2TZ, b"\x01", self._address))
        if reply.code != r30x.OK:
            raise NoMatch(reply.code, reply.encode())
        reply = self.call(r30x.search(1, 0, pages, self._address))
        if reply.code != r30x.OK or len(reply.payload) < 5:
            raise NoMatch(reply.code, reply.encode())
        page, score = struct.unpack_from(">HH", reply.payload, 1)
        return Match(page, score, reply.encode())


class FingerprintReader:
    """Polls a module for fingers and turns matches into punches. No I/O until ``start()``."""

    def __init__(
        self,
        reader_id: str,
        url: str,
        *,
        pages: Mapping[int, str],
        tz: tzinfo,
        clock: Clock,
        on_punch: Callable[[RawPunch], None],
        on_rejected: Callable[[RejectedRecord], None],
        on_status: Status | None = None,
        baudrate: int = 57600,
        password: int = 0,
        address: int = r30x.DEFAULT_ADDRESS,
        idle_s: float = 0.05,
    ) -> None:
        self.reader_id = reader_id
        self._pages = dict(pages)
        self._tz = tz
        self._clock = clock
        self._on_punch = on_punch
        self._on_rejected = on_rejected
        self._password = password
        self._address = address
        self._idle_s = idle_s
        self.reads = 0
        self.bad_replies = 0  # packets discarded for a bad checksum (the command was sent again)
        self.loop = PortLoop(reader_id, url, self._session, baudrate=baudrate, on_status=on_status)

    def start(self) -> FingerprintReader:
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()

    def _session(self, port: Any, stop: threading.Event) -> None:
        module = R30xModule(port, address=self._address, on_bad_packet=self._bad_packet)
        module.verify_password(self._password)
        library = module.library_size()
        log.info("reader %s: fingerprint module with %d pages", self.reader_id, library)
        waiting_for_lift = False
        while not stop.is_set():
            try:
                present = module.finger_present()
                if present and not waiting_for_lift:
                    waiting_for_lift = True  # one punch per touch
                    self._matched(module.identify(library))
                elif not present:
                    waiting_for_lift = False
                    stop.wait(self._idle_s)
            except NoMatch as miss:
                self._rejected(miss.raw, f"未识别的指纹 / finger not identified: {miss}")

    def _bad_packet(self, err: r30x.R30xChecksumError) -> None:
        self.bad_replies += 1
        log.warning("reader %s: %s", self.reader_id, err)

    def _matched(self, match: Match) -> None:
        employee = self._pages.get(match.page)
        if employee is None:
            self._rejected(match.raw, f"指纹页 {match.page} 未对应员工 / page {match.page} is not mapped to anyone")
            return
        index = self.reads
        self.reads += 1
        local = self._clock.now().astimezone(self._tz).replace(tzinfo=None, microsecond=0)
        self._on_punch(
            RawPunch(
                terminal_sn=self.reader_id,
                user_id=employee,
                uid=match.page,  # the module's slot, as a terminal's uid is
                device_time=local,
                at_utc=local.replace(tzinfo=self._tz).astimezone(UTC),
                verify=VERIFY_FINGERPRINT,
                state=STATE_UNKNOWN,
                workcode=0,
                index=index,
                raw=match.raw,
                time_source=TIME_FROM_APPLIANCE,
            )
        )

    def _rejected(self, raw: bytes, reason: str) -> None:
        index = self.reads
        self.reads += 1
        log.info("reader %s: %s", self.reader_id, reason)
        self._on_rejected(RejectedRecord(self.reader_id, index, raw, reason))
