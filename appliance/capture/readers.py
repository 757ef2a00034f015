"""Serial readers in the appliance daemon: card / Wiegand line readers and R30x fingerprint modules.

A reader has no clock and no log: each read becomes a punch timed by the appliance's clock
(``term.time_src = "appliance"`` in the record) and goes through group commit like a ZK live
event. A card or a finger page not in the plant's table is not a punch, but it is evidence that
someone presented it at that moment, so each such read is kept as an ``incident`` record
(``unknown_card``, ``unknown_page``, ``finger_not_identified``, ``bad_reader_read``); the log
says it once per card or page and run.

A line that keeps sending garbage (electrical noise, a reader at the wrong baud rate) must not flood the
signed log, the SD card and head office: the first unreadable read is kept as ``bad_reader_read`` as
any other; if more follow, they are counted as one episode, a ``reader_noise`` incident says when it
began with a count (``state`` ``began``), at most one more every ``NOISE_REPORT_S`` while it goes on
(``continues``), and one when it ends (``ended``: a good read, or ``NOISE_QUIET_S`` without garbage).
While it lasts the reader's row on the board shows the alarm, and the journal says it once.

Health: the row of a reader says it is available while its port is open; its last contact
moves on with every health tick while it is (an open port that stays silent has missed nothing).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from appliance.capture.devicehealth import Ticker, record_health
from appliance.capture.ingest import PunchIngest
from appliance.capture.provenance import Identity, Provenance
from appliance.clock import Clock, to_ms
from appliance.config import CardReaderSettings, ConfigError, R30xReaderSettings, Settings
from appliance.idmap import IdMapError, load_cards, load_pages
from firmware_bridge.readers import r30x
from firmware_bridge.readers.card_reader import CardReader
from firmware_bridge.readers.cards import CardFormat, card_format
from firmware_bridge.readers.fingerprint import FingerprintReader
from firmware_bridge.types import RawPunch, RejectedRecord

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 10.0
NOISE_AFTER = 3  # unreadable reads in one episode before it is a noisy line, not a damaged card
NOISE_REPORT_S = 600.0  # while a line stays noisy: one signed record per this many seconds at most
NOISE_QUIET_S = 60.0  # this long without garbage ends an episode
NOISE_ALARM = (
    "读卡器持续发送无法识别的数据，请检查接线和波特率 / the reader keeps sending unreadable data: "
    "check its wiring and baud rate"
)
T = TypeVar("T")
Reader = CardReader | FingerprintReader


class SerialReaders:
    """Every configured reader, each on its own thread. Construction does no I/O."""

    def __init__(
        self,
        settings: Settings,
        ingest: PunchIngest,
        clock: Clock,
        *,
        health_every_s: float = HEALTH_EVERY_S,
        provenance: Provenance | None = None,
    ) -> None:
        self._settings = settings
        self._provenance = provenance  # signs each reader's type and port (the daemon's; appliance.capture.provenance)
        self._identities: dict[str, Identity] = {}
        self._ingest = ingest
        self._clock = clock
        self.readers: dict[str, Reader] = {}
        self._told: set[tuple[str, str]] = set()  # (reader, card or page) already logged as unknown
        self._ticker = Ticker("reader-health", self.tick, health_every_s)
        self._contact = threading.Lock()  # a contact's time is read and written in one step: none goes back
        self._noise: dict[str, _Noise] = {}  # reader -> its noise episode in progress (under self._contact)

    def start(self) -> None:
        """Read the card and page tables, then open every port (a missing port is retried, not fatal)."""
        settings = self._settings
        for card in settings.terminals_of(CardReaderSettings):
            fmt = card_format(card.card_format)
            self.readers[card.name] = CardReader(
                card.name,
                card.url,
                cards=self._table(load_cards, card.cards_file, card.name),
                card_format=fmt,
                tz=settings.plant.tz,
                clock=self._clock,
                on_punch=partial(self._punch, card.name, "card"),
                on_rejected=partial(self._card_rejected, card.name, fmt),
                on_status=partial(self._status, card.name),
                baudrate=card.baudrate,
                repeat_window=timedelta(seconds=card.repeat_seconds),
            )
            model = f"serial card reader ({card.card_format})"
            self._identities[card.name] = Identity(card.name, "card", card.name, model=model, port=card.url)
        for module in settings.terminals_of(R30xReaderSettings):
            self.readers[module.name] = FingerprintReader(
                module.name,
                module.url,
                pages=self._table(load_pages, module.pages_file, module.name),
                tz=settings.plant.tz,
                clock=self._clock,
                on_punch=partial(self._punch, module.name, "r30x"),
                on_rejected=partial(self._finger_rejected, module.name),
                on_status=partial(self._status, module.name),
                baudrate=module.baudrate,
                password=module.password,
                address=module.address,
            )
            model = "R30x fingerprint module"
            self._identities[module.name] = Identity(module.name, "r30x", module.name, model=model, port=module.url)
        for name in self.readers:
            record_health(name, serial=name)
        for reader in self.readers.values():
            reader.start()
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()
        for reader in self.readers.values():
            reader.stop()

    def tick(self) -> None:
        with self._contact:
            now_ms = to_ms(self._clock.now())
            for name, episode in list(self._noise.items()):
                if now_ms - episode.last_ms >= NOISE_QUIET_S * 1000:
                    self._noise_ended(name, "quiet")
            for name, reader in self.readers.items():
                if reader.loop.available:
                    error = NOISE_ALARM if name in self._noise and self._noise[name].loud else ""
                    record_health(name, available=True, last_contact_ms=now_ms, last_error=error)

    def _table(self, load: Callable[[Path], T], path: str, name: str) -> T:
        try:
            return load(Path(path))
        except IdMapError as err:  # changed since the configuration was checked
            raise ConfigError(self._settings.source, [f"terminals.{name}: {err}"]) from err

    def _punch(self, name: str, src: str, punch: RawPunch) -> None:
        self._calm(name)
        if self._provenance is not None:  # the reader's type and port, signed on the first read of each day
            self._provenance.seen(self._identities[name])
        self._ingest.accept_read(name, punch, src)

    def _status(self, name: str, available: bool, reason: str) -> None:
        with self._contact:
            fields: dict[str, object] = {"available": available, "last_error": reason}
            if available:
                fields["last_contact_ms"] = to_ms(self._clock.now())
            record_health(name, **fields)

    def _card_rejected(self, name: str, fmt: CardFormat, record: RejectedRecord) -> None:
        try:
            card = fmt.parse(record.raw)
        except ValueError:
            self._garbage(name, record)
            return
        self._calm(name)
        self._tell_once(name, card, "card %s is not in the card table", card)
        self._incident(name, "unknown_card", record, {"card": card})

    def _finger_rejected(self, name: str, record: RejectedRecord) -> None:
        page = _matched_page(record.raw)
        if page is None:
            self._incident(name, "finger_not_identified", record, {})
            return
        self._tell_once(name, f"page {page}", "fingerprint page %d is not in the page table", page)
        self._incident(name, "unknown_page", record, {"page": page})

    def _garbage(self, name: str, record: RejectedRecord) -> None:
        """An unreadable read: the first of an episode is kept whole; the rest are counted."""
        with self._contact:
            now_ms = to_ms(self._clock.now())
            episode = self._noise.get(name)
            if episode is None:
                self._noise[name] = _Noise(record.terminal_sn, now_ms, now_ms, 1, len(record.raw), record.raw)
                self._incident(name, "bad_reader_read", record, {})
                return
            episode.reads += 1
            episode.bytes += len(record.raw)
            episode.last_ms, episode.sample = now_ms, record.raw
            if not episode.loud and episode.reads >= NOISE_AFTER:
                episode.loud = True
                log.warning(
                    "reader %s keeps sending unreadable data (%d reads since %s): check its wiring and baud rate; "
                    "counted, not recorded one by one",
                    name,
                    episode.reads,
                    self._local(episode.since_ms),
                )
                record_health(name, last_error=NOISE_ALARM)
                self._noise_record(name, "began")
            elif episode.loud and now_ms - episode.reported_ms >= NOISE_REPORT_S * 1000:
                self._noise_record(name, "continues")

    def _calm(self, name: str) -> None:
        """A readable read: a noise episode in progress is over."""
        if name in self._noise:
            with self._contact:
                if name in self._noise:
                    self._noise_ended(name, "read")

    def _noise_ended(self, name: str, why: str) -> None:
        episode = self._noise.pop(name)
        if not episode.loud:
            return  # one or two bad reads (a damaged card): each is already recorded
        log.info("reader %s: readable again after %d unreadable reads (%s)", name, episode.reads, why)
        record_health(name, last_error="")
        self._noise_record(name, "ended", episode)

    def _noise_record(self, name: str, state: str, episode: _Noise | None = None) -> None:
        episode = episode or self._noise[name]
        episode.reported_ms = to_ms(self._clock.now())
        term = {
            "name": name,
            "sn": episode.serial,
            "since_ms": episode.since_ms,
            "last_ms": episode.last_ms,
            "reads": episode.reads,
            "bytes": episode.bytes,
            "raw": episode.sample.hex(),  # the latest unreadable read, as a sample
        }
        reason = f"读卡器发送无法识别的数据 / reader sending unreadable data since {self._local(episode.since_ms)}"
        self._ingest.accept_incident("reader_noise", {"reason": reason, "state": state, "term": term})

    def _local(self, at_ms: int) -> str:
        return datetime.fromtimestamp(at_ms / 1000, self._settings.plant.tz).strftime("%Y-%m-%d %H:%M:%S")

    def _tell_once(self, name: str, key: str, message: str, value: object) -> None:
        if (name, key) not in self._told:
            self._told.add((name, key))
            log.warning("reader %s: " + message + "; each read is kept as an incident", name, value)

    def _incident(self, name: str, kind: str, record: RejectedRecord, detail: dict[str, object]) -> None:
        term = {"name": name, "sn": record.terminal_sn, "idx": record.index, "raw": record.raw.hex(), **detail}
        self._ingest.accept_incident(kind, {"reason": record.reason, "term": term})


@dataclass
class _Noise:
    """One reader's run of unreadable reads."""

    serial: str
    since_ms: int
    last_ms: int
    reads: int
    bytes: int
    sample: bytes
    loud: bool = False  # past NOISE_AFTER: a noisy line, counted and on the board
    reported_ms: int = 0


def _matched_page(raw: bytes) -> int | None:
    """The page of a successful Search acknowledgement (a finger matched, but to no one we know)."""
    for item in r30x.Deframer().feed(raw):
        if isinstance(item, r30x.Packet) and item.code == r30x.OK and len(item.payload) >= 5:
            return int(struct.unpack_from(">H", item.payload, 1)[0])
    return None
