"""From a terminal download to signed punches: new punches only, each exactly once.

A terminal's log is re-read from a cursor (the number of records already stored) with a small
overlap, and every punch is keyed by what the terminal said about it, so re-downloads and
overlaps never store a punch twice. The cursor moves in the same transaction as the punches, and
with it a digest of the records just before it, so that a log cleared or replaced outside the
appliance is noticed (``appliance.capture.logtail``) and read again from the start.

Each read also counts the log's new records (``terminal_log_count``, with the cursor): distinct
punches, identical presses in one second (one punch), records that cannot be punches (incidents),
so the board can say why the terminal's own record count and the stored punches differ. A log
cleared by ``clear-terminal`` (the cursor back at 0) or found replaced starts a new count.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import defaultdict
from concurrent.futures import Future
from typing import TYPE_CHECKING

from appliance.capture.groupcommit import GroupCommitter
from appliance.capture.logtail import OVERLAP, LogReplaced, Tail, check, stored_digest
from appliance.capture.punchlog import Entry, LogWriter
from appliance.capture.terminal_clock import alarm_change
from appliance.clock import Clock, to_ms
from appliance.store import BadRecord, Punch, PushCursor, TerminalHealth, TerminalLogCount
from firmware_bridge.types import TIME_FROM_TERMINAL, Download, PunchKey, RawPunch, RejectedRecord
from firmware_bridge.zk.live import LivePunch
from firmware_bridge.zk.records import ATT_16, ATT_40

if TYPE_CHECKING:  # the push receiver's types; importing it at run time would load Flask into the daemon
    from firmware_bridge.adms.receiver import AttlogCursor, PushBatch

log = logging.getLogger(__name__)


class PunchIngest:
    """Both ways a punch arrives: a terminal's download, and its live event (through group commit).

    The two paths of one terminal run on different threads, so the check "already stored?" and the
    hand-over to the writer happen under that terminal's lock, and a live punch submitted but not
    yet durable is remembered as pending: whichever path comes second finds it and skips it.
    """

    def __init__(self, writer: LogWriter, clock: Clock, tz_name: str, committer: GroupCommitter | None = None) -> None:
        self._writer = writer
        self._clock = clock
        self._tz_name = tz_name
        self._committer = committer
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._pending: set[PunchKey] = set()
        self._live_at: dict[str, float] = {}  # each terminal's latest live punch, by the clock's monotonic seconds
        # the plant's latest enrolment pass made while punches flowed (``appliance.capture.poller`` paces them)
        self.busy_pass_lock = threading.Lock()
        self.busy_pass_at: float | None = None

    @property
    def writer(self) -> LogWriter:
        """The log's one writer: terminal records that are not punches (a clock correction) go through it too."""
        return self._writer

    @property
    def tz_name(self) -> str:
        return self._tz_name

    def lock(self, terminal: str) -> threading.Lock:
        """The terminal's ingest lock: held, no new live punch of that terminal is handed to the writer."""
        return self._locks[terminal]

    def pending_from(self, terminal: str, serial: str) -> int:
        """Live punches of the terminal handed to group commit but not yet durable."""
        with self._locks[terminal]:
            return sum(1 for key in list(self._pending) if key[0] == serial)  # list(): one step under the GIL

    def cursor(self, terminal: str) -> int:
        """How many records of the terminal's log are already stored."""
        health = TerminalHealth.get_or_none(TerminalHealth.name == terminal)
        return health.cursor if health else 0

    def read_from(self, terminal: str) -> int:
        return max(0, self.cursor(terminal) - OVERLAP)

    def log_replaced(self, terminal: str, download: Download) -> LogReplaced | None:
        """Whether the download shows a log other than the one the stored cursor counts (cleared or
        replaced outside the appliance), or None: then reading on from the cursor is right."""
        row = TerminalHealth.get_or_none(TerminalHealth.name == terminal)
        if row is None:
            return None
        return check(terminal, row.serial, row.cursor, row.tail_digest, download, _all_known)

    def accept(self, terminal: str, download: Download, *, replaced: LogReplaced | None = None) -> list[int]:
        """Store the download's new punches, and the terminal's cursor and health with them.

        A record the terminal sent that cannot be a punch (an impossible date, say) is kept as an
        ``incident`` record with its raw bytes, once: the evidence of what the terminal said stays.
        ``replaced``: the download is the full re-read of a log found replaced, and the signed
        ``log_replaced`` incident goes in with its punches (a re-read that fails records nothing,
        so the next read finds the same and records it then: once for each replacement).
        """
        with self._locks[terminal]:
            return self._accept(terminal, download, replaced)

    def accept_live(self, terminal: str, live: LivePunch) -> Future[int] | None:
        """Submit a live punch to group commit, unless it is stored or pending; don't wait for it.

        The terminal keeps the punch in its log, so if the appliance dies before the commit, the
        catch-up read at the next connection stores it: acknowledging the event early loses nothing.
        """
        self._live_at[terminal] = self._clock.monotonic()
        return self._submit(terminal, live.punch, live.clock_offset_ms, "zk")

    def live_punch_within(self, terminal: str, seconds: float) -> bool:
        """Whether the terminal announced a live punch within the last ``seconds`` (punches are flowing)."""
        at = self._live_at.get(terminal)
        return at is not None and self._clock.monotonic() - at <= seconds

    def accept_read(self, terminal: str, punch: RawPunch, src: str) -> Future[int] | None:
        """A serial reader's punch, through group commit like a live event (``src``: card, r30x).

        The reader has no clock (``punch.time_source`` says the time is ours, and the record says
        so) and no memory: if the commit fails the read is gone, so the future's failure is logged.
        """
        future = self._submit(terminal, punch, None, src)
        if future is not None:
            future.add_done_callback(lambda done: _log_lost(terminal, punch, done))
        return future

    def accept_push(self, batch: PushBatch) -> list[int]:
        """A push terminal's batch: its new punches, its rejected lines as incidents, its cursor
        and its health, in one transaction, so ``push_cursor`` after a restart matches what is stored.
        Punches already stored or pending (a batch re-sent after a lost ``OK``) are skipped."""
        with self._locks[batch.terminal]:
            fresh = self._fresh(batch.punches)
            bad = [r for r in {r.raw: r for r in batch.rejected}.values() if not _known_bad(r)]
            TerminalHealth.get_or_create(name=batch.terminal)
            now_ms = to_ms(self._clock.now())

            def cursor_and_health() -> None:
                PushCursor.insert(
                    serial=batch.serial, stamp=batch.cursor.stamp, digest=batch.cursor.digest, updated_ms=now_ms
                ).on_conflict_replace().execute()
                TerminalHealth.update(serial=batch.serial, available=True, last_contact_ms=now_ms, last_error="").where(
                    TerminalHealth.name == batch.terminal
                ).execute()

            entries = [self._entry(batch.terminal, p, None, src="adms") for p in fresh]
            entries += [self._incident(batch.terminal, r, badge=_push_badge(r.raw)) for r in bad]
            seqs = self._writer.append(entries, then=cursor_and_health)
        return seqs[: len(fresh)]

    def push_cursor(self, serial: str) -> AttlogCursor | None:
        """The cursor stored with a push terminal's last batch (the receiver's ``cursor_of``)."""
        from firmware_bridge.adms.receiver import AttlogCursor  # only a plant with push terminals asks

        row = PushCursor.get_or_none(PushCursor.serial == serial)
        return AttlogCursor(row.stamp, row.digest) if row is not None else None

    def accept_incident(self, kind: str, body: dict[str, object]) -> Future[int]:
        """An ``incident`` record (an unknown terminal, an unknown card...) through group commit:
        what happened at the plant's edge that is not a punch, kept as evidence."""
        if self._committer is None:
            raise RuntimeError("incidents need a group committer")
        return self._committer.submit(Entry("incident", {"kind": kind, **body}))

    def _submit(self, terminal: str, punch: RawPunch, offset_ms: int | None, src: str) -> Future[int] | None:
        if self._committer is None:
            raise RuntimeError("live punches need a group committer")
        with self._locks[terminal]:
            if punch.key in self._pending or _known(punch.key):
                return None
            self._pending.add(punch.key)
        future = self._committer.submit(self._entry(terminal, punch, offset_ms, src=src))

        def settled(_future: Future[int]) -> None:
            with self._locks[terminal]:
                self._pending.discard(punch.key)  # stored now, or failed: the next read stores it

        future.add_done_callback(settled)
        return future

    def _fresh(self, punches: tuple[RawPunch, ...]) -> list[RawPunch]:
        """The punches neither stored nor pending, each once, in the terminal's order."""
        candidates = [p for p in _unique(punches) if p.key not in self._pending]
        stored = _known_keys([p.key for p in candidates])
        return [p for p in candidates if p.key not in stored]

    def _accept(self, terminal: str, download: Download, replaced: LogReplaced | None) -> list[int]:
        fresh = self._fresh(download.punches)
        bad = [r for r in {r.raw: r for r in download.rejected}.values() if not _known_bad(r)]
        row, _ = TerminalHealth.get_or_create(name=terminal)
        now_ms = to_ms(self._clock.now())
        alarm, alarm_health = alarm_change(
            terminal, download.terminal_sn, row, download.clock_alarm, download.clock_offset_ms, now_ms
        )
        if alarm:
            log.warning(
                "%s: %s",
                terminal,
                download.clock_alarm or f"clock back within policy, {download.clock_offset_ms:+d} ms off",
            )

        tail_digest = stored_digest(download)
        counted = _counted(terminal, row.cursor, download, replaced, now_ms)

        def health() -> None:
            TerminalLogCount.replace(**counted).execute()
            TerminalHealth.update(
                serial=download.terminal_sn,
                cursor=download.record_count,
                **({"tail_digest": tail_digest} if tail_digest is not None else {}),
                available=True,
                last_contact_ms=now_ms,
                last_error="",
                clock_offset_ms=download.clock_offset_ms,
                capacity=download.capacity,
                **({"record_size": download.record_size} if download.record_size else {}),
                **alarm_health,
            ).where(TerminalHealth.name == terminal).execute()

        head = alarm + ([replaced.entry()] if replaced is not None else [])
        entries = head + [self._entry(terminal, p, download.clock_offset_ms) for p in fresh]
        entries += [self._incident(terminal, r, badge=_log_badge(r.raw)) for r in bad]
        for record in bad:
            log.warning(
                "%s: record %d is not a valid punch (%s); kept as an incident: %s",
                terminal,
                record.index,
                record.reason,
                record.raw.hex(),
            )
        seqs = self._writer.append(entries, then=health)
        return seqs[len(head) : len(head) + len(fresh)]

    def _incident(self, terminal: str, record: RejectedRecord, *, badge: str | None) -> Entry:
        """A terminal's record that is not a punch, with its raw bytes; ``badge``: whose it says it is, when that
        can be read from it (its ``emp``: the record is then that worker's, tagged and disclosed as theirs only,
        FORMAT.md "The evidence bundle"), else None (nobody's: a bundle shows it as an undisclosed leaf)."""
        body: dict[str, object] = {
            **({"emp": badge} if badge is not None else {}),
            "kind": "bad_terminal_record",
            "reason": record.reason,
            "term": {"name": terminal, "sn": record.terminal_sn, "idx": record.index, "raw": record.raw.hex()},
        }

        def derive(seq: int, _now_ms: int) -> tuple[type[BadRecord], dict[str, object]]:
            return BadRecord, {"seq": seq, "terminal_sn": record.terminal_sn, "raw": record.raw}

        return Entry("incident", body, derive)

    def _entry(self, terminal: str, punch: RawPunch, offset_ms: int | None, *, src: str = "zk") -> Entry:
        body = {
            "emp": punch.user_id,
            "src": src,
            "term": {
                "name": terminal,
                "sn": punch.terminal_sn,
                "uid": punch.uid,
                "t": punch.device_time.isoformat(),
                "tz": self._tz_name,
                "verify": punch.verify,
                "state": punch.state,
                "wc": punch.workcode,
                "idx": punch.index,
                "raw": punch.raw.hex(),
                **({"off_ms": offset_ms} if offset_ms is not None else {}),  # absent: not measured yet
                **({"time_src": punch.time_source} if punch.time_source != TIME_FROM_TERMINAL else {}),
            },
        }

        def derive(seq: int, now_ms: int) -> tuple[type[Punch], dict[str, object]]:
            return Punch, {
                "seq": seq,
                "terminal": terminal,
                "terminal_sn": punch.terminal_sn,
                "user_id": punch.user_id,
                "device_time": punch.device_time.isoformat(),
                "at_utc_ms": to_ms(punch.at_utc),
                "verify": punch.verify,
                "state": punch.state,
                "workcode": punch.workcode,
                "received_ms": now_ms,
            }

        return Entry("punch", body, derive)


