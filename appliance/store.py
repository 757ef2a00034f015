"""The appliance's SQLite database (peewee): the signed log and what is derived from it.

``log_record`` and ``punch`` are append-only, enforced by triggers as well as by the code:
corrections are new records, never edits. Mutable state (terminal cursors and health, the
sync cursor, accounts) lives in tables of its own.
"""

from __future__ import annotations

from pathlib import Path

import peewee as pw
from playhouse.migrate import SqliteMigrator, migrate
from playhouse.pool import PooledSqliteDatabase

from opskit.dbfile import private_db_file
from opskit.migrations import Step, run_migrations

POOL_STALE_S = 300  # a pooled connection older than this is closed rather than reused
POOL_WAIT_S = 10  # a request waits this long for a pooled connection, then fails (and says so)
PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",  # a committed punch survives a power cut
    "busy_timeout": 10_000,
    "foreign_keys": 1,
}
APPEND_ONLY = (
    "log_record",
    "punch",
    "bad_record",
    "checkpoint",
    "cosignature",
    "day_fact_index",
    "action_record",
    "log_clear_record",
)


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


class LogCheckState(BaseModel):
    """The largest checkpoint whose root the daemon re-hashed from the log at a start (appliance.capture.logcheck):
    the next start hashes only the records after it."""

    id = pw.IntegerField(primary_key=True, default=1)
    size = pw.IntegerField()

    class Meta:
        table_name = "log_check"


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
    # SHA-256 of the records just before the cursor as they were read (appliance.capture.logtail): a read that
    # finds others there finds a log cleared outside the appliance; None until a read transfers them
    tail_digest = pw.CharField(null=True)
    available = pw.BooleanField(default=False)
    last_contact_ms = pw.BigIntegerField(null=True)
    # the first successful read (a trigger keeps it): from then on this appliance records the terminal,
    # and only a shift that began after it can be an absence (appliance.rules: Status.UNCOVERED)
    first_read_ms = pw.BigIntegerField(null=True)
    last_error = pw.TextField(default="")
    clock_offset_ms = pw.IntegerField(null=True)
    capacity = pw.IntegerField(null=True)  # records the terminal can still store
    record_size = pw.IntegerField(null=True)
    # the clock alarm episode in progress (appliance.capture.terminal_clock): its offset when it began, and when
    clock_alarm_ms = pw.IntegerField(null=True)
    clock_alarm_since_ms = pw.BigIntegerField(null=True)
    live_since_ms = pw.BigIntegerField(null=True)  # live capture registered since; None: not registered


class TerminalCommand(BaseModel):
    """A command for a terminal the daemon owns (``clear-terminal``), asked for by another process.

    The daemon is the only writer of the signed log and the only one talking to the terminal, so
    the CLI queues the command here; the terminal's worker claims it (pending -> running), carries
    it out and writes the outcome back (done | refused), which the CLI waits for.
    """

    id = pw.AutoField()
    terminal = pw.CharField(index=True)
    kind = pw.CharField()  # clear_log
    requested_by = pw.CharField(default="")
    requested_ms = pw.BigIntegerField()
    status = pw.CharField(default="pending")  # pending | running | done | refused | expired
    message = pw.TextField(default="")  # zh-CN / English, for the person who asked
    finished_ms = pw.BigIntegerField(null=True)


class LogClearRecord(BaseModel):
    """Each ``terminal_log_cleared`` incident appended, by seq, and the command it carried out."""

    seq = pw.IntegerField(primary_key=True)
    request = pw.IntegerField(unique=True)
    terminal = pw.CharField(index=True)
    terminal_sn = pw.CharField()
    records = pw.IntegerField()


# -- enrolment (appliance.capture.enrolment): the roster's workers on every ZK terminal, a finger enrolled at one
# terminal copied to the others. Templates are biometric data (PIPL art. 28): sealed here, never sent anywhere --


