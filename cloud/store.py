"""The cloud's database (peewee): SQLite by default, PostgreSQL for scale-out.

Every appliance's log is stored record by record, exactly as signed; ``LogHead`` is the
highest seq held contiguously, and its row is the lock that makes concurrent ingest workers
store each range once.
"""

from __future__ import annotations

import importlib
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import peewee as pw
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate

from cloud.rows import copy_text
from opskit.dbfile import private_db_file
from opskit.migrations import Step, run_migrations

log = logging.getLogger(__name__)
T = TypeVar("T")
database = pw.DatabaseProxy()

SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "busy_timeout": 10_000, "foreign_keys": 1}


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Plant(BaseModel):
    id = pw.CharField(primary_key=True)
    name = pw.CharField(default="")
    timezone = pw.CharField(default="Asia/Shanghai")


class Appliance(BaseModel):
    plant = pw.ForeignKeyField(Plant, backref="appliances")
    name = pw.CharField()
    log_origin = pw.CharField(unique=True)
    status = pw.CharField(default="unknown")  # online / offline, from the retained status topic
    status_ms = pw.BigIntegerField(null=True)
    last_batch_ms = pw.BigIntegerField(null=True)
    registered_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("plant", "name"), True),)


class ApplianceKey(BaseModel):
    appliance = pw.ForeignKeyField(Appliance, backref="keys")
    kid = pw.CharField(unique=True)
    public_key = pw.TextField()
    valid_from_seq = pw.BigIntegerField(default=0)
    valid_to_seq = pw.BigIntegerField(null=True)  # the seq of the keyrot record that handed over to the next key
    revoked_ms = pw.BigIntegerField(null=True)


class LogHead(BaseModel):
    appliance = pw.ForeignKeyField(Appliance, primary_key=True)
    seq = pw.BigIntegerField(default=-1)
    leaf = pw.BlobField(null=True)
    compact = pw.TextField(default="[]")  # the log's Merkle tree as a compact range (JSON, base64 hashes)


class CloudCheckpoint(BaseModel):
    """An appliance checkpoint the cloud verified, with the cosignature it gave: the witness record."""

    appliance = pw.ForeignKeyField(Appliance)
    size = pw.BigIntegerField()
    root = pw.BlobField()
    note = pw.TextField()  # as the appliance signed it
    cosignature = pw.TextField()  # the cloud's signature line
    cosigned_at = pw.BigIntegerField()  # Unix seconds
    received_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("appliance", "size"), True),)


class WitnessState(BaseModel):
    """The cloud's own log of the checkpoints it cosigned: its size and tree. The one row is the lock."""

    id = pw.IntegerField(primary_key=True)
    size = pw.BigIntegerField(default=0)
    compact = pw.TextField(default="[]")


class WitnessEntry(BaseModel):
    """One cosigned appliance checkpoint, as a leaf of the cloud's log (canonical JSON)."""

    seq = pw.BigIntegerField(primary_key=True)
    checkpoint = pw.ForeignKeyField(CloudCheckpoint, unique=True, null=True)  # an appliance's checkpoint, or
    evidence = pw.BigIntegerField(null=True)  # the size of a checkpoint of the cloud's evidence log (unique index)
    data = pw.BlobField()
    leaf = pw.BlobField()


class WitnessCheckpoint(BaseModel):
    """A signed checkpoint of the cloud's log (C2SP signed note by the witness key)."""

    size = pw.BigIntegerField(primary_key=True)
    root = pw.BlobField()
    note = pw.TextField()
    created_ms = pw.BigIntegerField()


class WitnessStamp(BaseModel):
    """An RFC 3161 timestamp of a witness checkpoint: a third party's word that it existed by then."""

    checkpoint = pw.ForeignKeyField(WitnessCheckpoint, field=WitnessCheckpoint.size, backref="stamps")
    token = pw.BlobField()  # the TSA's whole reply (TimeStampResp, DER)
    gen_time_ms = pw.BigIntegerField()
    reason = pw.CharField(max_length=16)  # hourly, export
    tsa_url = pw.CharField()