def _counted(
    terminal: str, cursor: int, download: Download, replaced: LogReplaced | None, now_ms: int
) -> dict[str, object]:
    """The terminal's log count after this download: the row to write with the cursor.

    Only records at or past what the count has read are counted, once each; the overlap before
    them is still looked at, so a press identical to one just before the cursor is a duplicate.
    A new count begins at a terminal's first read (a database from an older version: the records
    before its cursor were read before counting began), with a log found replaced, and with a log
    cleared by ``clear-terminal`` (which sets the cursor back to 0)."""
    latest = (
        TerminalLogCount.select()
        .where(TerminalLogCount.terminal == terminal)
        .order_by(TerminalLogCount.log_no.desc())
        .first()
    )
    if latest is None or replaced is not None or (cursor == 0 and latest.records_read > 0):
        start = 0 if replaced is not None else cursor
        log_no = latest.log_no + 1 if latest is not None else 1
        cause = "first" if latest is None else "replaced" if replaced is not None else "cleared"
        began_ms, uncounted, punches, duplicates, bad = now_ms, start, 0, 0, 0
    else:
        start, log_no, cause, began_ms, uncounted = (
            latest.records_read,
            latest.log_no,
            latest.cause,
            latest.began_ms,
            latest.uncounted,
        )
        punches, duplicates, bad = latest.punches, latest.duplicates, latest.bad_records
    seen: set[PunchKey] = set()
    for punch in sorted(download.punches, key=lambda p: p.index):
        if punch.index >= start:
            if punch.key in seen:
                duplicates += 1
            else:
                punches += 1
        seen.add(punch.key)
    bad += sum(1 for r in download.rejected if r.index >= start)
    return {
        "terminal": terminal,
        "log_no": log_no,
        "serial": download.terminal_sn,
        "cause": cause,
        "began_ms": began_ms,
        "updated_ms": now_ms,
        "terminal_count": download.record_count,
        "records_read": max(start, download.record_count),
        "uncounted": uncounted,
        "punches": punches,
        "duplicates": duplicates,
        "bad_records": bad,
    }