class StoredTemplate(BaseModel):
    """A fingerprint template enrolled at one of the plant's terminals, kept to copy to the others.

    Sealed with the appliance's template key (``appliance.capture.template_vault``, a key file of its
    own): AES-GCM bound to the worker and finger. Deleted when the worker leaves the roster."""

    user_id = pw.CharField()  # the badge number
    finger = pw.IntegerField()  # 0-9
    sealed = pw.BlobField()  # nonce + ciphertext
    mac = pw.CharField()  # HMAC-SHA256 of the template under the template key: compared, never reversed
    size = pw.IntegerField()
    key_id = pw.CharField()  # the template key that sealed it (a backup restored without that key: unusable)
    terminal = pw.CharField()  # where it was enrolled
    terminal_sn = pw.CharField(default="")
    algorithm = pw.CharField(default="")  # that terminal's ZKFinger version: copied only to terminals of the same
    stored_ms = pw.BigIntegerField()

    class Meta:
        primary_key = pw.CompositeKey("user_id", "finger")


class TemplateTombstone(BaseModel):
    """A finger deleted on purpose at a terminal's menu: the terminals still holding it delete it too."""

    user_id = pw.CharField()
    finger = pw.IntegerField()
    mac = pw.CharField(default="")  # the deleted template's MAC: that template, found anywhere later, is deleted
    terminal = pw.CharField()  # where it was deleted
    removed_ms = pw.BigIntegerField()

    class Meta:
        primary_key = pw.CompositeKey("user_id", "finger")


class TerminalFinger(BaseModel):
    """A finger the appliance last saw on, or wrote to, a terminal (by the template's MAC): what tells a finger
    enrolled there since from one the appliance copied there."""

    terminal = pw.CharField()
    user_id = pw.CharField()
    finger = pw.IntegerField()
    mac = pw.CharField()

    class Meta:
        primary_key = pw.CompositeKey("terminal", "user_id", "finger")


class EnrolmentState(BaseModel):
    """Where a terminal's enrolment stands: the roster and templates it was last made to match (``basis``) and
    the user and finger counts it had then; the same counts and basis at the next poll mean nothing to do."""

    terminal = pw.CharField(primary_key=True)
    serial = pw.CharField(default="")
    basis = pw.CharField(default="")
    users = pw.IntegerField(null=True)  # None: read everything at the next poll
    fingers = pw.IntegerField(null=True)
    templates_read_ms = pw.BigIntegerField(null=True)
    synced_ms = pw.BigIntegerField(null=True)
    last_error = pw.TextField(default="")


class TemplateVersion(BaseModel):
    """Bumped by triggers on every write to the stored templates and tombstones: a terminal's cue to look again."""

    id = pw.IntegerField(primary_key=True, default=1)
    version = pw.IntegerField(default=0)


class RemovalBrake(BaseModel):
    """The brake on a mass removal from the terminals (one row): the roster as last accepted, and the leavers whose
    removal is held until a person confirms it (``appliance.capture.enrolment``, docs/enrolment.md).

    A roster that makes more of the accepted roster's workers leave at once than the limit (``[enrolment]`` in
    appliance.toml) removes none of them from the terminals and deletes none of their fingers: they are ``held``.
    ``punchproof appliance confirm-removals`` writes ``confirmed``; the daemon signs it and removes them."""

    id = pw.IntegerField(primary_key=True, default=1)
    version = pw.IntegerField(default=0)  # bumped by every write: each terminal's worker looks at the roster again
    min_leavers = pw.IntegerField(default=5)  # the rule the daemon runs with (written at its start)
    percent = pw.FloatField(default=10.0)
    accepted = pw.TextField(null=True)  # JSON: the badges on the roster as last accepted; None: not yet looked at
    held = pw.TextField(default="[]")  # JSON: the badges whose removal is held
    held_before = pw.IntegerField(default=0)  # the accepted roster's size when it was held, and the limit then
    held_limit = pw.IntegerField(default=0)
    held_ms = pw.BigIntegerField(null=True)
    confirmed = pw.TextField(default="[]")  # JSON: the badges a person confirmed removing, not yet taken up
    confirmed_by = pw.CharField(default="")
    confirmed_ms = pw.BigIntegerField(null=True)