class LogRecord(BaseModel):
    appliance = pw.ForeignKeyField(Appliance, index=False)  # (appliance, seq) below serves it
    seq = pw.BigIntegerField()
    type = pw.CharField(max_length=16)
    data = pw.BlobField()
    sig = pw.BlobField()
    leaf = pw.BlobField()
    t_wall_ms = pw.BigIntegerField()  # the appliance's clock when it made the record
    employee = pw.CharField(null=True)  # whose record it is (punches, day facts), for evidence export
    received_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("appliance", "seq"), True), (("appliance", "t_wall_ms"), False))


class Punch(BaseModel):
    appliance = pw.ForeignKeyField(Appliance, index=False)  # (appliance, seq) below serves it
    seq = pw.BigIntegerField()
    employee = pw.CharField(index=True)
    terminal = pw.CharField()
    terminal_sn = pw.CharField()
    device_time = pw.CharField()
    at_utc_ms = pw.BigIntegerField(index=True)
    state = pw.IntegerField()
    verify = pw.IntegerField()
    received_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("appliance", "seq"), True),)


class Quarantine(BaseModel):
    """A message that failed verification: kept verbatim, alarmed, never silently dropped."""

    received_ms = pw.BigIntegerField(index=True)
    topic = pw.CharField()
    reason = pw.TextField()
    payload = pw.BlobField()


class ProvisionalRecord(BaseModel):
    """A record that came on the live lane ahead of the appliance's backlog: its signature checked, the
    chain not yet. Shown at once; deleted when the backlog lane brings the same record into ``LogRecord``."""

    appliance = pw.ForeignKeyField(Appliance)
    seq = pw.BigIntegerField()
    type = pw.CharField(max_length=16)
    employee = pw.CharField(null=True, index=True)
    t_wall_ms = pw.BigIntegerField()
    data = pw.BlobField()
    sig = pw.BlobField()
    received_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("appliance", "seq"), True),)


class DeviceStatus(BaseModel):
    """A terminal's availability as its appliance last published it (retained topic ``device/{name}``)."""

    appliance = pw.ForeignKeyField(Appliance)
    terminal = pw.CharField()
    available = pw.BooleanField()
    error = pw.TextField(default="")
    detail = pw.TextField(default="{}")  # the published JSON, verbatim
    updated_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("appliance", "terminal"), True),)


class Account(BaseModel):
    username = pw.CharField(primary_key=True)
    password_hash = pw.CharField()
    role = pw.CharField(default="hr_admin")  # hr_admin | hr_staff | plant_manager | auditor (cloud.accounts)
    plant = pw.CharField(default="")  # a plant manager's own plant; "" for head-office roles
    created_ms = pw.BigIntegerField()
    # a session carries the epoch it began in (cloud.accounts.session_stamp); logout moves it on, which ends
    # every session of the account, a cookie copied before included. Added in place by _add_new_columns.
    session_epoch = pw.IntegerField(default=0)


MODELS = (
    Plant,
    Appliance,
    ApplianceKey,
    LogHead,
    CloudCheckpoint,
    WitnessState,
    WitnessEntry,
    WitnessCheckpoint,
    WitnessStamp,
    LogRecord,
    Punch,
    Quarantine,
    ProvisionalRecord,
    DeviceStatus,
    Account,
)


# Other modules that own tables (each defines its own MODELS on this module's BaseModel); open_db creates them too.
MODEL_MODULES: tuple[str, ...] = (
    "cloud.plantconfig.config_push",  # configuration versions pushed, and what each appliance applied
    "cloud.appliances.broker_auth",  # broker logins (hashes only)
    "cloud.channels.contact_log",  # contact attempts, delivery receipts, dispatch claims
    "cloud.notices.records",  # rendered notices with their hashes
    "cloud.notices.links",  # the notices' read-and-acknowledge links (token hashes only)
    "cloud.hr.models",  # employees, badges, rosters, leave, trips, corrections
    "cloud.escalation.policy",  # handbook policy versions
    "cloud.escalation.models",  # absence cases, steps, timelines
    "cloud.evidence.log",  # the cloud's own signed log of contacts, receipts and people's actions
    "cloud.accounts",  # the login throttle
    "cloud.audit",  # every human action on head office's pages
    "cloud.escalation.casefiles",  # documents uploaded to a case, with their SHA-256
    "cloud.ingest.quarantine",  # quarantined messages past each source's sample: counted, not kept
    "cloud.escalation.work_queue",  # when each person last marked their work queue seen
    "cloud.escalation.hr_digest",  # the HR digests sent, and which items each carried
    "cloud.alerts.models",  # missed check-in alerts read from the plants' logs, and the messages sent for them
)


