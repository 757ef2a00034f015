"""The escalation tables. Times are epoch milliseconds UTC. Nothing here is ever deleted.

A case's ``CaseEntry`` rows are its timeline: append-only, numbered, each hashing the one before
(``prev_hash``), so that an entry removed or edited later shows. A step that will not be taken any
more is ``superseded`` with an entry saying why; a step taken stays taken.

Idempotency rests on unique keys, not on care: one open case per employee (``open_key``), one
planned step per case and key, one gate per case and kind, one approval per gate and person, and a
step is claimed for sending by a conditional update that only one runner can win.
"""

from __future__ import annotations

import peewee as pw

from cloud.escalation.policy import PolicyVersion
from cloud.hr.models import Employee
from cloud.store import Appliance, BaseModel, Plant


class AttendanceDay(BaseModel):
    """The latest confirmed day fact for a badge's scheduled shift (or day off), from the signed logs."""

    plant = pw.ForeignKeyField(Plant, index=False)  # both indexes below lead with it
    user_id = pw.CharField()
    fact_key = pw.CharField()  # emp/date/shift, as the appliance names it
    work_date = pw.CharField()
    shift = pw.CharField(default="")
    status = pw.CharField()  # present, late, left_early, incomplete, missing, on_leave, business_trip, rest_day...
    start_ms = pw.BigIntegerField(null=True)
    end_ms = pw.BigIntegerField(null=True)
    watch = pw.CharField(default="")  # the leave or trip whose end makes this the first shift back
    excusal = pw.CharField(default="")
    fact_id = pw.CharField(max_length=64)
    appliance = pw.ForeignKeyField(Appliance)
    seq = pw.BigIntegerField()  # the dayfact record in that appliance's log
    versions = pw.IntegerField(default=1)  # how many facts this key has had (1 + supersessions)

    class Meta:
        indexes = ((("plant", "fact_key"), True), (("plant", "user_id", "work_date"), False))


class FactCursor(BaseModel):
    """How far each appliance's log has been read for day facts (seqs are stored in order, under its head lock)."""

    appliance = pw.ForeignKeyField(Appliance, primary_key=True)
    seq = pw.BigIntegerField(default=-1)


class AbsenceCase(BaseModel):
    employee = pw.ForeignKeyField(Employee, backref="cases")
    plant = pw.ForeignKeyField(Plant, index=False)  # (plant, user_id) serves it
    user_id = pw.CharField()
    policy = pw.ForeignKeyField(PolicyVersion)
    trigger = pw.CharField()  # missed_shift | leave_end
    trigger_ref = pw.CharField(default="")  # the leave (or trip) that ended
    state = pw.CharField(index=True)
    level = pw.IntegerField(default=0)
    opened_ms = pw.BigIntegerField()
    first_day = pw.CharField()
    first_start_ms = pw.BigIntegerField()
    days = pw.IntegerField(default=0)  # D: confirmed absent working days counted
    consecutive = pw.IntegerField(default=0)  # the current run of them
    cumulative_month = pw.IntegerField(default=0)
    cumulative_year = pw.IntegerField(default=0)
    acked_until_ms = pw.BigIntegerField(null=True)
    ack_reason = pw.CharField(default="")
    ack_expired = pw.BooleanField(
        default=False
    )  # an ack ran out at L2: L3 was due without D3 (stays set: it justifies L3)
    contacted = pw.BooleanField(default=False)  # anyone reached the employee (an ack with a contact reason)
    welfare = pw.CharField(default="")  # "" | open | closed | injury | illness
    deadline_ms = pw.BigIntegerField(null=True)  # Tdl: the 催告函's return deadline
    union_wait_until_ms = pw.BigIntegerField(null=True)
    effective_ms = pw.BigIntegerField(null=True)  # termination takes effect (served)
    resolved_ms = pw.BigIntegerField(null=True)
    resolution = pw.CharField(default="")
    blocked = pw.CharField(default="")  # why L5 is held back (shown, and noted once per change)
    wake_ms = pw.BigIntegerField(null=True, index=True)  # the next timer; the tick looks at due cases only
    open_key = pw.IntegerField(null=True, unique=True)  # the employee's id while open: one open case each
    updated_ms = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("plant", "user_id"), False),)


class CaseDay(BaseModel):
    case = pw.ForeignKeyField(AbsenceCase, backref="day_rows", index=False)  # (case, fact_key) serves it
    fact_key = pw.CharField()
    work_date = pw.CharField()
    shift = pw.CharField(default="")
    start_ms = pw.BigIntegerField()
    fact_id = pw.CharField(max_length=64)
    status = pw.CharField(default="counted")  # counted | superseded
    superseded_by = pw.CharField(default="")  # the leave, 补卡 or later fact that excused it

    class Meta:
        indexes = ((("case", "fact_key"), True),)