ENROLMENT_MODELS = (StoredTemplate, TemplateTombstone, TerminalFinger, EnrolmentState, TemplateVersion, RemovalBrake)


class TerminalLogCount(BaseModel):
    """One ZK terminal log's records as this appliance counted them, so the board can say why the
    terminal's own record count (its screen's 记录数) and the punches stored from it differ.

    A log cleared by ``clear-terminal`` or found cleared or replaced outside the appliance starts a
    new one (``log_no`` + 1). Written by the terminal's ingest with the cursor, in the same transaction.
    """

    terminal = pw.CharField()
    log_no = pw.IntegerField()
    serial = pw.CharField(default="")
    cause = pw.CharField(default="first")  # first | cleared (clear-terminal) | replaced (outside the appliance)
    began_ms = pw.BigIntegerField()  # when this appliance began counting the log
    updated_ms = pw.BigIntegerField()
    terminal_count = pw.IntegerField(default=0)  # the terminal's record count at the last read
    records_read = pw.IntegerField(default=0)  # records [0, records_read) of the log are read
    uncounted = pw.IntegerField(default=0)  # read before counting began (a database from an older version)
    punches = pw.IntegerField(default=0)  # distinct punches among the counted records, each stored once
    duplicates = pw.IntegerField(default=0)  # identical presses in one second: one punch
    bad_records = pw.IntegerField(default=0)  # records that cannot be punches: stored as incidents

    class Meta:
        primary_key = pw.CompositeKey("terminal", "log_no")


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
    # a session carries the epoch it began in; logout and a password or role change move it on, which
    # ends every session of the account, a cookie copied before included
    session_epoch = pw.IntegerField(default=0)


class LoginThrottle(BaseModel):
    """Failed logins per key (opskit.throttle): "ip:ADDRESS", "user-ip:NAME@ADDRESS", "user:NAME"."""

    key = pw.CharField(primary_key=True, max_length=160)
    failures = pw.IntegerField(default=0)
    last_ms = pw.BigIntegerField()


# -- master data: who works which shift (fed by import-roster today, by the cloud's signed
# configuration channel later: each row says where it came from, and the loader does not care) --


class Employee(BaseModel):
    """A worker, by badge number: the ``user_id`` the terminals record."""

    user_id = pw.CharField(primary_key=True)
    name = pw.CharField(default="")
    line = pw.CharField(default="")  # 产线 / 班组
    department = pw.CharField(default="")
    roster = pw.CharField(default="")  # a ``RosterDef`` id; "" = not scheduled
    valid_from = pw.CharField(default="")  # ISO date, inclusive; "" = always
    valid_to = pw.CharField(default="")
    active = pw.BooleanField(default=True)
    source = pw.CharField(default="")  # "import:roster.xlsx", "demo", later "cloud:<config version>"
    updated_ms = pw.BigIntegerField(default=0)


