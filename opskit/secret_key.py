"""The web session key both sides' pages use: made once, then shared by every gunicorn worker."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def shared_secret_key(path: Path) -> bytes:
    """The key in ``path``, made there first if there is none.

    Written to a temporary file and linked into place, so that a worker starting at the same
    moment reads either no file or the whole key, never an empty one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".web-secret-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            os.link(temporary, path)  # fails if another worker won the race; then we read its key
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_bytes()
