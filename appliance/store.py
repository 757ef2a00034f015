"""The appliance's SQLite database (peewee): the signed log and what is derived from it.

``log_record`` and ``punch`` are append-only, enforced by triggers as well as by the code:
corrections are new records, never edits. Mutable state (terminal cursors and health, the
sync cursor, accounts) lives in tables of its own.
"""

from __future__ import annotations

from pathlib import Path

import peewee as pw

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",  # a committed punch survives a power cut
    "busy_timeout": 10_000,
    "foreign_keys": 1,
}
APPEND_ONLY = ("log_record", "punch", "bad_record", "checkpoint", "cosignature")


class BaseModel(pw.Model):
    class Meta:
        database = None
        legacy_table_names = False


class LogRecord(BaseModel):
    seq = pw.IntegerField(primary_key=True)
    type = pw.CharField(max_length=16, index=True)
    data = pw.BlobField()  # canonical bytes, exactly as signed
    sig = pw.BlobField()
    leaf = pw.BlobField()
    t_wall_ms = pw.BigIntegerField()


class Punch(BaseModel):
    """One terminal punch, by the seq of the log record that holds it."""

    seq = pw.IntegerField(primary_key=True)
    terminal = pw.CharField()
    terminal_sn = pw.CharField()
    user_id = pw.CharField(index=True)
    device_time = pw.CharField()  # the terminal's own reading, ISO, no zone
    at_utc_ms = pw.BigIntegerField(index=True)
    verify = pw.IntegerField()
    state = pw.IntegerField()
    workcode = pw.IntegerField()
    received_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("terminal_sn", "user_id", "device_time", "verify", "state", "workcode"), True),)


class Checkpoint(BaseModel):
    """A signed checkpoint of the log (C2SP signed note): the tree of the first ``size`` records."""

    size = pw.IntegerField(primary_key=True)
    root = pw.BlobField()
    note = pw.TextField()
    compact = pw.TextField()  # the compact range at this size (JSON list of base64), to restart without re-hashing
    created_ms = pw.BigIntegerField()


class Cosignature(BaseModel):
    """The cloud's timestamped cosignature of a checkpoint: the outside witness that it existed by then."""

    size = pw.IntegerField(primary_key=True)
    line = pw.TextField()  # the signed-note signature line, as the cloud sent it
    cosigned_at = pw.BigIntegerField()  # the cloud's time, Unix seconds
    received_ms = pw.BigIntegerField()


class BadRecord(BaseModel):
    """A terminal record that is not a valid punch, by the seq of the incident record keeping it."""

    seq = pw.IntegerField(primary_key=True)
    terminal_sn = pw.CharField()
    raw = pw.BlobField()

    class Meta:
        indexes = ((("terminal_sn", "raw"), True),)


class TerminalHealth(BaseModel):
    name = pw.CharField(primary_key=True)
    serial = pw.CharField(default="")
    cursor = pw.IntegerField(default=0)  # records of the terminal's log already stored
    available = pw.BooleanField(default=False)
    last_contact_ms = pw.BigIntegerField(null=True)
    last_error = pw.TextField(default="")
    clock_offset_ms = pw.IntegerField(null=True)
    capacity = pw.IntegerField(null=True)
    record_size = pw.IntegerField(null=True)


class PushCursor(BaseModel):
    """Where a push (ADMS) terminal's log stands: the stamp and body hash of the last batch stored.

    Written in the same transaction as the batch's punches, so after a restart the receiver tells
    the terminal to resume exactly after what is stored (and recognises a re-sent batch)."""

    serial = pw.CharField(primary_key=True)
    stamp = pw.CharField(null=True)  # None: the terminal's firmware sends no Stamp=
    digest = pw.CharField()  # SHA-256 of the batch body, hex
    updated_ms = pw.BigIntegerField()


class SyncState(BaseModel):
    id = pw.IntegerField(primary_key=True, default=1)
    acked_seq = pw.IntegerField(default=-1)  # highest seq the cloud has verified and committed
    acked_at_ms = pw.BigIntegerField(null=True)
    connected = pw.BooleanField(default=False)  # to the broker, as the daemon last saw it
    last_error = pw.TextField(default="")


class Account(BaseModel):
    username = pw.CharField(primary_key=True)
    password_hash = pw.CharField()
    role = pw.CharField(default="admin")
    created_ms = pw.BigIntegerField()


MODELS = (LogRecord, Punch, BadRecord, Checkpoint, Cosignature, TerminalHealth, PushCursor, SyncState, Account)


def open_db(path: Path, *, create: bool = True) -> pw.SqliteDatabase:
    """Open (and with ``create``, migrate) the database and bind the models to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = pw.SqliteDatabase(str(path), pragmas=PRAGMAS, check_same_thread=False)
    db.bind(MODELS)
    if create:
        with db.connection_context():
            db.create_tables(MODELS, safe=True)
            for table in APPEND_ONLY:
                for action in ("UPDATE", "DELETE"):
                    db.execute_sql(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
            SyncState.get_or_create(id=1)
    return db