class ShiftDef(BaseModel):
    id = pw.CharField(primary_key=True)
    name = pw.CharField(default="")
    spans = pw.CharField()  # "08:00-12:00,13:00-17:00"; an end before its start ends the next day
    late_grace_min = pw.IntegerField(default=5)
    early_grace_min = pw.IntegerField(default=0)
    checkin_before_min = pw.IntegerField(default=120)
    checkout_after_min = pw.IntegerField(default=240)
    terminals = pw.CharField(default="")  # terminal names, comma-separated; "" = every terminal
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class RosterDef(BaseModel):
    id = pw.CharField(primary_key=True)
    kind = pw.CharField(default="weekly")  # "weekly" (Monday first, 7 days) or "rotating" (a cycle)
    pattern = pw.CharField()  # "D,D,D,D,D,-,-": a shift id per day, "-" rest, "A+B" two shifts
    anchor = pw.CharField(default="")  # rotating: a date on which day 0 of the cycle falls
    holidays = pw.CharField(default="observe")  # "observe" public holidays, or "ignore" them
    makeup_weekday = pw.IntegerField(default=0)
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class ScheduleDay(BaseModel):
    """排班 by hand: the shifts of one employee on one date, over the roster ("" = rest)."""

    employee = pw.CharField()
    day = pw.CharField()  # ISO date
    shifts = pw.CharField(default="")
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("employee", "day")


class LeaveEntry(BaseModel):
    id = pw.CharField(primary_key=True)
    employee = pw.CharField(index=True)
    kind = pw.CharField(default="")  # 病假, 年假, 事假...
    start_ms = pw.BigIntegerField()
    end_ms = pw.BigIntegerField()
    status = pw.CharField(default="approved")  # only approved leave excuses; "cancelled" stays as a row
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class TripEntry(BaseModel):
    id = pw.CharField(primary_key=True)
    employee = pw.CharField(index=True)
    destination = pw.CharField(default="")
    start_ms = pw.BigIntegerField()
    end_ms = pw.BigIntegerField()
    status = pw.CharField(default="approved")
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class CorrectionEntry(BaseModel):
    """补卡: a punch added by a person, with the reason; never replaces a recorded punch."""

    id = pw.CharField(primary_key=True)
    employee = pw.CharField(index=True)
    at_ms = pw.BigIntegerField()
    direction = pw.CharField(default="unknown")  # in | out | unknown
    reason = pw.CharField(default="")
    by = pw.CharField(default="")
    recorded_ms = pw.BigIntegerField(default=0)
    status = pw.CharField(default="approved")
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class CalendarFile(BaseModel):
    """The plant's calendar overrides (TOML, ``appliance.rules.parse_overrides``), one row."""

    id = pw.IntegerField(primary_key=True, default=1)
    text = pw.TextField(default="")
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class PlantPolicy(BaseModel):
    """The plant's rule knobs, one row; absent = the rules' defaults."""

    id = pw.IntegerField(primary_key=True, default=1)
    version = pw.CharField(default="default")
    duplicate_window_s = pw.IntegerField(default=60)
    tentative_after_min = pw.IntegerField(default=15)
    confirm_margin_min = pw.IntegerField(default=60)
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class DeviceSetting(BaseModel):
    """A terminal's clock policy and poll interval as the cloud's configuration sets them
    (``appliance.capture.device_settings``): laid over ``appliance.toml`` when the daemon starts."""

    terminal = pw.CharField(primary_key=True)
    clock_alarm_s = pw.IntegerField()
    clock_correct_above_s = pw.IntegerField(null=True)  # None: never set the terminal's clock
    poll_seconds = pw.IntegerField()
    source = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class AppliedConfig(BaseModel):
    """The cloud configuration version this appliance runs (``appliance.sync.remote_config``), one row:
    a document is applied only if its version is above ``version`` (a replay changes nothing)."""

    id = pw.IntegerField(primary_key=True, default=1)
    version = pw.IntegerField(default=0)
    hash = pw.CharField(default="")  # SHA-256 of the canonical document, hex
    created_ms = pw.BigIntegerField(null=True)  # when the cloud made it
    by = pw.CharField(default="")
    applied_ms = pw.BigIntegerField(null=True)
    rejected = pw.TextField(default="")  # why the latest refused document was refused, for the pages
    rejected_ms = pw.BigIntegerField(null=True)


# -- what the attendance evaluator writes (the daemon) and the pages read ------------------------


DAY_COLUMNS = ("work_date", "status", "missing_tier", "start_ms", "shift", "line", "employee", "shift_name", "tier")


