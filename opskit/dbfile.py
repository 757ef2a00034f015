"""The SQLite database file is created readable by its owner and group only.

It holds names, badge numbers, punches and (on the Pi) sealed fingerprints. The services run with
``UMask=0027``, but a database created by hand (``sudo -u punchproof punchproof appliance init``, a shell's
umask 0022) came out world-readable. SQLite gives its -wal and -shm files the database file's mode, so
creating the file first with 0640 covers all three. An existing file readable by everyone is tightened
when this process owns it, and said once in the journal.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

MODE = 0o640


def private_db_file(path: Path) -> None:
    """Create ``path`` with ``MODE`` if it does not exist; take "others" off an existing one we own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    except FileExistsError:
        _tighten(path)
    else:
        os.fchmod(fd, MODE)  # whatever the umask
        os.close(fd)


def _tighten(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            info = name.stat()
        except FileNotFoundError:
            continue
        if info.st_mode & stat.S_IRWXO and info.st_uid == os.geteuid():
            os.chmod(name, stat.S_IMODE(info.st_mode) & ~stat.S_IRWXO)
            log.warning("%s was readable by every user of this machine: now owner and group only", name)
