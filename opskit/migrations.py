"""Versioned schema migrations, run whenever the database is opened for writing.

``schema_version`` holds one row per migration applied (its number, what it did, when). Each
migration is a function of the database, applied once, in order, inside one exclusive
transaction, so two processes starting together migrate once. A database marked with a version
this software does not know was made by a newer release: it is refused rather than written, so a
downgrade cannot damage it. The list of steps belongs to the store that owns the tables
(``appliance.store``, ``cloud.store``); the runner is the same for both, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import peewee as pw

Step = tuple[str, Callable[[pw.Database], None]]  # (what it does, the function)


class SchemaTooNew(Exception):
    pass


def schema_version(db: pw.Database) -> int:
    """The highest migration applied; 0 for a database from before versioning (or a new one)."""
    if "schema_version" not in db.get_tables():
        return 0
    return int(db.execute_sql("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def run_migrations(db: pw.Database, steps: Sequence[Step]) -> list[int]:
    """Apply the steps this database lacks; return their numbers."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER NOT NULL PRIMARY KEY, description TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
    )
    applied = []
    with _exclusive(db):
        current = schema_version(db)
        if current > len(steps):
            raise SchemaTooNew(
                f"数据库来自更新的版本 / the database is at schema version {current}, this software knows "
                f"{len(steps)}: it was made by a newer punchproof. Install that version again (or newer); "
                "nothing was changed."
            )
        for version, (description, step) in enumerate(steps, start=1):
            if version <= current:
                continue
            step(db)
            placeholders = ", ".join([db.param] * 3)
            db.execute_sql(
                f"INSERT INTO schema_version (version, description, applied_ms) VALUES ({placeholders})",
                (version, description, int(time.time() * 1000)),
            )
            applied.append(version)
    return applied


@contextmanager
def _exclusive(db: pw.Database) -> Iterator[None]:
    """A transaction no other migrating process can interleave with."""
    if isinstance(db, pw.SqliteDatabase):
        with db.atomic("IMMEDIATE"):  # takes the write lock at BEGIN, not at the first write
            yield
        return
    with db.atomic():
        db.execute_sql("LOCK TABLE schema_version IN EXCLUSIVE MODE")  # PostgreSQL: until the commit
        yield
