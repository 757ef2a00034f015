"""The appliance's storage running out: how to tell, and what to say.

A full SD card must never cost a punch. When SQLite cannot write (SQLITE_FULL, ENOSPC) the
commit fails as a whole, the terminal's read cursor does not move, and the punches stay on the
terminal to be read again when space returns. What remains is telling people: the journal says
it once per episode with what to do, and the plant manager's page shows a banner.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

LOW_MB = 64  # below this much free space in the state directory the pages show the alarm


def is_disk_full(err: BaseException) -> bool:
    """True for SQLite's "database or disk is full" and for ENOSPC, also when chained."""
    seen: BaseException | None = err
    while seen is not None:
        if getattr(seen, "errno", None) == errno.ENOSPC or "disk is full" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def free_mb(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize // (1024 * 1024)


def free_mb_if_low(path: Path, low_mb: int = LOW_MB) -> int | None:
    """Free MB in ``path``'s filesystem if below ``low_mb``, else None; None too if it cannot be read."""
    try:
        free = free_mb(path)
    except OSError:
        return None
    return free if free < low_mb else None


ALARM = (
    "存储空间已满 / the appliance's disk is full: %d punch(es) not stored now. They stay on the terminal and "
    "are read again when space is freed. Free space in %s (df -h; journalctl --vacuum-size=100M), then check "
    "with punchproof appliance doctor."
)
RECOVERED = "存储空间已恢复 / storage is writable again: punches are stored (%d commit(s) had failed)"


class DiskFullEpisode:
    """One alarm per episode, one all-clear after it, whichever part of the daemon meets it first.

    Process-wide on purpose: the disk is the process's, and the group commit and every terminal's
    poller meet the same full disk; each saying so every few seconds would fill the journal too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0

    def failed(self, log: logging.Logger, punches: int, state_dir: object) -> None:
        with self._lock:
            self.failures += 1
            first = self.failures == 1
        if first:
            log.error(ALARM, punches, state_dir)

    def succeeded(self, log: logging.Logger) -> None:
        with self._lock:
            failures, self.failures = self.failures, 0
        if failures:
            log.warning(RECOVERED, failures)


EPISODE = DiskFullEpisode()
