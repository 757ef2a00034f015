"""One appliance daemon per state directory, and a way for other commands to know it runs.

The daemon holds an exclusive ``flock`` on ``<state_dir>/daemon.lock`` for as long as its process
lives; the kernel drops it when the process ends, however it ends, so unlike a marker file it is
never stale after a power cut or SIGKILL. ``restore`` takes the same lock to refuse while the
daemon runs, and holds it so the daemon cannot start in the middle.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.config import Settings


class DaemonRunning(Exception):
    pass


def lock_path(settings: Settings) -> Path:
    return settings.state_dir / "daemon.lock"


@contextmanager
def daemon_lock(settings: Settings) -> Iterator[bool]:
    """Hold the daemon's lock for the block; yields False if another process (the daemon) has it."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(settings), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def daemon_running(settings: Settings, proc_locks: Path = Path("/proc/locks")) -> bool:
    """Whether a process holds the daemon's lock, found without taking it: the kernel lists every
    ``flock`` in /proc/locks by device and inode. Taking the lock to find out, even for a moment, could
    make a daemon starting at that moment give up."""
    try:
        info = lock_path(settings).stat()
        held = proc_locks.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return False
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in held.splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and wanted in fields:
            return True
    return False


def hold_daemon_lock(settings: Settings) -> int:
    """For the daemon: take the lock for the life of the process (the fd stays open); raise if taken."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(settings), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(fd)
        raise DaemonRunning(
            f"another appliance daemon runs on {settings.state_dir} (it holds {lock_path(settings)})"
        ) from err
    return fd
