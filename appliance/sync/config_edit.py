"""Files of the appliance's configuration replaced whole (temp file, fsync, rename), so a power cut
leaves the old file or the new one; the TOML edit itself is ``opskit.config_edit.set_keys``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int, *, like: Path | None = None) -> None:
    """Replace ``path`` whole with ``mode``; owned like ``like`` (when run as root, e.g. under sudo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if like is not None and os.geteuid() == 0:
            owner = like.stat()
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