class BoardRow(BaseModel):
    """The latest evaluation of one employee's shift (or day off) on one date, for the pages."""

    work_date = pw.CharField()  # ISO date the shift starts on
    employee = pw.CharField()
    shift = pw.CharField()  # "" on a day without a shift
    name = pw.CharField(default="")
    line = pw.CharField(default="")
    shift_name = pw.CharField(default="")
    status = pw.CharField()  # appliance.rules.Status
    tier = pw.CharField()  # appliance.rules.Confirmation: open | held | confirmed
    missing_tier = pw.CharField(default="")  # tentative | confirmed, for a missed check-in
    late_min = pw.IntegerField(default=0)
    early_min = pw.IntegerField(default=0)
    missed = pw.IntegerField(default=0)
    start_ms = pw.BigIntegerField(null=True)
    end_ms = pw.BigIntegerField(null=True)
    late_grace_s = pw.IntegerField(default=0)
    in_ms = pw.BigIntegerField(null=True)
    out_ms = pw.BigIntegerField(null=True)
    n_punches = pw.IntegerField(default=0)
    held_by = pw.CharField(default="")
    excusal = pw.CharField(default="")
    watch = pw.CharField(default="")
    reason_zh = pw.TextField(default="")
    reason_en = pw.TextField(default="")
    fact_seq = pw.IntegerField(null=True)  # the dayfact record that states this decision, once confirmed
    as_of_ms = pw.BigIntegerField()
    # The board version after the write that last changed the row: whoever writes a row sets it to the board's
    # version + 1 in the same statement (``CHANGED``), so a page that read the rows at version V finds every row
    # changed since among those above V, and reads only them (appliance.web.dayrows)
    changed = pw.IntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("work_date", "employee", "shift")
        # What the board reads of a whole day at every version of it (the rows' order, the counts, the shifts and
        # lines, yesterday's open shifts) and the evaluator's open days, from the index alone: a row's reasons make
        # the table's pages ten times as many (appliance.web.board). The index of the rows changed since a version is
        # made by its migration (``CHANGED_INDEX``), not here
        indexes = ((DAY_COLUMNS, False),)


class DayFactIndex(BaseModel):
    """Each ``dayfact`` record appended, by its seq: the latest per key is what a change supersedes."""

    seq = pw.IntegerField(primary_key=True)
    key = pw.CharField(index=True)  # "emp/date/shift"
    work_date = pw.CharField(index=True)
    fact_id = pw.CharField()  # appliance.rules.fact_id of the body
    decision = pw.TextField()  # JSON of the decision fields, to compare without re-reading the record


class EvalRequest(BaseModel):
    """A past date to evaluate again (leave, a trip or a 补卡 entered after the fact)."""

    day = pw.CharField(primary_key=True)
    requested_ms = pw.BigIntegerField()


class EvaluatorState(BaseModel):
    id = pw.IntegerField(primary_key=True, default=1)
    passes = pw.IntegerField(default=0)  # bumped by every pass
    board_version = pw.IntegerField(default=0)  # bumped by a pass that changed the board: the pages' cue to refresh
    last_pass_ms = pw.BigIntegerField(null=True)
    pass_ms = pw.IntegerField(default=0)  # how long the last pass took
    last_error = pw.TextField(default="")
    # bumped by SQLite triggers on every write to the master data or EvalRequest, whoever writes
    # them (an import, the cloud's configuration, a page): the evaluator's cue to read them again
    master_version = pw.IntegerField(default=0)
    pid = pw.IntegerField(null=True)  # the evaluator's process (the daemon starts it; it is not the daemon)


# A row's ``changed`` as its writer sets it, in the statement that writes it: the board's version to come (see
# ``BoardRow.changed``)
CHANGED = f"COALESCE((SELECT board_version FROM {EvaluatorState._meta.table_name} WHERE id = 1), 0) + 1"


