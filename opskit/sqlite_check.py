"""Is a SQLite file sound? Asked by both sides' ``doctor`` and by the appliance's ``restore`` before it
replaces anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def quick_check(path: Path, *, timeout: float = 5.0) -> list[str]:
    """SQLite's ``PRAGMA quick_check`` of ``path``, opened read-only (never created, migrated or locked for
    writing): ``["ok"]`` when it is sound, else what is wrong (or the error that stopped the check)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        return [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as err:
        return [str(err)]
    finally:
        conn.close()
