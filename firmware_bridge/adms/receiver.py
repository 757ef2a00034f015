"""The ADMS ("iclock") push receiver: a WSGI app for terminals that only push.

Terminals are HTTP clients: they handshake with ``GET /iclock/cdata?SN=..&options=all``, push
punches with ``POST /iclock/cdata?SN=..&table=ATTLOG&Stamp=..``, poll ``/iclock/getrequest``
for commands and report results to ``/iclock/devicecmd``. They are identified only by the
serial number in the URL, so the receiver answers only the serial numbers it is given (an
unknown one gets ``403`` and is reported) and must be served on the plant LAN only
(``firmware_bridge.adms.server``).

Store, then acknowledge: a batch is answered ``OK`` only after the sink returned; if the sink
raises, the terminal gets ``503`` and keeps the records to push again. Nothing is lost; nothing
is delivered twice:

* The cursor is ``AttlogCursor(stamp, digest)``: the ``Stamp`` the terminal sent with the last
  batch stored and the SHA-256 of that batch's body. The sink stores it in the same transaction
  as the punches; ``cursor_of(serial)`` reads it back after a restart. A re-push of the same
  batch (same stamp, same bytes: the ``OK`` was lost) is answered ``OK`` and not delivered.
  The stamp alone is never trusted to drop data, since a terminal's stamps can go backwards
  (clock set back, log cleared).
* The handshake tells the terminal that stamp (``ATTLOGStamp=``), so after a reboot it resumes
  after it instead of re-sending its whole log.
* Within one process, punches already delivered (same terminal, PIN, time, verify, state, work
  code) are not delivered again when a terminal re-sends them inside a bigger batch; across a
  restart that overlap is left to the sink, which must be idempotent on that key (the
  appliance's ``PunchIngest`` is).

What a terminal sends is bounded before it is believed: a body above ``MAX_BODY_BYTES`` is
answered ``413``, one that cannot be read (a broken chunked encoding, a client gone) ``400``;
a ``Stamp`` that is not digits is treated as absent, and only digits are ever echoed into the
handshake (``Stamp=7004%0ATimeZone=-12`` would otherwise set the terminal's options). A line
that is not a punch is rejected on its own (``attlog``): the rest of its batch is stored.

Who each terminal knows (users, fingerprint templates) is kept in its ``TerminalDirectory``
(``directory``), from the users and fingers it uploads (OPERLOG, BIODATA), the counts it reports
with each poll and the results of the commands it confirmed; ``enrolment_source`` is the view the
appliance's enrolment plans with. ``on_poll`` is called at each ``getrequest`` before it is answered
(what it queues goes out in that answer) and after each ``devicecmd``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import format_datetime
from typing import Protocol

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from firmware_bridge.adms.attlog import PunchKey, body_bytes, parse_attlog, punch_key, split_lines
from firmware_bridge.adms.commands import Command, CommandQueue, CommandResult, parse_results
from firmware_bridge.adms.directory import PushEnrolmentSource, TerminalDirectory
from firmware_bridge.types import RawPunch, RejectedRecord
from firmware_bridge.zk.wire import encode_time

log = logging.getLogger(__name__)

RECENT_KEYS = 50_000  # punches remembered per terminal to drop re-sent overlap without asking the sink
# A terminal's whole 100,000-record log re-pushed in one body is about 4 MB: 16 MiB is well above
# any real batch, and bounds what one request can make the daemon hold.
MAX_BODY_BYTES = 16 * 1024 * 1024
LOGGED_REJECTS = 5  # rejected lines logged one by one per batch; the rest are counted
_STAMP = re.compile(r"[0-9]{1,20}")


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class PushTerminal:
    """A terminal allowed to push: its serial number, our name for it, its text encoding."""

    serial: str
    name: str = ""
    encoding: str = "gb18030"  # Chinese firmware; a superset of GBK and of ASCII

    @property
    def label(self) -> str:
        return self.name or self.serial


@dataclass(frozen=True, slots=True)
class AttlogCursor:
    stamp: str | None  # the terminal's Stamp= for the batch; None when its firmware sends none
    digest: str  # SHA-256 of the batch body, hex


@dataclass(frozen=True, slots=True)
class PushBatch:
    """One ATTLOG push: what the sink must store, with the cursor, in one transaction."""

    terminal: str  # our name for the terminal
    serial: str
    punches: tuple[RawPunch, ...]  # new punches only
    rejected: tuple[RejectedRecord, ...]  # lines that cannot be punches, with the reason
    cursor: AttlogCursor
    received_utc: datetime
    repeated: int  # punches in the body already delivered by this process (dropped)

    @property
    def newest_age_ms(self) -> int | None:
        """Receipt time minus the newest punch's time: a few seconds for a real-time push from a
        terminal whose clock is right; negative when the terminal's clock is ahead. An upper
        bound of the clock offset only when the batch was pushed as it happened."""
        if not self.punches:
            return None
        newest = max(p.at_utc for p in self.punches)
        return round((self.received_utc - newest).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class TableUpload:
    """A push of another table (OPERLOG, options, ...): recorded, not a punch."""

    serial: str
    table: str
    lines: tuple[str, ...]  # decoded in the terminal's encoding (undecodable bytes replaced)
    raw: bytes
    received_utc: datetime


@dataclass(frozen=True, slots=True)
class UnknownTerminal:
    serial: str
    address: str
    path: str
    seen_utc: datetime


@dataclass
class TerminalStatus:
    """Health of one push terminal as the receiver saw it (for the appliance's dashboard)."""

    serial: str
    name: str
    address: str = ""
    user_agent: str = ""
    last_contact: datetime | None = None
    last_push: datetime | None = None
    batches: int = 0
    punches: int = 0
    rejected: int = 0
    repeated_batches: int = 0
    failed_batches: int = 0  # the sink raised: the terminal was told to send again
    cursor: AttlogCursor | None = None
    cursor_loaded: bool = False
    operlog_stamp: str | None = None  # in memory only: operation logs are not evidence
    bad_stamps: int = 0  # Stamp= values that were not numbers (ignored; logged the first time)
    recent: deque[PunchKey] = field(default_factory=lambda: deque(maxlen=RECENT_KEYS), repr=False)
    recent_set: set[PunchKey] = field(default_factory=set, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True, slots=True)
class HandshakeOptions:
    """The options block. Delay/ErrorDelay are the terminal's poll and retry periods (seconds)."""

    delay_s: int = 5
    error_delay_s: int = 30
    trans_times: str = "00:00;23:59"
    trans_interval_min: int = 1
    realtime: bool = True  # push each punch as it happens


def _ignore(_: object) -> None:
    return None


class AdmsReceiver:
    """The receiver's state and its WSGI app. Construction does no I/O."""

    def __init__(
        self,
        terminals: Iterable[PushTerminal],
        sink: Callable[[PushBatch], None],
        *,
        clock: Clock,
        tz: tzinfo,
        cursor_of: Callable[[str], AttlogCursor | None] = lambda _serial: None,
        on_unknown: Callable[[UnknownTerminal], None] = _ignore,
        on_result: Callable[[CommandResult], None] = _ignore,
        on_table: Callable[[TableUpload], None] = _ignore,
        on_poll: Callable[[str], None] = _ignore,  # at each getrequest (before it is answered) and devicecmd
        options: HandshakeOptions | None = None,
        resend_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.terminals = {t.serial: t for t in terminals}
        self._sink = sink
        self._clock = clock
        self._tz = tz
        self._cursor_of = cursor_of
        self._on_unknown = on_unknown
        self._on_result = on_result
        self._on_table = on_table
        self._on_poll = on_poll
        self._options = options or HandshakeOptions()
        self.commands = CommandQueue(resend_after=resend_after)
        self._status = {s: TerminalStatus(s, t.label) for s, t in self.terminals.items()}
        self._directories = {s: TerminalDirectory(s) for s in self.terminals}
        self._unknown_seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # ---- what the appliance calls -------------------------------------------------------------

    def queue(self, serial: str, text: str, description: str = "") -> Command:
        """Queue a raw command (``INFO``, ``CHECK``, ``DATA QUERY USERINFO``...)."""
        self._require(serial)
        return self.commands.add(serial, lambda _now: text, description or text, self._clock.now())

    def sync_time(self, serial: str) -> Command:
        """Set the terminal's clock to ours, as of the moment the command is delivered.

        ``SET OPTION DateTime=<n>`` with ``n`` the terminal's 31-day-month time encoding of our
        time in the plant's zone. Only call it when the plant's policy says to correct clocks.
        """
        self._require(serial)

        def render(now: datetime) -> str:
            return f"SET OPTION DateTime={encode_time(now.astimezone(self._tz).replace(tzinfo=None))}"

        return self.commands.add(serial, render, "时间同步 / time sync", self._clock.now())

    def upload_user(self, serial: str, pin: str, name: str, *, privilege: int = 0, card: str = "") -> Command:
        """Create or update a worker on the terminal (``DATA UPDATE USERINFO``)."""
        self._require(serial)
        for value in (pin, name, card):
            if any(c in value for c in "\t\r\n"):
                raise ValueError(f"{value!r}: tabs and line breaks would split the command")
        text = f"DATA UPDATE USERINFO PIN={pin}\tName={name}\tPri={privilege}\tCard={card}"
        return self.commands.add(serial, lambda _now: text, f"上传员工 / upload user {pin}", self._clock.now())

    def status(self, serial: str) -> TerminalStatus:
        return self._status[serial]

    def directory(self, serial: str) -> TerminalDirectory:
        """Who the terminal knows (users, fingers), as its uploads and confirmed commands tell."""
        return self._directories[serial]

    def enrolment_source(self, serial: str) -> PushEnrolmentSource:
        """The terminal as the appliance's enrolment sees it: changes go out as commands at its next poll."""
        self._require(serial)
        terminal = self.terminals[serial]
        return PushEnrolmentSource(
            serial, self._directories[serial], self.commands, self._clock, encoding=terminal.encoding
        )

    def unknown_terminals(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._unknown_seen)

    def create_app(self, *, max_body_bytes: int = MAX_BODY_BYTES) -> Flask:
        app = Flask("firmware_bridge.adms")
        app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
        app.add_url_rule("/iclock/cdata", "cdata", self._cdata, methods=["GET", "POST"])
        app.add_url_rule("/iclock/getrequest", "getrequest", self._getrequest, methods=["GET", "POST"])
        app.add_url_rule("/iclock/devicecmd", "devicecmd", self._devicecmd, methods=["POST"])
        return app

    # ---- the three endpoints ------------------------------------------------------------------

    def _cdata(self) -> Response:
        terminal, refusal = self._identify()
        if terminal is None:
            return refusal
        if request.method == "GET":
            return self._handshake(terminal)
        raw = self._body()  # the raw body, before anything parses it as a form
        if isinstance(raw, Response):
            return raw
        body = body_bytes(raw, request.content_type or "")
        table = request.args.get("table", "").upper()
        stamp = self._stamp(terminal, request.args.get("Stamp"))
        if table == "ATTLOG":
            return self._attlog(terminal, body, stamp)
        lines = tuple(line.decode(terminal.encoding, errors="replace") for line in split_lines(body))
        if table == "OPERLOG" and stamp:
            self._status[terminal.serial].operlog_stamp = stamp
        if table in ("OPERLOG", "USERINFO", "FINGERTMP", "BIODATA"):
            self._directories[terminal.serial].take_upload(table, lines)
        self._on_table(TableUpload(terminal.serial, table, lines, body, self._clock.now()))
        return self._text("OK")

    def _getrequest(self) -> Response:
        terminal, refusal = self._identify()
        if terminal is None:
            return refusal
        self._directories[terminal.serial].take_report(request.args.get("INFO"))
        self._call_on_poll(terminal)  # what the appliance has for it goes out with this very answer
        due = self.commands.due(terminal.serial, self._clock.now())
        if not due:
            return self._text("OK")
        log.info("%s: sending %s", terminal.label, ", ".join(c.description for c in due))
        return self._text("\n".join(c.wire() for c in due) + "\n", terminal.encoding)

    def _devicecmd(self) -> Response:
        terminal, refusal = self._identify()
        if terminal is None:
            return refusal
        raw = self._body()
        if isinstance(raw, Response):
            return raw
        text = body_bytes(raw, request.content_type or "").decode(terminal.encoding, errors="replace")
        for result in self.commands.confirm(terminal.serial, parse_results(text), self._clock.now()):
            if result.matched:
                self._directories[terminal.serial].take_result(result.command, result.return_code, result.received_at)
            if not result.matched:
                log.warning(
                    "%s reported a result for command %d, which it was never sent", terminal.label, result.command_id
                )
            elif not result.ok:
                log.warning("%s: command %d failed: %s", terminal.label, result.command_id, result.meaning)
            self._on_result(result)
        self._call_on_poll(terminal)  # what it confirmed is signed now, not at its next poll
        return self._text("OK")

    # ---- the work -----------------------------------------------------------------------------

    def _attlog(self, terminal: PushTerminal, body: bytes, stamp: str | None) -> Response:
        status = self._status[terminal.serial]
        now = self._clock.now()
        cursor = AttlogCursor(stamp, hashlib.sha256(body).hexdigest())
        with status.lock:  # one writer per terminal
            if not self._load_cursor(terminal, status):
                return self._text("ERROR: store unavailable, send again", status=503)
            status.last_push = now
            if status.cursor == cursor:
                status.repeated_batches += 1
                log.info("%s re-sent batch %s, already stored", terminal.label, stamp)
                return self._text("OK")
            lines = split_lines(body)
            punches, rejected = parse_attlog(lines, serial=terminal.serial, tz=self._tz, encoding=terminal.encoding)
            fresh = [p for p in punches if punch_key(p) not in status.recent_set]
            batch = PushBatch(
                terminal.label, terminal.serial, tuple(fresh), tuple(rejected), cursor, now, len(punches) - len(fresh)
            )
            if fresh or rejected or lines:
                try:
                    self._sink(batch)
                except Exception as err:  # noqa: BLE001 - any failure to store must become "send again"
                    status.failed_batches += 1
                    status.cursor_loaded = False  # the store may hold it after all: ask it again next time
                    log.error(
                        "%s: batch %s not stored, the terminal will send it again: %r", terminal.label, stamp, err
                    )
                    return self._text("ERROR: not stored, send again", status=503)
            status.cursor = cursor
            status.batches += 1
            status.punches += len(fresh)
            status.rejected += len(rejected)
            for punch in fresh:
                self._remember(status, punch_key(punch))
        for record in rejected[:LOGGED_REJECTS]:
            log.warning("%s: line %d is not a punch (%s): %r", terminal.label, record.index, record.reason, record.raw)
        if len(rejected) > LOGGED_REJECTS:
            more = len(rejected) - LOGGED_REJECTS
            log.warning("%s: and %d more lines of that batch are not punches", terminal.label, more)
        return self._text("OK")

    def _handshake(self, terminal: PushTerminal) -> Response:
        status = self._status[terminal.serial]
        with status.lock:
            if not self._load_cursor(terminal, status):
                return self._text("ERROR: store unavailable, try again", status=503)
            stamp = _echo(status.cursor.stamp if status.cursor else None)  # a cursor stored before stamps were checked
            operlog_stamp = _echo(status.operlog_stamp)
        o = self._options
        lines = [
            f"GET OPTION FROM: {terminal.serial}",
            f"ATTLOGStamp={stamp}",
            f"Stamp={stamp}",  # the same, for pre-2.x firmware
            f"OPERLOGStamp={operlog_stamp}",
            "ATTPHOTOStamp=9999",  # no photos wanted
            f"ErrorDelay={o.error_delay_s}",
            f"Delay={o.delay_s}",
            f"TransTimes={o.trans_times}",
            f"TransInterval={o.trans_interval_min}",
            "TransFlag=TransData AttLog OpLog EnrollUser ChgUser",
            f"Realtime={int(o.realtime)}",
            "Encrypt=0",
            "ServerVer=2.4.1",
        ]
        offset = self._clock.now().astimezone(self._tz).utcoffset()
        if offset is not None and offset.total_seconds() % 3600 == 0:  # firmware reads whole hours only
            lines.append(f"TimeZone={int(offset.total_seconds() // 3600)}")
        return self._text("\n".join(lines) + "\n")

    def _stamp(self, terminal: PushTerminal, value: str | None) -> str | None:
        """The ``Stamp`` a terminal sent, if it is one: digits only, else treated as absent."""
        if value is None or value == "" or _STAMP.fullmatch(value):
            return value or None
        status = self._status[terminal.serial]
        status.bad_stamps += 1
        if status.bad_stamps == 1:
            log.warning("%s sent Stamp=%r, which is not a number: ignored (and not echoed)", terminal.label, value[:40])
        return None

    def _load_cursor(self, terminal: PushTerminal, status: TerminalStatus) -> bool:
        """The stored cursor, once per process (and again after a failed store). False: the store failed."""
        if not status.cursor_loaded:
            try:
                status.cursor = self._cursor_of(terminal.serial)
            except Exception as err:  # noqa: BLE001 - the terminal is told to try again, as for a failed store
                log.error("%s: cannot read the stored cursor, the terminal will try again: %r", terminal.label, err)
                return False
            status.cursor_loaded = True
        return True

    def _body(self) -> bytes | Response:
        """The request's body, or the answer to a body that is too large or cannot be read."""
        try:
            return request.get_data(cache=False)
        except RequestEntityTooLarge:
            return self._text("ERROR: body too large", status=413)
        except TimeoutError:
            return self._text("ERROR: body not received in time", status=408)
        except (OSError, ValueError, HTTPException) as err:  # a broken chunked encoding, a client gone
            log.info("unreadable request body from %s: %s", request.remote_addr, err)
            return self._text("ERROR: malformed body", status=400)

    def _identify(self) -> tuple[PushTerminal | None, Response]:
        serial = request.args.get("SN", "")
        address = request.remote_addr or ""
        terminal = self.terminals.get(serial)
        if terminal is None:
            with self._lock:
                first = (serial, address) not in self._unknown_seen
                self._unknown_seen.add((serial, address))
            if first:
                log.warning("refused a terminal with unknown serial number %r from %s", serial, address)
                self._on_unknown(UnknownTerminal(serial, address, request.path, self._clock.now()))
            return None, self._text("ERROR: unknown terminal", status=403 if serial else 400)
        status = self._status[serial]
        status.last_contact = self._clock.now()
        status.address = address
        status.user_agent = request.headers.get("User-Agent", "")
        return terminal, Response()

    def _call_on_poll(self, terminal: PushTerminal) -> None:
        try:
            self._on_poll(terminal.serial)
        except Exception:  # noqa: BLE001 - the terminal is answered all the same
            log.exception("%s: the appliance's work at its call failed", terminal.label)

    def _remember(self, status: TerminalStatus, key: PunchKey) -> None:
        if len(status.recent) == status.recent.maxlen:
            status.recent_set.discard(status.recent[0])
        status.recent.append(key)
        status.recent_set.add(key)

    def _require(self, serial: str) -> None:
        if serial not in self.terminals:
            raise KeyError(f"{serial!r} is not a known push terminal")

    def _text(self, text: str, encoding: str = "ascii", *, status: int = 200) -> Response:
        response = Response(text.encode(encoding), status=status, content_type="text/plain")
        # Some firmware sets its clock from this header: it must be our (injected, synchronised) clock.
        response.headers["Date"] = format_datetime(self._clock.now().astimezone(UTC), usegmt=True)
        return response


def _echo(stamp: str | None) -> str:
    """A stamp as the handshake may say it: digits, or ``None``."""
    return stamp if stamp is not None and _STAMP.fullmatch(stamp) else "None"