class EvalHandoff(BaseModel):
    """What the evaluator's process asks the log writer to sign: a day fact or a missed check-in alert.

    The evaluator runs in a process of its own and holds no signing key; it queues each record here
    (one row per key: a newer decision replaces one not yet signed) and the daemon, the one log
    writer, appends it and deletes the row in the same transaction (``appliance.attendance.handoff``).
    """

    id = pw.AutoField()
    kind = pw.CharField()  # "dayfact" | "alert"
    key = pw.CharField()  # dayfact: "emp/date/shift"; alert: "date/shift/line"
    body = pw.TextField()  # the record's body, JSON
    queued_ms = pw.BigIntegerField()

    class Meta:
        table_name = "eval_handoff"
        indexes = ((("kind", "key"), True),)


class ActionRequest(BaseModel):
    """ "Seen on the line", "terminal fault", "sent home": asked for by a page, signed by the daemon.

    The pages hold no signing key, so they queue the action here and the daemon appends it as an
    ``action`` record; ``ActionRecord`` (derived from the log) says which record holds it.
    """

    id = pw.AutoField()
    employee = pw.CharField(index=True)
    work_date = pw.CharField()
    shift = pw.CharField(default="")
    kind = pw.CharField()  # seen_on_line | terminal_fault | sent_home
    reason = pw.TextField()
    user = pw.CharField()
    role = pw.CharField(default="")
    requested_ms = pw.BigIntegerField()
    error = pw.TextField(default="")  # why the daemon refused it (none so far); the page shows it


class ActionRecord(BaseModel):
    """Each ``action`` record appended, by seq; a request is signed at most once (unique)."""

    seq = pw.IntegerField(primary_key=True)
    request = pw.IntegerField(unique=True)
    employee = pw.CharField(index=True)
    work_date = pw.CharField()


MASTER_MODELS = (
    Employee,
    ShiftDef,
    RosterDef,
    ScheduleDay,
    LeaveEntry,
    TripEntry,
    CorrectionEntry,
    CalendarFile,
    PlantPolicy,
    DeviceSetting,
)
ATTENDANCE_MODELS = (BoardRow, DayFactIndex, EvalRequest, EvaluatorState, EvalHandoff, ActionRequest, ActionRecord)

MODELS = (
    LogRecord,
    Punch,
    BadRecord,
    Checkpoint,
    LogCheckState,
    Cosignature,
    TerminalHealth,
    TerminalCommand,
    LogClearRecord,
    TerminalLogCount,
    PushCursor,
    SyncState,
    Account,
    LoginThrottle,
    AppliedConfig,
    *MASTER_MODELS,
    *ATTENDANCE_MODELS,
    *ENROLMENT_MODELS,
)


# Every transaction takes the write lock at BEGIN: one that read first cannot upgrade once another process
# (the daemon, a CLI) has written since, and SQLite fails it at once ("database is locked"), without busy_timeout.
LOCK_TYPE = "IMMEDIATE"


