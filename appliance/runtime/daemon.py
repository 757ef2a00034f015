"""The appliance daemon: owns the terminals, the database writes and the MQTT link.

The pages (gunicorn) only read the database; nothing here runs inside a web worker.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import peewee as pw

from appliance import malloc
from appliance.attendance.handoff import Signer
from appliance.capture import device_settings, enrolment
from appliance.capture.groupcommit import GroupCommitter
from appliance.capture.ingest import PunchIngest
from appliance.capture.logcheck import check_latest_checkpoint, mark_verified, rotation_keys, verified_size
from appliance.capture.poller import TerminalWorker
from appliance.capture.provenance import Provenance
from appliance.capture.punchlog import Entry, LogWriter
from appliance.clock import Clock, SystemClock
from appliance.config import (
    AdmsTerminalSettings,
    CardReaderSettings,
    R30xReaderSettings,
    Settings,
    TerminalSettings,
)
from appliance.identity import finish_rotation, load_or_create_key, load_pending_key
from appliance.runtime.daemonlock import hold_daemon_lock
from appliance.runtime.evaluator_process import EvaluatorProcess
from appliance.store import Employee, open_db
from appliance.sync.remote_config import RemoteConfig
from appliance.sync.uplink import Uplink
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.live import LiveCapture
from ledger import SigningKey
from opskit.supervisor import ServiceManager, Unsupervised

if TYPE_CHECKING:  # imported where used: a plant with only ZK terminals never loads the HTTP receiver (Flask)
    from appliance.capture.push import PushTerminals
    from appliance.capture.readers import SerialReaders

log = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
SEAL_EVERY_S = 60
HEALTH_EVERY_S = 10.0  # how often the main loop checks its threads when systemd asks for no watchdog
TRIM_EVERY_S = 60.0  # how often it gives the allocator's free pages back (a shift change's queues, enrolment passes)
# prepared statements kept per connection: every thread of the daemon (two per terminal) has a connection of its
# own, and Python's 128 each, some naming hundreds of keys (the signer's), held megabytes (store.open_db)
STATEMENTS = 16
# page cache per connection at most: SQLite's default is 2 MB, and the daemon's thirty-odd connections (a terminal's
# reader, its live capture, the writer, the signer, the uplink...) each filled theirs with pages other threads had
# also read
CACHE_KIB = 256


def software_version() -> str:
    try:
        return metadata.version("punchproof")
    except metadata.PackageNotFoundError:
        return "unknown"


class ApplianceDaemon:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db: pw.SqliteDatabase | None = None
        self.writer: LogWriter | None = None
        self.uplink: Uplink | None = None
        self.workers: list[TerminalWorker] = []
        self.captures: list[LiveCapture] = []
        self.committer: GroupCommitter | None = None
        self.push: PushTerminals | None = None  # only with an 'adms' terminal
        self.readers: SerialReaders | None = None  # only with a 'card' or 'r30x' reader
        self._stopping = threading.Event()
        self._sealer: threading.Thread | None = None
        self.evaluator: EvaluatorProcess | None = None  # the evaluator's own process
        self.signer: Signer | None = None  # signs what it and the pages queue
        self.remote_config: RemoteConfig | None = None
        self._lock_fd: int | None = None

    @property
    def _marker(self) -> Path:
        return self.settings.state_dir / "running"

    def start(self) -> None:
        settings = self.settings
        cloud_key = settings.cloud_key()  # fail early, with the reason, if it is missing
        self._lock_fd = hold_daemon_lock(settings)  # one daemon per state directory; restore waits for it
        self.db = open_db(settings.db_path, statements=STATEMENTS, cache_kib=CACHE_KIB)
        settings = self.settings = device_settings.overlay(settings)  # what the cloud's configuration set
        enrolment.configure_brake(enrolment.brake_rule(settings.enrolment))  # for every terminal's worker
        key = load_or_create_key(settings.key_path)
        boot_id = BOOT_ID_PATH.read_text().strip() if BOOT_ID_PATH.exists() else "unknown"
        unclean = self._marker.exists()
        self._marker.write_text(boot_id + "\n")
        self.uplink = Uplink(settings, self.clock, cloud_key)
        self.remote_config = RemoteConfig(settings, self.clock, cloud_key, on_applied=self._config_applied)
        self.remote_config.attach(self.uplink)
        pending = load_pending_key(settings.key_path)
        self._check_log([key] if pending is None else [key, pending])
        self.writer = LogWriter(self.db, key, settings.log_origin, self.clock, boot_id, on_commit=self._committed)
        self.writer.start(pending)
        seq = self.writer.append([Entry("boot", {"unclean": unclean, "sw": software_version()})])[0]
        if pending is not None:
            if self.writer.kid != pending.kid:
                rotated = self.writer.rotate(pending, "rotate-key")
                log.info("rotated the log-signing key from %s to %s at seq %d", key.kid, pending.kid, rotated)
            finish_rotation(settings.key_path)
            key = pending
        log.info(
            "appliance %s/%s started (log %s, key %s, boot record seq %d%s)",
            settings.plant.id,
            settings.appliance.id,
            settings.log_origin,
            key.kid,
            seq,
            ", after an unclean shutdown" if unclean else "",
        )
        self._give_tag_keys()
        self.committer = GroupCommitter(self.writer, self.clock, state_dir=settings.state_dir)
        self.committer.start()
        ingest = PunchIngest(self.writer, self.clock, settings.plant.timezone, self.committer)
        provenance = Provenance(self.writer, self.clock, settings.plant.tz)  # which terminal recorded the punches
        rosters = enrolment.RosterCache()  # the roster today, one for every terminal's enrolment
        for terminal in settings.terminals_of(TerminalSettings):
            source = ZKTerminal(
                terminal.host,
                terminal.port,
                tz=settings.plant.tz,
                comm_key=terminal.comm_key,
                timeout=terminal.timeout_s,
                encoding=terminal.encoding,
                udp=terminal.udp,
                clock_policy=terminal.clock_policy,
                now=self.clock.now,
            )
            worker = TerminalWorker(
                terminal.name,
                source,
                ingest,
                self.clock,
                interval_s=terminal.poll_seconds,
                live_interval_s=max(terminal.live_poll_seconds, terminal.poll_seconds) if terminal.live else None,
                clock_policy=terminal.clock_policy,
                tz=settings.plant.tz,
                spool_dir=settings.state_dir,
                provenance=provenance,
                rosters=rosters,
            )
            self.workers.append(worker)
            if terminal.live:
                self.captures.append(self._live_capture(terminal, ingest, worker))
        if settings.terminals_of(AdmsTerminalSettings):
            from appliance.capture.push import PushTerminals

            self.push = PushTerminals(settings, ingest, self.clock, self.db, provenance=provenance)
        if settings.terminals_of(CardReaderSettings) or settings.terminals_of(R30xReaderSettings):
            from appliance.capture.readers import SerialReaders

            self.readers = SerialReaders(settings, ingest, self.clock, provenance=provenance)
        self.remote_config.start()
        self.uplink.start(self.writer)
        self.signer = Signer(self.writer, self.clock)
        self.signer.start()
        self.evaluator = EvaluatorProcess(settings.db_path, settings.plant.tz, [t.name for t in settings.terminals])
        self.evaluator.start()
        for worker in self.workers:
            worker.start()
        for capture in self.captures:
            capture.start()
        if self.push is not None:
            self.push.start()
        if self.readers is not None:
            self.readers.start()
        self._sealer = threading.Thread(target=self._seal_every_minute, name="sealer", daemon=True)
        self._sealer.start()

    def dead_threads(self) -> list[str]:
        """The daemon's threads that should run and do not: with any, it is not healthy.

        A thread that died of an error no loop caught leaves the process up but deaf (no punch stored,
        or none sent); the main loop then stops feeding systemd's watchdog, which restarts the service.
        """
        expected = {"group-commit", "uplink", "attendance", "attendance-signer", "sealer"}
        expected |= {f"terminal-{w.name}" for w in self.workers}
        if self.remote_config is not None:
            expected.add("remote-config")
        alive = {t.name for t in threading.enumerate() if t.is_alive()}
        return sorted(expected - alive)

    def _check_log(self, keys: list[SigningKey]) -> None:
        """Refuse to extend a log whose latest checkpoint does not match it (``LogDamaged``).

        Only the records after the last checkpoint a previous start verified are hashed again; the
        size verified now is kept for the next start."""
        assert self.db is not None
        conn = self.db.connection()
        started = time.monotonic()
        verified = check_latest_checkpoint(
            conn, keys=[k.verify_key for k in keys] + rotation_keys(conn), from_size=verified_size(conn)
        )
        if verified.checkpoint:
            with self.db.atomic("IMMEDIATE"):
                mark_verified(conn, verified.checkpoint)
        log.info(
            "the log's %d records agree with its latest checkpoint (size %d, leaves %d.. hashed in %.2f s; %s)",
            verified.records,
            verified.checkpoint,
            verified.hashed_from,
            time.monotonic() - started,
            verified.signature or "no checkpoint yet",
        )

    def _live_capture(self, terminal: TerminalSettings, ingest: PunchIngest, worker: TerminalWorker) -> LiveCapture:
        """Each punch as the terminal announces it; after every (re)connection, a catch-up read."""
        return LiveCapture(
            terminal.host,
            terminal.port,
            tz=self.settings.plant.tz,
            sink=lambda live, name=terminal.name: ingest.accept_live(name, live),
            comm_key=terminal.comm_key,
            udp=terminal.udp,
            timeout=terminal.timeout_s,
            on_connect=lambda _serial: worker.live_connected(),
            on_disconnect=lambda _serial: worker.live_lost(),
            now=self.clock.now,
        )

    def _committed(self, seq: int) -> None:
        """New records are in the log: the uplink sends them, the evaluator looks at new punches."""
        if self.uplink is not None:
            self.uplink.wake(seq)
        if self.evaluator is not None:
            self.evaluator.wake(seq)

    def _config_applied(self) -> None:
        """The cloud's configuration changed the master data: new workers get their tag keys, evaluate again soon."""
        self._give_tag_keys()
        if self.evaluator is not None:
            self.evaluator.wake()

    def _give_tag_keys(self) -> None:
        """Every worker on the roster has an owner-tag key in this log from the day they are on it, so that a bundle
        for a worker who never punched here still proves none of their records here was withheld."""
        if self.writer is None:
            return
        roster = [e for (e,) in Employee.select(Employee.user_id).where(Employee.active == True).tuples()]  # noqa: E712
        given = self.writer.give_tag_keys(roster)
        if given:
            log.info("tag keys given to %d worker(s) of the roster", given)

    def _seal_every_minute(self) -> None:
        """A seal record and a checkpoint every minute, punches or not: gaps in the log show downtime."""
        while not self._stopping.wait(SEAL_EVERY_S):
            try:
                self.seal("minute")
            except Exception:  # the top of the loop: the next minute tries again
                log.exception("sealing failed")

    def seal(self, why: str) -> None:
        assert self.writer is not None
        self.writer.append([Entry("seal", {"why": why})])
        self.writer.checkpoint()

    def stop(self) -> None:
        self._stopping.set()
        if self._sealer is not None:
            self._sealer.join(timeout=30)
        for capture in self.captures:
            capture.stop()
        for worker in self.workers:
            worker.stop()
        if self.push is not None:
            self.push.stop()
        if self.readers is not None:
            self.readers.stop()
        if self.evaluator is not None:
            self.evaluator.stop()  # its pass under way ends first: what it queued is signed next
        if self.committer is not None:
            self.committer.stop()  # what is queued is committed
        if self.signer is not None:
            self.signer.stop()
        if self.writer is not None:
            try:
                self.seal("shutdown")
            except Exception:  # stopping anyway: the next boot record will say it was unclean
                log.exception("could not seal the log at shutdown")
        if self.uplink is not None:
            self.uplink.stop()
        if self.remote_config is not None:
            self.remote_config.stop()
        if self.db is not None:
            self.db.close()
        self._marker.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("appliance stopped cleanly")


def run(settings: Settings, service: ServiceManager | None = None) -> None:
    """Run until SIGTERM or SIGINT; tell ``service`` when ready, while healthy, and when stopping."""
    service = service or Unsupervised()
    malloc.limit_arenas()  # before the threads start: two threads per terminal would each get one
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    daemon = ApplianceDaemon(settings)
    daemon.start()
    service.ready(f"{settings.plant.id}/{settings.appliance.id}: {len(settings.terminals)} terminal(s)")
    reported: list[str] = []
    trimmer = malloc.Trimmer(TRIM_EVERY_S)
    while not stopping.wait(service.watchdog_interval_s or HEALTH_EVERY_S):
        trimmer.maybe()
        dead = daemon.dead_threads()
        if dead != reported and dead:
            log.error("thread(s) %s stopped; not telling the watchdog, so systemd restarts the daemon", dead)
        reported = dead
        if not dead:
            service.watchdog()
    service.stopping("stopping")
    daemon.stop()
