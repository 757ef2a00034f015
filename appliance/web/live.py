"""Live updates pushed to the pages: one watcher per gunicorn worker, fanned out to every stream.

The daemon writes SQLite; the pages only read it. Instead of each open page asking the database
(the kiosk used to, twice a second), one thread per worker process asks two cheap questions every
``TICK_S`` — the highest punch seq and the evaluator's pass counter (and every second, the
terminals' and the uplink's state: ``status_token``) — and, when a punch arrived,
reads the new punches once and keeps what the kiosk shows of them in a short ring. Every
Server-Sent-Events stream of that worker waits on one condition and sends from memory, so 20
kiosks and a room of boards cost the database the same as one.

A stream holds one gunicorn thread (``gthread`` worker, see ``appliance.web.serving``) for as long
as the page is open; ``max_streams`` per worker keeps threads free for ordinary page requests,
and the stream past the cap gets a 503 the page understands (it falls back to polling). Nothing
starts at import or in the constructor: the thread starts with the first stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import peewee as pw
from flask import Flask, Response

from appliance.store import EvaluatorState, Punch, SyncState, TerminalHealth
from opskit.urlints import MAX_ID, whole_number

log = logging.getLogger(__name__)

TICK_S = 0.1  # punch durable -> on the kiosk well inside its second
HEARTBEAT_S = 15.0  # a comment line: keeps proxies and NAT from closing an idle stream, finds dead clients
RETRY_MS = 1000  # how soon a browser reconnects after a dropped stream
KEEP = 256  # kiosk events kept for a reconnecting kiosk (Last-Event-ID)
RECENT_MS = 10 * 60_000  # older punches (a terminal's backlog read late) are not news to the floor
FIRST = 5  # a kiosk just opened: the last few punches
BATCH = 500  # punches read per tick at most; a bigger backlog is read over the next ticks
STATUS_EVERY = 10  # ticks between reads of the terminals' and the uplink's state
MINUTE_MS = 60_000

_HUBS: weakref.WeakSet[Hub] = weakref.WeakSet()


def stop_all() -> None:
    """The worker is stopping (SIGTERM): end every stream now, so gunicorn need not wait for them."""
    for hub in list(_HUBS):
        hub.stop()


def sse(data: Any, *, event: str | None = None, id: str | None = None) -> str:
    """One Server-Sent Event; ``data`` as one line of JSON."""
    head = (f"id: {id}\n" if id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def status_token() -> str:
    """What the board's status part shows that is neither a punch nor a pass: each terminal's state
    (online, live events, error, clock alarm), the uplink's, and the minute of the latest contact
    and acknowledgement (the times shown move on once a minute, not at every read).

    Part of the board's version, so a terminal going offline reaches every open board at once,
    with no punch needed to carry it."""
    terminals = (
        TerminalHealth.select(
            TerminalHealth.name,
            TerminalHealth.available,
            TerminalHealth.live_since_ms.is_null(),
            TerminalHealth.last_error,
            TerminalHealth.clock_alarm_ms.is_null(),
        )
        .order_by(TerminalHealth.name)
        .tuples()
    )
    contact = TerminalHealth.select(pw.fn.MAX(TerminalHealth.last_contact_ms)).scalar() or 0
    sync = SyncState.select(SyncState.connected, SyncState.last_error, SyncState.acked_at_ms).tuples()
    seen = [(connected, error, (acked or 0) // MINUTE_MS) for connected, error, acked in sync]
    return f"{zlib.crc32(repr((list(terminals), contact // MINUTE_MS, seen)).encode()):08x}"


def offline_terminals() -> list[str]:
    """The names of the terminals the appliance cannot read now (the kiosk's banner)."""
    query = TerminalHealth.select(TerminalHealth.name).where(~TerminalHealth.available).order_by(TerminalHealth.name)
    return [name for (name,) in query.tuples()]


class Hub:
    """What one worker process knows of the database, refreshed every tick, for all its streams."""

    def __init__(
        self,
        db: pw.Database,
        shown: Callable[[list[Punch]], list[dict[str, Any]]],
        *,
        max_streams: int,
        tick_s: float = TICK_S,
        heartbeat_s: float = HEARTBEAT_S,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._db = db
        self._shown = shown
        self.max_streams = max_streams
        self.tick_s = tick_s
        self.heartbeat_s = heartbeat_s
        self.now_ms = now_ms
        self._cond = threading.Condition()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failing = False
        self.streams = 0
        self.generation = 0  # bumped at every change; a stream waits for it to move
        self.version = ""  # the board's: "<board version>.<last punch seq>.<status token>"
        self._status = ""
        self.last_seq = -1
        self.offline: list[str] = []  # the terminals the appliance cannot read (the kiosk says so)
        self.ticks = 0
        self.kiosk: deque[tuple[int, int, dict[str, Any]]] = deque(maxlen=KEEP)  # (seq, at_ms, shown)
        _HUBS.add(self)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Read the current state once and start the watcher (idempotent; the first stream calls it)."""
        with self._start_lock:
            if self._thread is not None:
                return
            self.refresh(first=True)
            self._thread = threading.Thread(target=self._run, name="live-pages", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def status(self) -> str:
        """``status_token()``, as of the last second while the watcher runs (a board polling every
        second costs no query for it), read now otherwise."""
        if self._thread is not None and self._thread.is_alive() and self._status:
            return self._status
        return status_token()

    def _run(self) -> None:
        while not self._stopping.wait(self.tick_s):
            try:
                self.refresh()
            except pw.PeeweeException as err:  # the top of the loop: a locked or missing file; log the change
                if not self._failing:
                    log.warning("live pages: cannot read the database: %s", err)
                self._failing = True
                continue
            if self._failing:
                log.info("live pages: reading the database again")
                self._failing = False
        if not self._db.is_closed():
            self._db.close()

    # -- the watcher -------------------------------------------------------------------------
    def refresh(self, *, first: bool = False) -> bool:
        """Ask the database what changed; True if something did (and the streams were woken)."""
        self._db.connect(reuse_if_open=True)
        last = Punch.select(pw.fn.MAX(Punch.seq)).scalar()
        last = -1 if last is None else last
        passes = EvaluatorState.select(EvaluatorState.board_version).where(EvaluatorState.id == 1).scalar() or 0
        if first or self.ticks % STATUS_EVERY == 0:
            self._status = status_token()
            offline = offline_terminals()
            if offline != self.offline:
                with self._cond:
                    self.offline = offline
                    self.generation += 1
                    self._cond.notify_all()
        self.ticks += 1
        new: list[tuple[int, int, dict[str, Any]]] = []
        if last > self.last_seq:
            recent = self.now_ms() - RECENT_MS
            query = Punch.select().where(Punch.seq > self.last_seq)
            if first:  # only the last few; the rest were news before this worker started
                rows = list(reversed(query.where(Punch.at_utc_ms >= recent).order_by(Punch.seq.desc()).limit(FIRST)))
            else:
                rows = list(query.order_by(Punch.seq).limit(BATCH))
            if rows and not first:
                last = rows[-1].seq  # a backlog bigger than a batch: the rest at the next tick
            fresh = [r for r in rows if r.at_utc_ms >= recent]
            new = [(r.seq, r.at_utc_ms, shown) for r, shown in zip(fresh, self._shown(fresh), strict=True)]
        version = f"{passes}.{last}.{self._status}"
        if version == self.version and not new:
            return False
        with self._cond:
            self.kiosk.extend(new)
            self.last_seq = max(self.last_seq, last)
            self.version = version
            self.generation += 1
            self._cond.notify_all()
        return True

    # -- what the streams use ----------------------------------------------------------------
    def open_stream(self) -> bool:
        """Take a stream slot; False when this worker holds ``max_streams`` already."""
        with self._cond:
            if self.streams >= self.max_streams:
                return False
            self.streams += 1
        self.start()
        return True

    def close_stream(self) -> None:
        with self._cond:
            self.streams -= 1

    def wait(self, generation: int, timeout: float) -> int:
        """Until the generation moves past ``generation``, the hub stops, or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self.generation != generation or self.stopping, timeout)
            return self.generation

    def punches_after(self, seq: int | None) -> list[tuple[int, dict[str, Any]]]:
        """Kiosk events after ``seq`` (None: a kiosk just opened, the last few of the last minutes)."""
        with self._cond:
            kept = list(self.kiosk)
        if seq is None:
            recent = self.now_ms() - RECENT_MS
            return [(s, shown) for s, at, shown in kept if at >= recent][-FIRST:]
        return [(s, shown) for s, _at, shown in kept if s > seq]


class Stream:
    """One open page's event stream: what is new since it last sent, a heartbeat, an end.

    An iterator with ``close()`` rather than a generator, so that the slot is given back even
    when gunicorn closes a stream that never sent its first event.
    """

    def __init__(self, hub: Hub, fresh: Callable[[], list[str]], first: list[str]) -> None:
        self._hub = hub
        self._fresh = fresh
        self._pending = deque(["".join([f"retry: {RETRY_MS}\n\n", *first])])  # one write to start
        self._generation = hub.generation
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._pending:
            return self._pending.popleft().encode()
        deadline = time.monotonic() + self._hub.heartbeat_s
        while not self._hub.stopping and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return b": keep-alive\n\n"
            generation = self._hub.wait(self._generation, left)
            if generation != self._generation:
                self._generation = generation
                chunks = self._fresh()
                if chunks:
                    return "".join(chunks).encode()
        raise StopIteration

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub.close_stream()


def kiosk_stream(hub: Hub, after: int | None) -> Stream:
    """Punch events (id = the punch's seq, so a reconnecting kiosk resumes after the last it showed),
    and a ``terminals`` event with the offline terminals whenever they change (first when any is)."""
    state: dict[str, Any] = {"after": after, "offline": []}  # a page starts with no banner

    def fresh() -> list[str]:
        events = hub.punches_after(state["after"])
        if events:
            state["after"] = events[-1][0]
        elif state["after"] is None:
            state["after"] = hub.last_seq
        said = []
        if hub.offline != state["offline"]:
            state["offline"] = list(hub.offline)
            said.append(sse({"offline": state["offline"]}, event="terminals"))
        return said + [sse(shown, event="punch", id=str(seq)) for seq, shown in events]

    hello = sse({"now_ms": hub.now_ms()}, event="hello")
    return Stream(hub, fresh, [hello, *fresh()])


def board_stream(hub: Hub, last_version: str | None) -> Stream:
    """Version events (id = the version): the board fetches its fresh rows when the version moves."""
    state = {"sent": last_version}

    def fresh() -> list[str]:
        if hub.version == state["sent"]:
            return []
        state["sent"] = hub.version
        return [sse({"version": hub.version}, event="version", id=hub.version)]

    return Stream(hub, fresh, fresh())


def parse_seq(last_event_id: str | None, after: str | None) -> int | None:
    """Where a kiosk's stream resumes: the Last-Event-ID header, else ``?after=``, else None. One that is
    not a seq (-1 up to ``MAX_ID``) is a 400: past SQLite's integers it was an error in the stream."""
    if last_event_id:
        return whole_number(last_event_id, "Last-Event-ID", lo=-1, hi=MAX_ID)
    if after:
        return whole_number(after, "after", lo=-1, hi=MAX_ID)
    return None


def hub_of(app: Flask) -> Hub:
    return app.extensions["punchproof.live"]  # type: ignore[no-any-return]


def response(stream: Stream) -> Response:
    return Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},  # no proxy may hold events back
    )


def busy() -> Response:
    """Past the cap: 503, which makes a browser's EventSource give up; the page then polls instead."""
    reply = Response(
        "实时连接已满，页面改为定时刷新。 / Too many live connections; the page polls instead.\n",
        status=503,
        mimetype="text/plain",
    )
    reply.headers["Retry-After"] = "30"
    reply.headers["Cache-Control"] = "no-store"
    return reply