def open_db(
    path: Path,
    *,
    create: bool = True,
    cache_kib: int | None = None,
    pool: int | None = None,
    statements: int | None = None,
) -> pw.SqliteDatabase:
    """Open (and with ``create``, migrate) the database and bind the models to it.

    ``cache_kib``: each connection's page cache at most (SQLite's default is 2 MB a connection).
    ``statements``: each connection keeps this many prepared statements for reuse (Python's default is
    128). A statement reading ``... IN (?, ?, ...)`` is one of its own for every length of the list and
    holds some 100 kB at a thousand values: a process whose queries name varying sets of employees
    (the evaluator's passes over the new punchers) kept megabytes of statements it never ran again.
    ``pool``: keep up to this many connections open for reuse (``close()`` hands one back). For the
    pages: opening SQLite costs its pragmas and a parse of the schema, under a lock that every
    request of the worker takes, which made opening and closing most of a small request's time.
    A caller wanting one when all are taken waits up to ``POOL_WAIT_S``.
    """
    private_db_file(path)
    pragmas = PRAGMAS if cache_kib is None else {**PRAGMAS, "cache_size": -cache_kib}
    reuse = {} if statements is None else {"cached_statements": statements}
    if pool:
        db: pw.SqliteDatabase = PooledSqliteDatabase(
            str(path),
            max_connections=pool,
            stale_timeout=POOL_STALE_S,
            timeout=POOL_WAIT_S,
            pragmas=pragmas,
            check_same_thread=False,
            lock_type=LOCK_TYPE,
            **reuse,
        )
    else:
        db = pw.SqliteDatabase(str(path), pragmas=pragmas, check_same_thread=False, lock_type=LOCK_TYPE, **reuse)
    db.bind(MODELS)
    if create:
        with db.connection_context():
            db.create_tables(MODELS, safe=True)
            run_migrations(db, MIGRATIONS)
            _add_new_columns(db)  # the safety net: a column added to a model without a migration
            for table in APPEND_ONLY:
                for action in ("UPDATE", "DELETE"):
                    db.execute_sql(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    )
            _master_triggers(db)
            _first_read_triggers(db)
            _template_triggers(db)
            SyncState.get_or_create(id=1)
            EvaluatorState.get_or_create(id=1)
            TemplateVersion.get_or_create(id=1)
    return db


def _master_triggers(db: pw.SqliteDatabase) -> None:
    """Every write to what the evaluator reads besides punches bumps ``master_version``, so that it
    re-reads the master data when they changed rather than on a timer. Triggers, not the writers'
    code: a writer added later cannot forget. The evaluator's own deletion of an ``EvalRequest`` it
    has served is not a change."""
    bump = f"UPDATE {EvaluatorState._meta.table_name} SET master_version = master_version + 1 WHERE id = 1"
    watched = [(model._meta.table_name, ("INSERT", "UPDATE", "DELETE")) for model in MASTER_MODELS]
    watched.append((EvalRequest._meta.table_name, ("INSERT", "UPDATE")))
    for table, actions in watched:
        for action in actions:
            db.execute_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_{action.lower()}_master AFTER {action} ON {table} "
                f"BEGIN {bump}; END"
            )


def _template_triggers(db: pw.SqliteDatabase) -> None:
    """Every write to the stored templates or tombstones bumps ``TemplateVersion``: each terminal's worker
    compares it, not the rows, to know whether there is anything to copy or delete."""
    bump = f"UPDATE {TemplateVersion._meta.table_name} SET version = version + 1 WHERE id = 1"
    for model in (StoredTemplate, TemplateTombstone):
        table = model._meta.table_name
        for action in ("INSERT", "UPDATE", "DELETE"):
            db.execute_sql(
                f"CREATE TRIGGER IF NOT EXISTS {table}_{action.lower()}_version AFTER {action} ON {table} "
                f"BEGIN {bump}; END"
            )


def _enrolment_tables(db: pw.SqliteDatabase) -> None:
    """The enrolment tables (0.1.x had none): empty, so the first poll of each terminal reads it whole."""
    db.create_tables(ENROLMENT_MODELS, safe=True)


def _log_count_table(db: pw.SqliteDatabase) -> None:
    """Per-log record counts (0.1.x had none): empty; a terminal's first read then counts its log from
    the stored cursor on, the records before it as read before counting began."""
    db.create_tables([TerminalLogCount], safe=True)


def _login_tables(db: pw.SqliteDatabase) -> None:
    """``account.session_epoch`` (every existing session stays valid: epoch 0) and the login throttle."""
    _add_new_columns(db)
    db.create_tables([LoginThrottle], safe=True)