class CaseStep(BaseModel):
    """A planned outbound step: awaiting_approval → due → sending → sent | failed; or superseded."""

    case = pw.ForeignKeyField(AbsenceCase, backref="steps", index=False)  # (case, key) serves it
    key = pw.CharField()
    level = pw.IntegerField()
    notice = pw.CharField()
    recipients = pw.CharField()  # comma-separated
    channels = pw.CharField()
    to_people = pw.BooleanField(default=False)  # quiet hours apply
    automatic = pw.BooleanField(default=True)  # paused by an acknowledgement (L5+ steps are human-confirmed)
    status = pw.CharField()  # (status, due_ms) serves it
    planned_ms = pw.BigIntegerField()
    due_ms = pw.BigIntegerField(index=True)
    claimed_by = pw.CharField(default="")
    claimed_ms = pw.BigIntegerField(null=True)
    sent_ms = pw.BigIntegerField(null=True)
    error = pw.TextField(default="")

    class Meta:
        # (status, due_ms): the dispatcher reads the next due steps in due order without sorting them all
        indexes = ((("case", "key"), True), (("status", "due_ms"), False))


class Gate(BaseModel):
    case = pw.ForeignKeyField(AbsenceCase, backref="gates")
    kind = pw.CharField()  # approve_cuigao | confirm_termination
    required = pw.IntegerField(default=1)  # distinct people
    status = pw.CharField(default="open")  # open | approved | superseded
    opened_ms = pw.BigIntegerField()
    closed_ms = pw.BigIntegerField(null=True)
    checklist = pw.TextField(default="")  # JSON: what was checked when it opened

    class Meta:
        indexes = ((("case", "kind"), True),)


class GateApproval(BaseModel):
    gate = pw.ForeignKeyField(Gate, backref="approvals")
    by = pw.CharField()
    at_ms = pw.BigIntegerField()
    note = pw.TextField(default="")

    class Meta:
        indexes = ((("gate", "by"), True),)


class CaseTask(BaseModel):
    """Work for a person, with a due date where a statute sets one."""

    case = pw.ForeignKeyField(AbsenceCase, backref="tasks")
    kind = pw.CharField()
    title_zh = pw.CharField()
    title_en = pw.CharField()
    due_ms = pw.BigIntegerField(null=True)
    statutory = pw.BooleanField(default=False)
    status = pw.CharField(default="open")  # open | done | superseded
    done_ms = pw.BigIntegerField(null=True)
    done_by = pw.CharField(default="")
    proof = pw.TextField(default="")
    created_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("case", "kind"), True),)


class Service(BaseModel):
    """送达 of one document of a case: sent, served, failed, published (公告), deemed served."""

    case = pw.ForeignKeyField(AbsenceCase, backref="services")
    document = pw.CharField()  # cuigao | termination
    status = pw.CharField()  # sent | served | failed | published | deemed
    sent_ms = pw.BigIntegerField(null=True)
    served_ms = pw.BigIntegerField(null=True)
    method = pw.CharField(default="")
    proof = pw.TextField(default="")
    published_ms = pw.BigIntegerField(null=True)
    deemed_ms = pw.BigIntegerField(null=True)

    class Meta:
        indexes = ((("case", "document"), True),)


class CaseEntry(BaseModel):
    case = pw.ForeignKeyField(AbsenceCase, backref="entries", index=False)  # (case, seq) serves it
    seq = pw.IntegerField()
    at_ms = pw.BigIntegerField()
    kind = pw.CharField()
    actor = pw.CharField()  # "engine" or a person's user name
    text_zh = pw.TextField()
    text_en = pw.TextField()
    data = pw.TextField(default="{}")
    prev_hash = pw.CharField(max_length=64)
    hash = pw.CharField(max_length=64)

    class Meta:
        indexes = ((("case", "seq"), True),)


class PlantAction(BaseModel):
    """An ``action`` record of a plant's signed log ("seen on the line", "terminal fault", "sent home"), as the
    escalation runner read it, and the case it was filed on (``plant_actions``); filed once, never again."""

    appliance = pw.ForeignKeyField(Appliance)
    seq = pw.BigIntegerField()  # the record in that appliance's log
    plant = pw.ForeignKeyField(Plant)
    user_id = pw.CharField()  # the badge it is about
    work_date = pw.CharField()
    shift = pw.CharField(default="")
    act = pw.CharField()  # seen_on_line | terminal_fault | sent_home
    user = pw.CharField(default="")  # the plant's login that recorded it
    role = pw.CharField(default="")
    reason = pw.TextField(default="")
    at_ms = pw.BigIntegerField()  # when the person asked for it (the plant's clock)
    case = pw.ForeignKeyField(AbsenceCase, null=True, backref="plant_actions")
    filed_ms = pw.BigIntegerField(null=True)  # when it was filed on ``case``; None: no open case counts that day

    class Meta:
        indexes = ((("appliance", "seq"), True), (("plant", "user_id", "work_date"), False))


class ActionCursor(BaseModel):
    """How far each appliance's log has been read for action records (as ``FactCursor`` for day facts)."""

    appliance = pw.ForeignKeyField(Appliance, primary_key=True)
    seq = pw.BigIntegerField(default=-1)


class RunnerLease(BaseModel):
    """Who runs ticks (SQLite; PostgreSQL uses an advisory lock): one runner at a time, taken over when it lapses."""

    id = pw.IntegerField(primary_key=True)
    holder = pw.CharField(default="")
    until_ms = pw.BigIntegerField(default=0)


MODELS = (
    AttendanceDay,
    FactCursor,
    AbsenceCase,
    CaseDay,
    CaseStep,
    Gate,
    GateApproval,
    CaseTask,
    Service,
    CaseEntry,
    RunnerLease,
    PlantAction,
    ActionCursor,
)