def all_models() -> list[type[pw.Model]]:
    models = list(MODELS)
    for name in MODEL_MODULES:
        models.extend(importlib.import_module(name).MODELS)
    return models


DISCONNECTED = (pw.OperationalError, pw.InterfaceError)


def reconnecting(action: Callable[[], T]) -> T:
    """Run ``action``; if PostgreSQL dropped the connection (restart, failover), reconnect and run it once more.

    Only safe for idempotent actions, such as storing a batch.
    """
    try:
        return action()
    except DISCONNECTED as err:
        db = database.obj
        if isinstance(db, pw.SqliteDatabase):
            raise
        log.warning("lost the database connection (%s); reconnecting", str(err).strip().splitlines()[0])
        try:
            db.close()
        except DISCONNECTED:
            log.debug("closing the broken connection failed too", exc_info=True)
        return action()


def write_transaction():  # type: ignore[no-untyped-def]
    """A transaction that reads, then writes. On SQLite it takes the write lock at BEGIN: a deferred one that
    reads first cannot upgrade while another connection writes, and fails at once ("database is locked")
    instead of waiting out busy_timeout. PostgreSQL needs nothing special."""
    db = database.obj
    return db.atomic("IMMEDIATE") if isinstance(db, pw.SqliteDatabase) else db.atomic()


def bulk_insert(
    model: type[pw.Model],
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]] | str,
    constants: dict[str, int] | None = None,
) -> None:
    """Insert many rows with one statement: the ORM's per-value SQL building costs more than the database
    itself on a backlog of a million records. On PostgreSQL ``rows`` may be COPY text already
    (``cloud.rows.copy_text``). ``constants`` are integer columns equal in every row (the appliance, the
    time of receipt), written into the statement, or onto each COPY line, rather than into each row."""
    if not rows:
        return
    fixed = {name: int(value) for name, value in (constants or {}).items()}  # int(): nothing else reaches the SQL
    db = database.obj
    table = f'"{model._meta.table_name}" ({", ".join(columns + tuple(fixed))})'
    if isinstance(db, pw.PostgresqlDatabase):  # COPY: half the time of a multi-row INSERT, on both ends
        text = rows if isinstance(rows, str) else copy_text(rows)
        if fixed:  # a raw newline only ends a line: COPY text escapes those inside values
            text = text.replace("\n", "".join(f"\t{value}" for value in fixed.values()) + "\n")
        db.cursor().copy_expert(f"COPY {table} FROM STDIN", io.StringIO(text))
        return
    if isinstance(rows, str):
        raise TypeError("COPY text is for PostgreSQL; SQLite takes rows")
    literals = "".join(f", {value}" for value in fixed.values())
    db.cursor().executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))}{literals})", rows)


def open_db(url: str, *, create: bool = True) -> pw.Database:
    """Connect to ``url`` (sqlite:///... or postgresql://...) and bind the models to it."""
    kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        kwargs["pragmas"] = SQLITE_PRAGMAS
        # Every transaction takes the write lock at BEGIN: one that read first cannot upgrade once another
        # process (the ingest worker) has written since, and SQLite fails it at once, without busy_timeout.
        kwargs["lock_type"] = "IMMEDIATE"
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            private_db_file(Path(path))
    db = connect(url, **kwargs)
    database.initialize(db)
    if create:
        with db.connection_context():
            db.create_tables(all_models(), safe=True)
            run_migrations(db, MIGRATIONS)
            _add_new_columns(db)  # the safety net: a column added to a model without a migration
    return db