def _log_lost(terminal: str, punch: RawPunch, future: Future[int]) -> None:
    if future.exception() is not None:
        log.error(
            "%s: the read of %s at %s could not be stored and is lost (the reader keeps no log): %s",
            terminal,
            punch.user_id,
            punch.device_time,
            future.exception(),
        )


def _unique(punches: tuple[RawPunch, ...]) -> list[RawPunch]:
    seen: set[PunchKey] = set()
    out = []
    for punch in punches:
        if punch.key not in seen:
            seen.add(punch.key)
            out.append(punch)
    return out


# A punch is known by what the terminal said about it: the columns of the ``punch`` table's unique
# index. Raw SQL, not peewee's query builder: a terminal re-read every few seconds checks its
# overlap each time, and building a query per punch cost far more than running it (32 known
# punches: 7.6 ms of CPU per read, now 0.5 ms).
_KEY_COLUMNS = "terminal_sn, user_id, device_time, verify, state, workcode"
_KNOWN_ONE = (
    f"SELECT 1 FROM {Punch._meta.table_name} WHERE terminal_sn = ? AND user_id = ? AND device_time = ? "
    "AND verify = ? AND state = ? AND workcode = ? LIMIT 1"
)
KEYS_PER_QUERY = 150  # six variables each: under the 999 an older SQLite allows in one statement


