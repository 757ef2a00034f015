"""One worker per terminal: a slow or dead terminal never delays another.

Availability is state: it is logged when it changes, not at every failed poll, and failed
polls back off exponentially (with jitter) up to a minute.

A ZK terminal's full read transfers its whole log, so while live capture is registered (each punch
arrives within a second anyway) the worker reads every ``live_interval_s`` instead of every
``interval_s``; when capture drops it reads at once and goes back to the short interval. The
terminal's watermark (``last_contact_ms``) comes from full reads only: a live event proves that
punch, not that none was missed.

Each read first checks that the terminal's log is still the one its cursor counts (same serial, no
fewer records, the same records just before the cursor: ``appliance.capture.logtail``); a log
cleared or replaced outside the appliance is read again from the start, with a signed incident.

The worker is also the only one that changes its terminal: it sets the terminal's clock when the
policy allows it (signing a ``clock`` record before any punch read after the correction),
carries out ``clear-terminal`` commands (``appliance.capture.terminal_admin``) between polls, and,
after each poll that reached the terminal, makes its users and fingers match the roster and the
plant's other terminals (``appliance.capture.enrolment``: bounded work, one short exchange when
nothing changed), so that punches are always read first.

While punches flow (a live punch from the terminal in the last ``LIVE_FLOWING_S``: a shift change), a
terminal's enrolment pass runs at most once every ``ENROL_BUSY_S``, and the plant's terminals take
turns, one pass every ``ENROL_BUSY_GAP_S`` (twenty terminals passing together signed a thousand
records in one go, and the punches waited), so that the appliance's one Pi core signs and shows
punches rather than users and fingers: a roster change (or a finger stored from
another terminal) since the terminal's last pass is not held back and reaches it at its next read
(within ``live_poll_seconds``, 60 s by default); what is held back is the rest of a big change (more
than ``enrolment.MAX_STEPS`` a pass) and a look at fingers enrolled at its keypad, for at most
``ENROL_BUSY_S``. Leavers' stored fingers are deleted at once, as ever.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
from collections.abc import Iterator
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Protocol, runtime_checkable

from appliance.capture import storage, terminal_admin
from appliance.capture.enrolment import EnrolmentSource, RosterCache, TerminalEnrolment
from appliance.capture.ingest import PunchIngest
from appliance.capture.logtail import OVERLAP
from appliance.capture.provenance import Identity, Provenance
from appliance.capture.terminal_admin import ClearRefused
from appliance.capture.terminal_clock import alarm_change, correction_entry, correction_failed_entry
from appliance.clock import Clock, to_ms
from appliance.store import TerminalHealth
from firmware_bridge.errors import TerminalError, TerminalLogChanged
from firmware_bridge.types import Download, LogCleared, TerminalInfo
from firmware_bridge.zk.clock import ClockCorrection, ClockPolicy
from firmware_bridge.zk.logread import PART_RECORDS
from ledger import failpoints

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
CORRECTION_RETRY_S = 600.0  # after a failed clock correction, the next attempt waits this long
LIVE_FLOWING_S = 60.0  # a live punch from the terminal within this: punches are flowing (a shift change)
ENROL_BUSY_S = 300.0  # while they flow, a terminal's enrolment pass runs at most this often (but for a change)
ENROL_BUSY_GAP_S = 10.0  # ...and one terminal's pass at most this often across the plant


class PunchSource(Protocol):
    def download(self, since_index: int = 0, *, known_count: int | None = None) -> Download: ...
    def correct_clock(self, policy: ClockPolicy | None = None) -> ClockCorrection | None: ...
    def clear_log(self, acknowledged_count: int) -> LogCleared: ...


class Spooled(Protocol):
    def parts(self, per: int = PART_RECORDS, *, behind: int = 0) -> Iterator[Download]: ...
    def close(self) -> None: ...


@runtime_checkable
class IdentitySource(Protocol):
    """A terminal that says what it is (a ZK terminal: ``punchproof bridge probe``)."""

    def probe(self) -> TerminalInfo: ...


@runtime_checkable
class SpoolingSource(Protocol):
    def download_spooled(
        self, since_index: int = 0, *, known_count: int | None = None, spool_dir: str | Path | None = None
    ) -> Spooled: ...


class InMemory:
    """A source's whole download as one part (sources that read little: tests' stand-ins)."""

    def __init__(self, download: Download) -> None:
        self._download = download

    def parts(self, per: int = PART_RECORDS, *, behind: int = 0) -> Iterator[Download]:
        yield self._download

    def close(self) -> None:
        pass


class TerminalWorker:
    def __init__(
        self,
        name: str,
        source: PunchSource,
        ingest: PunchIngest,
        clock: Clock,
        *,
        interval_s: float,
        live_interval_s: float | None = None,
        clock_policy: ClockPolicy | None = None,
        tz: tzinfo = UTC,
        spool_dir: Path | None = None,
        provenance: Provenance | None = None,
        rosters: RosterCache | None = None,
    ) -> None:
        self.name = name
        self._spool_dir = spool_dir  # where a read's transfer is kept while it is stored (the state directory)
        self._source = source
        self._ingest = ingest
        self._clock = clock
        self._interval = interval_s
        self._live_interval = live_interval_s  # None: live capture does not lengthen the interval
        self._live = False  # live capture registered for this terminal's events
        self._live_recorded: bool | None = None  # what terminal_health says
        self._policy = clock_policy or ClockPolicy()  # the driver is given the same one, for its alarm
        self._tz = tz  # for the times in messages to people
        self._correct_after = 0.0  # monotonic: no correction attempt before this
        self._our_clock_unsynced = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.waiting = threading.Event()  # set while the worker sleeps between polls: its last pass is complete
        self._thread: threading.Thread | None = None
        self.available: bool | None = None  # unknown until the first poll
        self._failures = 0
        self._provenance = provenance  # signs the terminal's model, serial and firmware (the daemon's)
        self._enrolled_at: float | None = None  # monotonic: the last enrolment pass
        self._enrolment = (  # ZK terminals: the roster's workers and the plant's fingers
            TerminalEnrolment(name, source, ingest.writer, clock, tz=tz, rosters=rosters)
            if isinstance(source, EnrolmentSource)
            else None
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"terminal-{self.name}", daemon=True)
        self._thread.start()

    def poll_soon(self) -> None:
        """Read the terminal now rather than at the next interval (e.g. new records arrived before a clear)."""
        self._wake.set()

    def live_connected(self) -> None:
        """Live capture (re)registered: read once now (the catch-up), then at the live interval."""
        self._live = True
        self._wake.set()

    def live_lost(self) -> None:
        """Live capture dropped: read now, and at the short interval until it is back."""
        self._live = False
        self._wake.set()

    @property
    def interval_s(self) -> float:
        """The time between full reads, as things stand."""
        return self._live_interval if self._live and self._live_interval is not None else self._interval

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def poll_once(self) -> int:
        """Read the terminal once; return how many new punches were stored.

        The log is transferred into an unnamed file in the state directory and stored a part at a time
        (``PART_RECORDS`` records, each part with its cursor, in its own transaction), so that a terminal
        holding a million records costs a part's memory, and a read cut short (power, a kill) goes on from the
        last part stored."""
        try:
            cursor = self._ingest.cursor(self.name)
            spooled = self._read(self._ingest.read_from(self.name), known_count=cursor)
        except TerminalError as err:
            return self._unavailable(err)
        stored, last_seq = 0, -1  # counted, not kept: a million seqs would be 36 MB
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(spooled.close)
            parts = spooled.parts(PART_RECORDS, behind=OVERLAP)
            first = next(parts)
            replaced = self._ingest.log_replaced(self.name, first)
            if replaced is not None:  # cleared or replaced outside the appliance: the cursor counts another log
                log.warning("%s", replaced.warning())
                spooled.close()
                try:
                    spooled = self._read(0)
                except TerminalError as err:
                    return self._unavailable(err)
                cleanup.callback(spooled.close)
                parts = spooled.parts(PART_RECORDS, behind=OVERLAP)
                first = next(parts)
            download = first
            for n, part in enumerate(itertools.chain([first], parts)):
                seqs = self._ingest.accept(self.name, part, replaced=replaced if n == 0 else None)
                failpoints.hit("poll.part_stored")  # a part and its cursor committed, the rest of the log not yet
                stored, last_seq = stored + len(seqs), seqs[-1] if seqs else last_seq
        if self.available is not True:
            log.info(
                "terminal %s (%s) available, clock offset %d ms",
                self.name,
                download.terminal_sn,
                download.clock_offset_ms,
            )
        self.available, self._failures = True, 0
        self._state_identity(download.terminal_sn)
        if stored:
            log.info("terminal %s: %d new punch(es), up to seq %d", self.name, stored, last_seq)
        if self._policy.should_correct(download.clock_offset_ms):
            self._correct_clock(download)
        return stored

    def _state_identity(self, serial: str) -> None:
        """Sign the terminal's model, serial and firmware when a statement is due (``appliance.capture.provenance``:
        first read, another serial, a new day); only then is the terminal asked, in one short read-only exchange."""
        if (
            self._provenance is None
            or not isinstance(self._source, IdentitySource)
            or not self._provenance.due(self.name, serial)
        ):
            return
        try:
            info = self._source.probe()
        except TerminalError as err:
            log.warning("terminal %s: model and firmware not read (tried again at the next read): %s", self.name, err)
            return
        identity = Identity(
            self.name, "zk", info.terminal_sn, model=info.device_name, firmware=info.firmware, platform=info.platform
        )
        self._provenance.seen(identity)

    def _read(self, since_index: int, *, known_count: int | None = None) -> Spooled:
        """A read of the terminal: spooled to a file when the source can (a ZK terminal), else in memory."""
        if isinstance(self._source, SpoolingSource):
            return self._source.download_spooled(since_index, known_count=known_count, spool_dir=self._spool_dir)
        return InMemory(self._source.download(since_index, known_count=known_count))

    def _unavailable(self, err: TerminalError) -> int:
        self._failures += 1
        if self.available is not False:
            log.warning("terminal %s unavailable: %s", self.name, err)
        self.available = False
        TerminalHealth.insert(name=self.name, available=False, last_error=str(err)).on_conflict(
            conflict_target=[TerminalHealth.name],
            update={TerminalHealth.available: False, TerminalHealth.last_error: str(err)},
        ).execute()
        return 0

    def enrol_once(self) -> int:
        """Make the terminal's users and fingers match the roster and the plant's other terminals, if the last
        poll reached it (if not, a leaver's stored fingers are still deleted at once); return how many records
        that signed."""
        if self._enrolment is None:
            return 0
        if not self.available or self._enrolment_held_back(self._enrolment):
            return self._enrolment.forget_leavers()
        self._enrolled_at = self._clock.monotonic()
        return self._enrolment.sync()

    def _enrolment_held_back(self, enrolment: TerminalEnrolment) -> bool:
        """Punches are flowing, and this terminal's last pass was less than ``ENROL_BUSY_S`` ago or another
        terminal's less than ``ENROL_BUSY_GAP_S`` ago, and neither the roster nor the stored fingers changed since
        its last pass: the pass waits (the module's docstring)."""
        now = self._clock.monotonic()
        if self._enrolled_at is None or not self._ingest.live_punch_within(self.name, LIVE_FLOWING_S):
            return False
        with self._ingest.busy_pass_lock:
            plant = self._ingest.busy_pass_at
            waits = now - self._enrolled_at < ENROL_BUSY_S or (plant is not None and now - plant < ENROL_BUSY_GAP_S)
            if not waits:
                self._ingest.busy_pass_at = now  # this terminal's turn
                return False
        return not enrolment.changed_since_last_pass()

    def _correct_clock(self, download: Download) -> None:
        """Set the terminal's clock, as the policy allows, and sign what changed in the same breath.

        Only when our own clock is synchronised: setting a terminal from a wrong clock would make
        every later punch wrong. The terminal's ingest lock is held from before the clock is set
        until the ``clock`` record is committed, so no live punch of the new time base is handed
        to the writer ahead of it; the next download comes after it too.
        """
        synced = bool(self._clock.sync_status().get("sync"))
        if synced != (not self._our_clock_unsynced):
            self._our_clock_unsynced = not synced
            if not synced:
                log.warning(
                    "terminal %s: clock not corrected: this appliance's own clock is not synchronised", self.name
                )
        if not synced or self._clock.monotonic() < self._correct_after:
            return
        with self._ingest.lock(self.name):
            try:
                correction = self._source.correct_clock(self._policy)
            except TerminalError as err:
                self._correct_after = self._clock.monotonic() + CORRECTION_RETRY_S
                log.error("terminal %s: setting its clock failed (may have been set): %s", self.name, err)
                failed = correction_failed_entry(self.name, download.terminal_sn, download.clock_offset_ms, err)
                self._ingest.writer.append([failed])
                return
            if correction is None:  # within policy by the time we looked again
                return
            health, _ = TerminalHealth.get_or_create(name=self.name)
            now_ms = to_ms(self._clock.now())
            new_alarm = self._policy.alarm(correction.new_offset_ms)
            cleared, alarm_health = alarm_change(
                self.name, correction.terminal_sn, health, new_alarm, correction.new_offset_ms, now_ms, by="correction"
            )
            entries = [correction_entry(self.name, self._ingest.tz_name, correction, self._policy), *cleared]
            update = {"clock_offset_ms": correction.new_offset_ms, **alarm_health}
            seq = self._ingest.writer.append(
                entries, then=lambda: TerminalHealth.update(**update).where(TerminalHealth.name == self.name).execute()
            )[0]
        log.warning(
            "terminal %s: clock set from %s to %s (%+d ms off, now %+d ms); clock record seq %d",
            self.name,
            correction.old_terminal_time,
            correction.new_terminal_time,
            correction.old_offset_ms,
            correction.new_offset_ms,
            seq,
        )

    def serve_commands(self) -> None:
        """Carry out the commands queued for this terminal (``clear-terminal``), oldest first."""
        while (command := terminal_admin.claim(self.name, to_ms(self._clock.now()))) is not None:
            answered = False
            try:
                refusal = self._serve(command.id)
                answered = True
            finally:
                if not answered:  # an unexpected error, logged at the top of the loop: the CLI must not wait forever
                    refusal = f"{self.name}: 内部错误，见守护进程日志 / internal error; see the daemon's log"
                if refusal is not None:
                    terminal_admin.finish(command.id, "refused", refusal, to_ms(self._clock.now()))
                    log.warning("terminal %s: clear refused: %s", self.name, refusal)

    def _serve(self, request: int) -> str | None:
        """Clear the log; return why not, or None when done (the outcome is written with the record)."""
        try:
            self._clear_log(request)
        except ClearRefused as err:
            return str(err)
        except TerminalLogChanged as err:
            self.poll_soon()
            return (
                f"{self.name}: 清除前终端又有新记录，未清除；新记录将被读取，被云端确认后可重试 / new records arrived "
                f"before the clear: nothing cleared; they are read in next, retry once acknowledged ({err})"
            )
        except TerminalError as err:
            return f"{self.name}: 终端无法连接，未清除 / terminal unreachable, nothing cleared: {err}"
        return None

    def _clear_log(self, request: int) -> None:
        self.poll_once()  # read what is new first: its cursor and serial are checked below
        health = TerminalHealth.get_or_none(TerminalHealth.name == self.name)
        if not self.available or health is None:
            reason = health.last_error if health is not None else "never reached"
            raise ClearRefused(f"{self.name}: 终端无法连接，未清除 / terminal unreachable, nothing cleared: {reason}")
        if self._ingest.pending_from(self.name, health.serial):
            raise ClearRefused(
                f"{self.name}: 实时打卡仍在写入，请稍后重试 / live punches are still being stored; retry in a moment"
            )
        acked = terminal_admin.check_acknowledged(self.name, health.serial, self._tz)
        if health.cursor == 0:
            raise ClearRefused(f"{self.name}: 终端没有记录，无需清除 / the terminal's log is empty; nothing to clear")
        cleared = self._source.clear_log(acknowledged_count=health.cursor)
        entry = terminal_admin.cleared_entry(self.name, request, cleared.terminal_sn, cleared.records_cleared, acked)
        now_ms = to_ms(self._clock.now())
        self._ingest.writer.append(
            [entry], then=terminal_admin.after_clear(self.name, request, cleared.records_cleared, now_ms)
        )
        log.info("terminal %s: %d acknowledged record(s) cleared on command", self.name, cleared.records_cleared)
        self.poll_once()  # the terminal's capacity (records left), now that its log is empty

    def _record_live(self) -> None:
        """Keep ``terminal_health.live_since_ms`` in step with live capture (the terminals table shows it)."""
        live = self._live
        if live == self._live_recorded:
            return
        since = to_ms(self._clock.now()) if live else None
        TerminalHealth.insert(name=self.name, live_since_ms=since).on_conflict(
            conflict_target=[TerminalHealth.name], update={TerminalHealth.live_since_ms: since}
        ).execute()
        self._live_recorded = live

    def _delay(self) -> float:
        if not self._failures:
            return self.interval_s
        backoff = min(MAX_BACKOFF_S, self._interval * 2 ** min(self._failures, 6))
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._record_live()
                stored = self.poll_once()
                self.serve_commands()
                if stored:
                    storage.EPISODE.succeeded(log)
            except Exception as err:  # the top of a worker loop: log with traceback, keep polling
                if storage.is_disk_full(err):
                    storage.EPISODE.failed(log, 0, "the state directory")
                else:
                    log.exception("terminal %s: unexpected error while polling", self.name)
                self._failures += 1
            try:
                self.enrol_once()
            except Exception:  # enrolment's own top of the loop: a failure there never slows the punch reads
                log.exception("terminal %s: unexpected error in enrolment", self.name)
            self.waiting.set()
            self._wake.wait(self._delay())
            self.waiting.clear()
            self._wake.clear()
        log.debug("terminal %s worker stopped at %d", self.name, to_ms(self._clock.now()))