def _first_read_triggers(db: pw.SqliteDatabase) -> None:
    """``first_read_ms`` is the first ``last_contact_ms`` a terminal ever had: a trigger, not each
    reader's code (ZK poller, push receiver, serial readers), so that none can forget it."""
    table = TerminalHealth._meta.table_name
    for action in ("INSERT", "UPDATE OF last_contact_ms"):
        name = f"{table}_first_read_{action.split()[0].lower()}"
        db.execute_sql(
            f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {action} ON {table} "
            "WHEN NEW.first_read_ms IS NULL AND NEW.last_contact_ms IS NOT NULL "
            f"BEGIN UPDATE {table} SET first_read_ms = NEW.last_contact_ms WHERE name = NEW.name; END"
        )


def _first_reads_from_the_log(db: pw.SqliteDatabase) -> None:
    """Terminals read before ``first_read_ms`` was kept: recorded since the log began (its first record)."""
    _add_new_columns(db)
    db.execute_sql(
        f"UPDATE {TerminalHealth._meta.table_name} SET first_read_ms = "
        f"(SELECT min(t_wall_ms) FROM {LogRecord._meta.table_name}) "
        "WHERE first_read_ms IS NULL AND last_contact_ms IS NOT NULL"
    )


def _handoff_table(db: pw.SqliteDatabase) -> None:
    """The evaluator's queue to the log writer (empty) and the column naming its process."""
    db.create_tables([EvalHandoff], safe=True)
    _add_new_columns(db)


def _board_day_index(db: pw.SqliteDatabase) -> None:
    """The board's day index (``BoardRow``'s, made by ``create_tables``), in place of the one on its date alone, which
    the primary key (date first) serves as well."""
    BoardRow._schema.create_indexes(safe=True)
    db.execute_sql(f"DROP INDEX IF EXISTS {BoardRow._meta.table_name}_work_date")


# The rows of a day changed since a version (appliance.web.dayrows). Not among the model's indexes, which a database
# from before the column gets first (``create_tables``), before its migrations: SQLite takes a double-quoted name
# that is no column for a string, and the index made on that constant was corrupt once the column came
CHANGED_INDEX = f'CREATE INDEX IF NOT EXISTS "{BoardRow._meta.table_name}_work_date_changed" ON ' + (
    f'"{BoardRow._meta.table_name}" ("work_date", "changed")'
)


def _board_changed(db: pw.SqliteDatabase) -> None:
    """``board_row.changed`` (0 on the rows there: a page reads them all once anyway) and its index."""
    _add_new_columns(db)
    db.execute_sql(CHANGED_INDEX)


def _add_new_columns(db: pw.SqliteDatabase) -> None:
    """Columns added to a table after it was created (each nullable or with a default): added in
    place, so a database made by an older version opens with its rows intact."""
    migrator = SqliteMigrator(db)
    for model in MODELS:
        table = model._meta.table_name
        present = {column.name for column in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in present:
                migrate(migrator.add_column(table, field.column_name, field))


# Each release's schema changes, in order (opskit.migrations runs them once each). Append only.
MIGRATIONS: tuple[Step, ...] = (
    ("columns added to tables before schema versioning (0.1.0)", _add_new_columns),
    ("terminal_health.first_read_ms, from the log's start for terminals already read", _first_reads_from_the_log),
    ("terminal_health.tail_digest, to notice a terminal log cleared outside the appliance", _add_new_columns),
    ("enrolment: stored templates (sealed), tombstones, each terminal's fingers and state", _enrolment_tables),
    ("terminal_log_count: each terminal log's records counted, for the board's terminals table", _log_count_table),
    ("account.session_epoch and login_throttle: sessions that end, logins that slow guessers", _login_tables),
    ("eval_handoff and evaluator_state.pid: the evaluator in a process of its own", _handoff_table),
    ("board_row: one index for what the board reads of a day, in place of the one on its date", _board_day_index),
    (
        "board_row.changed: the board version of each row's last change, so the pages read only the rows changed",
        _board_changed,
    ),
)