def _known(key: PunchKey) -> bool:
    return Punch._meta.database.execute_sql(_KNOWN_ONE, key).fetchone() is not None


def _known_keys(keys: list[PunchKey]) -> set[PunchKey]:
    """Which of the keys are stored: one statement per ``KEYS_PER_QUERY`` keys, each an index lookup."""
    found: set[PunchKey] = set()
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start : start + KEYS_PER_QUERY]
        rows = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
        sql = (  # a joined list of values, not a row-value IN: SQLite scans the whole index for the latter
            f"WITH k(sn, emp, t, v, s, w) AS (VALUES {rows}) SELECT {_KEY_COLUMNS} FROM k "
            f"JOIN {Punch._meta.table_name} AS p ON p.terminal_sn = k.sn AND p.user_id = k.emp "
            "AND p.device_time = k.t AND p.verify = k.v AND p.state = k.s AND p.workcode = k.w"
        )
        params = [value for key in chunk for value in key]
        found.update(tuple(row) for row in Punch._meta.database.execute_sql(sql, params))  # type: ignore[misc]
    return found


def _all_known(records: Tail) -> bool:
    """Every one of the records is stored already (a punch by its key, a bad record by its bytes)."""
    punches, rejected = records
    keys = [p.key for p in punches]
    return set(keys) <= _known_keys(keys) and all(_known_bad(r) for r in rejected)


