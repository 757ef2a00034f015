"""Push (ADMS / iclock) terminals in the appliance daemon.

The receiver runs here, in the daemon that owns the database writes, never in a web worker, and
listens only on the plant-LAN address of ``[push]``. Each batch is stored, signed, with its
cursor, before the terminal hears ``OK`` (``PunchIngest.accept_push``). A terminal whose serial
number is not configured is refused and kept as an ``unknown_terminal`` incident, once per
address and run. Anything on the LAN can reach the port, so the receiver's limits
(``firmware_bridge.adms.connections.Limits``: open connections, worker threads, silence, time
per request, body size) bound what it can take from this daemon, which also signs and polls
every terminal.

If the address cannot be bound (the interface is not up yet at boot), the ZK terminals and
readers carry on; the push terminals show as unavailable with the reason, and binding is tried
again at every health tick.

Enrolment (``appliance.capture.enrolment``, as for ZK terminals): at each terminal's ``getrequest``
poll, before the receiver answers it, the terminal's ``TerminalEnrolment`` signs what the terminal
confirmed since (``devicecmd``), plans against what it holds (``firmware_bridge.adms.directory``:
its uploads and confirmed commands) and queues the changes, which go out in that very answer. One
poll of a terminal at a time plans; a terminal that stopped calling has its leavers' stored fingers
deleted at the health tick all the same.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import peewee as pw

from appliance.capture.devicehealth import Ticker, record_health
from appliance.capture.enrolment import TerminalEnrolment
from appliance.capture.ingest import PunchIngest
from appliance.capture.provenance import Identity, Provenance
from appliance.clock import Clock, to_ms
from appliance.config import AdmsTerminalSettings, Settings
from firmware_bridge.adms.receiver import AdmsReceiver, PushTerminal, TableUpload, UnknownTerminal
from firmware_bridge.adms.server import AdmsServer

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 10.0
A = TypeVar("A")
R = TypeVar("R")


class PushTerminals:
    """The receiver, its HTTP server and the health of each push terminal. Construction does no I/O."""

    def __init__(
        self,
        settings: Settings,
        ingest: PunchIngest,
        clock: Clock,
        db: pw.Database,
        *,
        health_every_s: float = HEALTH_EVERY_S,
        provenance: Provenance | None = None,
    ) -> None:
        self._db = db
        self._provenance = provenance  # signs each terminal's serial (the daemon's; appliance.capture.provenance)
        self._ingest = ingest
        self._clock = clock
        self._terminals = settings.terminals_of(AdmsTerminalSettings)
        self._offline_after = timedelta(seconds=settings.push.offline_after_s)
        self.receiver = AdmsReceiver(
            [PushTerminal(t.serial, t.name, t.encoding) for t in self._terminals],
            self._per_request(ingest.accept_push),
            clock=clock,
            tz=settings.plant.tz,
            cursor_of=self._per_request(ingest.push_cursor),
            on_unknown=self._unknown,
            on_table=self._table,
            on_poll=self._poll,
        )
        self._bind = (settings.push.host, settings.push.port)
        self.server = AdmsServer(self.receiver, *self._bind, limits=settings.push.limits())
        self.listening = False
        self._bind_error = ""
        self._available: dict[str, bool | None] = {t.serial: None for t in self._terminals}
        self._ticker = Ticker("push-health", self.tick, health_every_s)
        self.enrolments = {
            t.serial: TerminalEnrolment(
                t.name, self.receiver.enrolment_source(t.serial), ingest.writer, clock, tz=settings.plant.tz
            )
            for t in self._terminals
        }
        self._enrolling = {t.serial: threading.Lock() for t in self._terminals}

    def start(self) -> None:
        for terminal in self._terminals:
            record_health(terminal.name, serial=terminal.serial)
        self._listen()
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()
        if self.listening:
            self.server.stop()
            self.listening = False

    def tick(self) -> None:
        """Bind if not yet bound; then each terminal's row: available while it keeps calling."""
        if not self.listening:
            self._listen()
        now = self._clock.now()
        for terminal in self._terminals:
            status = self.receiver.status(terminal.serial)
            last = status.last_contact
            available = self.listening and last is not None and now - last < self._offline_after
            if not self.listening:
                error = self._bind_error
            elif last is None:
                error = "尚未联系 / the terminal has not called yet"
            elif not available:
                error = (
                    f"{(now - last).total_seconds():.0f} 秒未联系 / no call for {(now - last).total_seconds():.0f} s"
                )
            else:
                error = ""
            fields: dict[str, object] = {"serial": terminal.serial, "available": available, "last_error": error}
            if last is not None:
                fields["last_contact_ms"] = to_ms(last)
            record_health(terminal.name, **fields)
            if available and self._provenance is not None:  # its serial, checked by the receiver, once a day
                self._provenance.seen(Identity(terminal.name, "adms", terminal.serial))
            if not available:  # its enrolment waits for its next call; a leaver's stored fingers do not
                with self._enrolling[terminal.serial]:
                    self.enrolments[terminal.serial].forget_leavers()
            if available != self._available[terminal.serial]:
                if available:
                    log.info("push terminal %s (%s) calling from %s", terminal.name, terminal.serial, status.address)
                elif self._available[terminal.serial] is not None or last is not None:
                    log.warning("push terminal %s (%s) unavailable: %s", terminal.name, terminal.serial, error)
                self._available[terminal.serial] = available

    def _listen(self) -> None:
        host, port = self._bind
        try:
            _probe_bind(host, port)
            self.server.start()
        except OSError as err:
            reason = f"ADMS 接收端无法监听 / receiver cannot listen on {host}:{port}: {err}"
            if reason != self._bind_error:
                log.error("%s; push terminals cannot reach the appliance until it can", reason)
            self._bind_error = reason
            return
        self.listening, self._bind_error = True, ""

    def _per_request(self, func: Callable[[A], R]) -> Callable[[A], R]:
        """The server answers each request on a thread of its own: its database connection is
        closed with it, rather than left to the garbage collector."""

        def call(arg: A) -> R:
            with self._db.connection_context():
                return func(arg)

        return call

    def _poll(self, serial: str) -> None:
        """The terminal calls for commands: its enrolment's changes go out with the answer."""
        lock = self._enrolling[serial]
        if not lock.acquire(blocking=False):
            return  # a poll of the same terminal is being answered; this one plans nothing
        try:
            with self._db.connection_context():
                self.enrolments[serial].sync()
        finally:
            lock.release()

    def _unknown(self, unknown: UnknownTerminal) -> None:
        """Refused (the receiver answered 403); kept as evidence that something else is pushing."""
        self._ingest.accept_incident(
            "unknown_terminal",
            {"term": {"sn": unknown.serial, "addr": unknown.address, "path": unknown.path}},
        )

    def _table(self, upload: TableUpload) -> None:
        log.info("push terminal %s sent %d %s line(s)", upload.serial, len(upload.lines), upload.table or "?")


def _probe_bind(host: str, port: int) -> None:
    """Raise the ``OSError`` a bind would: werkzeug prints it and calls ``sys.exit`` instead."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        sock.bind((host.strip("[]"), port))
