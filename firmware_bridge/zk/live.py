"""Live capture: every punch as the terminal announces it, each acknowledged on its own.

How the appliance combines live capture with downloads (no punch lost, none counted twice):

1. Start ``LiveCapture``. Every time it has (re)registered for events it calls ``on_connect``, and
   when that registration ends (the link dropped, or ``stop()``) it calls ``on_disconnect``.
2. In ``on_connect``, schedule a catch-up read ``ZKTerminal.download(since_index=cursor - overlap,
   known_count=cursor)`` on the usual poll path. Registration comes first, so any punch made after
   it arrives live and any punch made before it (e.g. while the link was down) is in the log.
3. Live events carry no log index (``index == INDEX_LIVE``); both paths give the same
   ``RawPunch.key``, so a punch that arrives both ways is stored once.
4. Keep the periodic download as well, less often while events arrive (between ``on_connect`` and
   ``on_disconnect``): it is the proof that nothing was missed, and what a watermark rests on.

Events are handed to ``sink`` before they are acknowledged. If the sink raises, the event is not
acknowledged, the session is dropped and the reconnect (and its catch-up read) covers it.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from firmware_bridge.errors import TerminalError, TerminalUnreachable
from firmware_bridge.types import INDEX_LIVE, RawPunch, RejectedRecord
from firmware_bridge.zk import wire
from firmware_bridge.zk.records import parse_live_event
from firmware_bridge.zk.session import ZKSession

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the reader looks at the stop flag


@dataclass(frozen=True, slots=True)
class LivePunch:
    punch: RawPunch
    clock_offset_ms: int | None  # terminal minus our clock, measured at connect or the last keepalive
    received_at: datetime  # our clock when the event arrived (UTC)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits initial * 2**n, capped, times 0.5..1."""

    initial_s: float = 1.0
    max_s: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.initial_s * 2 ** min(failures - 1, 16)) * rng.uniform(0.5, 1.0)