def _add_new_columns(db: pw.Database) -> None:
    """Columns added to a model after its table was created (each nullable or with a default): added in
    place, so a database made by an older version opens with its rows intact."""
    migrator = SchemaMigrator.from_database(db)
    for model in all_models():
        table = model._meta.table_name
        present = {column.name for column in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in present:
                migrate(migrator.add_column(table, field.column_name, field))


def _witness_evidence(db: pw.Database) -> None:
    """The witness log also witnesses the cloud's evidence log: an entry names an appliance checkpoint or an
    evidence checkpoint, so ``checkpoint`` may be empty."""
    table = WitnessEntry._meta.table_name
    if table not in db.get_tables():
        return
    columns = {c.name: c for c in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db)
    if "evidence" not in columns:
        migrate(migrator.add_column(table, "evidence", pw.BigIntegerField(null=True)))
    db.execute_sql(f'CREATE UNIQUE INDEX IF NOT EXISTS witness_entry_evidence ON "{table}" (evidence)')
    if not columns["checkpoint_id"].null:
        migrate(migrator.drop_not_null(table, "checkpoint_id"))


def _drop_appliance_indexes(db: pw.Database) -> None:
    """Each table's unique (appliance, seq) index answers every query by appliance; the extra index on the
    appliance alone only cost every insert of a backlog another B-tree update."""
    for table in (LogRecord._meta.table_name, Punch._meta.table_name):
        db.execute_sql(f'DROP INDEX IF EXISTS "{table}_appliance_id"')


def _drop_row_foreign_keys(db: pw.Database) -> None:
    """PostgreSQL checks a foreign key with a query per inserted row: a third of the server's work on a
    backlog. Records are only stored under their log's head row, which is locked and references the
    appliance, and appliances are never deleted; the head's own foreign key still guards that. (SQLite's
    check is a cheap lookup, and dropping it there would mean rebuilding the tables: it stays.)"""
    if not isinstance(db, pw.PostgresqlDatabase):
        return
    for table in (LogRecord._meta.table_name, Punch._meta.table_name):
        db.execute_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{table}_appliance_id_fkey"')


def _drop_fact_foreign_keys(db: pw.Database) -> None:
    """The same for the day facts the escalation stores from the log: every morning a group's day of facts
    (a million rows) is stored in one tick, and the two per-row checks were 42 % of that statement
    (EXPLAIN ANALYZE, 50,000 facts). A fact is only stored from a log record of an appliance at its plant,
    and neither is ever deleted."""
    if not isinstance(db, pw.PostgresqlDatabase):
        return
    for column in ("plant_id", "appliance_id"):
        db.execute_sql(f'ALTER TABLE "attendance_day" DROP CONSTRAINT IF EXISTS "attendance_day_{column}_fkey"')


def _notice_text(db: pw.Database) -> None:
    """Kept notices keep their words too (the notice link's page shows them); older ones have none."""
    table = "notice_document"
    if table in db.get_tables() and "text" not in {c.name for c in db.get_columns(table)}:
        migrate(SchemaMigrator.from_database(db).add_column(table, "text", pw.TextField(default="")))


def _drop_prefix_indexes(db: pw.Database) -> None:
    """An index on a column that another index of its table starts with serves no query the longer one does
    not, and costs every insert another B-tree update: the escalation's morning tick stores a million day
    facts and opens tens of thousands of cases with their steps, days and timeline entries."""
    for name in (
        "attendance_day_plant_id",  # (plant_id, fact_key) and (plant_id, user_id, work_date)
        "absence_case_plant_id",  # (plant_id, user_id)
        "case_day_case_id",  # (case_id, fact_key)
        "case_step_case_id",  # (case_id, key)
        "case_step_status",  # (status, due_ms)
        "case_entry_case_id",  # (case_id, seq)
    ):
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


# Each release's schema changes, in order (opskit.migrations runs them once each). Append only.
MIGRATIONS: tuple[Step, ...] = (
    ("columns added to tables before schema versioning (0.1.0)", _add_new_columns),
    ("witness entries may witness the cloud's evidence log", _witness_evidence),
    ("drop the appliance-only indexes of log records and punches", _drop_appliance_indexes),
    ("PostgreSQL: no per-row foreign-key check on log records and punches", _drop_row_foreign_keys),
    ("kept notices keep their text, for the notice link's page", _notice_text),
    ("PostgreSQL: no per-row foreign-key check on the day facts the escalation stores", _drop_fact_foreign_keys),
    (
        "drop indexes that a longer index of the same table starts with (day facts, cases, steps, timelines)",
        _drop_prefix_indexes,
    ),
)
