"""The attendance evaluator in a process of its own, started and watched by the daemon.

At a shift change a full pass of a 5,000-worker plant takes seconds of a Pi core. In the daemon's
process it held the interpreter while punches waited to be stored and shown on the kiosk; here it
runs on another core. It reads the database (SQLite WAL: readers never wait for the writer) and
writes only what is derived and unsigned: the board's rows, its own state, and the queue of day
facts and alerts that the daemon, the one log writer, signs (``appliance.attendance.handoff``).

The daemon's side (``EvaluatorProcess``): starts ``python -m appliance.runtime.evaluator_process``
with what the evaluator needs (the database, the plant's time zone, the terminals' names), writes a
byte to its stdin at every commit (the cue to look at new punches) and starts it again, after
``RESTART_S``, whenever it ends. The process ends when its stdin closes (the daemon stopped, or was
killed: the kernel closes the pipe) or on SIGTERM, after the pass under way.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

log = logging.getLogger(__name__)

RESTART_S = 2.0  # after the evaluator's process ended unexpectedly, start it again this much later...
RESTART_MAX_S = 60.0  # ...twice as long after each that lived less than a minute, up to this
STOP_S = 30.0  # at the daemon's stop: the pass under way may finish, then it is killed
MODULE = "appliance.runtime.evaluator_process"
# systemd's link is the daemon's alone: the evaluator neither notifies nor feeds the watchdog
_NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PUNCHPROOF_FAILPOINTS")
FAILPOINTS_ENV = "PUNCHPROOF_EVALUATOR_FAILPOINTS"  # failpoints for the evaluator's first process only (tests)
STATEMENTS = 16  # prepared statements kept per connection: its passes name varying sets of employees (store.open_db)


class EvaluatorProcess:
    """The daemon's handle on the evaluator's process: start, wake, watch, stop."""

    def __init__(self, db_path: Path, tz: ZoneInfo, terminals: Sequence[str], *, restart_s: float = RESTART_S) -> None:
        self._argv = [
            sys.executable,
            "-m",
            MODULE,
            "--db",
            str(db_path),
            "--tz",
            tz.key,
            "--log-level",
            logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            *(a for name in terminals for a in ("--terminal", name)),
        ]
        self._restart_s = restart_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="attendance", daemon=True)
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        if self.starts == 0 and os.environ.get(FAILPOINTS_ENV):
            env["PUNCHPROOF_FAILPOINTS"] = os.environ[FAILPOINTS_ENV]
        process = subprocess.Popen(self._argv, stdin=subprocess.PIPE, env=env)  # its output: the daemon's journal
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)  # a wake-up never blocks a commit
        self.starts += 1
        log.info("attendance evaluator started (process %d)", process.pid)
        return process

    def _watch(self) -> None:
        delay = self._restart_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._process = process = self._spawn()
            except OSError:
                log.exception("could not start the attendance evaluator; trying again in %.0f s", delay)
                self._stop.wait(delay)
                delay = min(delay * 2, RESTART_MAX_S)
                continue
            while process.poll() is None and not self._stop.wait(1.0):
                pass
            if self._stop.is_set():
                return
            if time.monotonic() - started >= RESTART_MAX_S:
                delay = self._restart_s  # it had been running: not a crash at every start
            log.error(
                "the attendance evaluator (process %d) ended with status %s; starting it again in %.0f s "
                "(punches are stored and shown meanwhile; the board and alerts catch up)",
                process.pid,
                process.returncode,
                delay,
            )
            self._stop.wait(delay)
            delay = min(delay * 2, RESTART_MAX_S)

    def wake(self, _seq: int | None = None) -> None:
        """New records are in the log (``LogWriter`` on_commit): the evaluator looks at new punches."""
        process = self._process
        if process is None or process.stdin is None or process.stdin.closed:
            return
        try:
            os.write(process.stdin.fileno(), b"\n")
        except BlockingIOError:
            pass  # its pipe is full of wake-ups it has not read yet: it will look anyway
        except ValueError:
            pass  # stopping: its stdin was closed meanwhile
        except OSError as err:
            if err.errno not in (errno.EPIPE, errno.EBADF):
                raise
            # ended: the watcher starts it again

    def stop(self) -> None:
        """Close its stdin (its cue to stop after the pass under way), wait, then kill if need be."""
        with self._lock:
            self._stop.set()
        process = self._process
        if process is not None:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass  # it has gone already
            try:
                process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                log.warning("the attendance evaluator did not stop within %.0f s: killed", STOP_S)
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)


# -- the evaluator's process -------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MODULE, description="the attendance evaluator (started by the daemon)")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--tz", required=True)
    parser.add_argument("--terminal", action="append", default=[])
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format=("%(asctime)s " if sys.stderr.isatty() or "INVOCATION_ID" not in os.environ else "")
        + "%(levelname)s %(name)s[evaluator]: %(message)s",
        stream=sys.stderr,
    )
    from appliance import malloc
    from appliance.attendance import Evaluator
    from appliance.attendance.handoff import Outbox
    from appliance.clock import SystemClock
    from appliance.store import EvaluatorState, open_db

    malloc.limit_arenas()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    db = open_db(args.db, create=False, statements=STATEMENTS)  # the daemon made and migrated it
    clock = SystemClock()
    _note_pid(EvaluatorState, stopping)
    db.close()  # this thread's connection (its schema and cache); the evaluator's thread opens its own
    evaluator = Evaluator(Outbox(clock), ZoneInfo(args.tz), args.terminal, clock)
    evaluator.start()
    reader = threading.Thread(target=_read_wakes, args=(evaluator, stopping), name="wakes", daemon=True)
    reader.start()
    stopping.wait()
    evaluator.stop()
    db.close()
    log.info("attendance evaluator stopped")
    return 0


def _note_pid(state: Any, stopping: threading.Event) -> None:
    """This process's id in ``evaluator_state`` (for doctor and the tests); the daemon may hold the
    write lock longer than SQLite's busy timeout at its start, so this waits its turn."""
    while not stopping.is_set():
        try:
            state.update(pid=os.getpid()).where(state.id == 1).execute()
            return
        except pw.OperationalError as err:
            log.warning("could not note the evaluator's process id yet (%s); trying again", err)
            stopping.wait(1.0)


def _read_wakes(evaluator: object, stopping: threading.Event) -> None:
    """Each byte on stdin: the daemon committed new records. End of file: the daemon is gone."""
    stdin = sys.stdin.buffer
    while True:
        chunk = os.read(stdin.fileno(), 4096)
        if not chunk:
            stopping.set()
            return
        evaluator.wake()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