class LiveCapture:
    """Registers for EF_ATTLOG on one terminal and reconnects until ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int = 4370,
        *,
        tz: tzinfo,
        sink: Callable[[LivePunch], None],
        comm_key: int = 0,
        udp: bool = False,
        timeout: float = 5.0,
        keepalive_s: float = 30.0,
        backoff: Backoff = Backoff(),
        on_connect: Callable[[str], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        on_rejected: Callable[[RejectedRecord], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._tz = tz
        self._sink = sink
        self._session_args = {"timeout": timeout, "comm_key": comm_key, "udp": udp}
        self._keepalive_s = keepalive_s
        self._backoff = backoff
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_rejected = on_rejected
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._asked_wall = datetime.min.replace(tzinfo=UTC)  # our clock when the keepalive went out
        self.connected = threading.Event()
        self.available: bool | None = None
        self.failures = 0
        self.serial = ""
        self.clock_offset_ms: int | None = None

    def __repr__(self) -> str:
        return f"LiveCapture({self.host}:{self.port})"

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name=f"zk-live-{self.host}:{self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Unregister, say EXIT and close; events that arrive until then are still delivered."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The capture loop (``start()`` runs it in a thread): connect, listen, back off, again."""
        while not self._stopping.is_set():
            try:
                self._listen_once()
            except TerminalError as err:
                self.failures += 1
                if self.available is not False:
                    log.warning("%s: live capture lost: %s", self, err)
                self.available = False
            except Exception:  # the top of the loop: a failing sink must not end capture for good
                log.exception("%s: unexpected error in live capture; reconnecting", self)
                self.failures += 1
                self.available = False
            finally:
                self._lost()
            self._stopping.wait(self._backoff.delay(self.failures, self._rng))

    def _lost(self) -> None:
        """The registration (if any) is over: say so once, before the backoff."""
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected and self._on_disconnect is not None:
            try:
                self._on_disconnect(self.serial)
            except Exception:  # the caller's bookkeeping must not end capture for good
                log.exception("%s: on_disconnect failed", self)

    def _listen_once(self) -> None:
        session = ZKSession(self.host, self.port, **self._session_args)  # type: ignore[arg-type]
        session.open()
        try:
            self.serial = session.option("~SerialNumber")
            self._measure(session)
            session.request(wire.CMD_CANCELCAPTURE)
            session.request(wire.CMD_STARTVERIFY)
            reply = session.request(wire.CMD_REG_EVENT, struct.pack("<I", wire.EF_ATTLOG))
            if reply.command != wire.CMD_ACK_OK:
                raise TerminalUnreachable(f"{session.where}: the terminal refused to send events ({reply.command})")
            self.failures = 0
            if self.available is not True:
                log.info("%s (%s): live capture running", self, self.serial)
            self.available = True
            self.connected.set()
            if self._on_connect is not None:
                self._on_connect(self.serial)
            self._pump(session)
            reply_to_stop = session.send(wire.CMD_REG_EVENT, struct.pack("<I", 0))
            self._drain_until(session, reply_to_stop)
        finally:
            session.close()

    def _pump(self, session: ZKSession) -> None:
        last_heard = time.monotonic()
        keepalive: int | None = None  # reply number of an unanswered GET_TIME
        asked_at = 0.0
        while not self._stopping.is_set():
            self._deliver_pending(session)
            packets = session.receive(timeout=POLL_S)
            if packets:
                last_heard = time.monotonic()
            for packet in packets:
                if packet.command == wire.CMD_REG_EVENT:
                    session.events.append(packet)
                elif keepalive is not None and packet.reply_id == keepalive:
                    self._record_offset(packet)
                    keepalive = None
            silent = time.monotonic() - last_heard
            if keepalive is None and silent > self._keepalive_s:
                asked_at = time.monotonic()
                keepalive = session.send(wire.CMD_GET_TIME)
                self._asked_wall = self._now()
            elif keepalive is not None and time.monotonic() - asked_at > self._keepalive_s:
                raise TerminalUnreachable(f"{session.where}: no answer to the keepalive")
        self._deliver_pending(session)

    def _drain_until(self, session: ZKSession, reply_id: int) -> None:
        """Deliver events that still arrive until the terminal confirms it stopped sending them."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for packet in session.receive(timeout=POLL_S):
                if packet.command == wire.CMD_REG_EVENT:
                    session.events.append(packet)
                elif packet.reply_id == reply_id:
                    self._deliver_pending(session)
                    return
            self._deliver_pending(session)

    def _deliver_pending(self, session: ZKSession) -> None:
        while session.events:
            packet = session.events[0]
            if packet.session_id == wire.EF_ATTLOG:  # the event code travels in the session field
                self._deliver(packet.payload)
            session.events.popleft()
            session.ack_event()

    def _deliver(self, payload: bytes) -> None:
        received_at = self._now()
        try:
            record = parse_live_event(payload)
        except (ValueError, UnicodeDecodeError) as err:
            log.warning("%s: a live event that is not a punch (%s): %s", self, err, payload.hex())
            if self._on_rejected is not None:
                self._on_rejected(RejectedRecord(self.serial, INDEX_LIVE, payload, str(err)))
            return
        punch = RawPunch(
            terminal_sn=self.serial,
            user_id=record.user_id,
            uid=0,  # events carry the badge number only
            device_time=record.time,
            at_utc=record.time.replace(tzinfo=self._tz).astimezone(UTC),
            verify=record.verify,
            state=record.state,
            workcode=record.workcode,
            index=INDEX_LIVE,
            raw=record.raw,
        )
        self._sink(LivePunch(punch, self.clock_offset_ms, received_at))

    def _measure(self, session: ZKSession) -> None:
        before = self._now()
        device = wire.decode_time(session.device_time())
        after = self._now()
        self._set_offset(device, before + (after - before) / 2)

    def _record_offset(self, packet: wire.Packet) -> None:
        if packet.command == wire.CMD_ACK_OK and len(packet.payload) >= 4:
            try:
                device = wire.decode_time(struct.unpack_from("<I", packet.payload)[0])
            except ValueError:
                return
            asked = self._asked_wall
            self._set_offset(device, asked + (self._now() - asked) / 2)

    def _set_offset(self, device: datetime, ours: datetime) -> None:
        self.clock_offset_ms = round((device.replace(tzinfo=self._tz) - ours).total_seconds() * 1000)