# A badge as terminals write them: letters and digits, at most the 24 bytes of a terminal's user id field
_BADGE = re.compile(r"[A-Za-z0-9]{1,24}")


def _badge(text: str) -> str | None:
    return text if _BADGE.fullmatch(text) else None


def _log_badge(raw: bytes) -> str | None:
    """The badge number a terminal's log record that is not a punch still names (its time is impossible, say), or
    None. Read as ``firmware_bridge.zk.records`` reads a record of its size: a 16-byte record's number, a 40- or
    49-byte record's user id text. An 8-byte record names only the terminal's slot, whose badge is the terminal's
    user table's word at the time: None."""
    if len(raw) == ATT_16.size:
        return _badge(str(ATT_16.unpack(raw)[0]))
    if len(raw) in (ATT_40.size, ATT_40.size + 9):
        user = ATT_40.unpack_from(raw)[1].split(b"\x00", 1)[0]
        return _badge(user.decode("ascii")) if user.isascii() else None
    return None


def _push_badge(raw: bytes) -> str | None:
    """The PIN a push terminal's rejected ATTLOG line starts with (``1001\\t...`` or ``PIN=1001\\t...``), or None."""
    first = raw.split(b"\t", 1)[0].strip()
    if first[:4].upper() == b"PIN=":
        first = first[4:].strip()
    return _badge(first.decode("ascii")) if first.isascii() else None


def _known_bad(record: RejectedRecord) -> bool:
    return (
        BadRecord.select(BadRecord.seq)
        .where((BadRecord.terminal_sn == record.terminal_sn) & (BadRecord.raw == record.raw))
        .exists()
    )
