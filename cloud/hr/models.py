"""The HR tables. Times are epoch milliseconds UTC; dates (``valid_from``...) are ISO strings of the plant's day.

An employee is a person at head office; the badge number a plant's terminals record (``user_id``)
is mapped to the employee explicitly, per plant (``PlantBadge``): the same number at two plants is
two people until HR says otherwise. Rows are never deleted: leave is ``cancelled``, a badge gets a
``valid_to``, so that what a past decision rested on stays readable.
"""

from __future__ import annotations

import peewee as pw

from cloud.store import BaseModel, Plant


class Employee(BaseModel):
    employee_no = pw.CharField(unique=True)  # 工号 in HR's own numbering
    name = pw.CharField(default="")
    id_last4 = pw.CharField(default="")  # 身份证号后四位, as the notices print it
    department = pw.CharField(default="")
    position = pw.CharField(default="")
    manager = pw.ForeignKeyField("self", null=True, backref="reports", on_delete="SET NULL")
    contract_no = pw.CharField(default="")
    contract_start = pw.CharField(default="")  # ISO date
    contract_end = pw.CharField(default="")  # "" = open-ended (无固定期限)
    phone = pw.CharField(default="")
    email = pw.CharField(default="")
    wecom_id = pw.CharField(default="")
    dingtalk_id = pw.CharField(default="")
    # 送达地址确认: the address (and channels) the employee agreed notices may be served at, and the proof
    contract_address = pw.TextField(default="")
    service_address = pw.TextField(default="")
    service_confirmed_ms = pw.BigIntegerField(null=True)
    service_confirmation_ref = pw.CharField(default="")  # the signed form or contract clause (document id)
    active = pw.BooleanField(default=True)
    updated_ms = pw.BigIntegerField(default=0)


class PlantBadge(BaseModel):
    """Badge ``user_id`` at ``plant`` is ``employee``, with the roster they work there."""

    plant = pw.ForeignKeyField(Plant)
    user_id = pw.CharField()
    employee = pw.ForeignKeyField(Employee, backref="badges")
    line = pw.CharField(default="")
    roster = pw.CharField(default="")  # a RosterDef id of this plant; "" = not scheduled
    valid_from = pw.CharField(default="")
    valid_to = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("plant", "user_id"), True),)


class EmergencyContact(BaseModel):
    """Someone to reach when the employee cannot be reached: SMS, voice, post only (not an org member)."""

    employee = pw.ForeignKeyField(Employee, backref="emergency_contacts")
    name = pw.CharField()
    relation = pw.CharField(default="")
    phone = pw.CharField(default="")
    address = pw.TextField(default="")
    may_receive_notices = pw.BooleanField(default=False)  # authorised as agent for service (代收)
    verification = pw.CharField(default="unverified")  # unverified | pending | verified | failed
    verified_ms = pw.BigIntegerField(null=True)
    verification_ref = pw.CharField(default="")  # the SMS reply, call record... that verified it
    updated_ms = pw.BigIntegerField(default=0)
    # several contacts per employee (cloud.hr.contacts): their order, when this number was set, when the last
    # verification SMS went to it, the last reply as the contact wrote it; a removed contact keeps its row
    position = pw.IntegerField(default=1)
    phone_since_ms = pw.BigIntegerField(default=0)
    requested_ms = pw.BigIntegerField(null=True)
    reply_text = pw.CharField(default="")
    reply_ms = pw.BigIntegerField(null=True)
    reply_receipt = pw.BigIntegerField(null=True)  # the contact log's receipt of the last reply applied
    removed_ms = pw.BigIntegerField(null=True)


class ShiftDef(BaseModel):
    plant = pw.ForeignKeyField(Plant)
    shift_id = pw.CharField()
    name = pw.CharField(default="")
    spans = pw.CharField()  # "08:00-12:00,13:00-17:00", as the appliance reads it
    late_grace_min = pw.IntegerField(default=5)
    early_grace_min = pw.IntegerField(default=0)
    checkin_before_min = pw.IntegerField(default=120)
    checkout_after_min = pw.IntegerField(default=240)
    terminals = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("plant", "shift_id"), True),)


class RosterDef(BaseModel):
    plant = pw.ForeignKeyField(Plant)
    roster_id = pw.CharField()
    kind = pw.CharField(default="weekly")  # weekly | rotating
    pattern = pw.CharField()
    anchor = pw.CharField(default="")
    holidays = pw.CharField(default="observe")  # observe | ignore
    makeup_weekday = pw.IntegerField(default=0)
    updated_ms = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("plant", "roster_id"), True),)


class ScheduleDay(BaseModel):
    """排班 by hand for one badge on one date, over its roster ("" = rest)."""

    plant = pw.ForeignKeyField(Plant)
    user_id = pw.CharField()
    day = pw.CharField()
    shifts = pw.CharField(default="")
    updated_ms = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("plant", "user_id", "day"), True),)


class PlantCalendar(BaseModel):
    """The plant's calendar overrides (TOML, the appliance's format): 厂休, a new year's 调休 before a release."""

    plant = pw.ForeignKeyField(Plant, primary_key=True)
    text = pw.TextField(default="")
    updated_ms = pw.BigIntegerField(default=0)


class StatutoryYear(BaseModel):
    """One version of a year's 法定节假日 and 调休 as head office published it (``cloud.hr.calendar``).

    Never edited: publishing the year again adds version n+1, and the newest version of each year is in force.
    """

    year = pw.IntegerField()
    version = pw.IntegerField()  # 1, 2, ... per year
    text = pw.TextField()  # TOML, the appliance's calendar format, dates of this year only
    note = pw.CharField(default="")  # e.g. 国办发明电〔2026〕x 号
    by = pw.CharField(default="")
    created_ms = pw.BigIntegerField()

    class Meta:
        indexes = ((("year", "version"), True),)


class Leave(BaseModel):
    ref = pw.CharField(unique=True)  # 单号
    employee = pw.ForeignKeyField(Employee, backref="leaves")
    kind = pw.CharField(default="请假")  # 病假, 年假, 事假, 工伤假...
    start_ms = pw.BigIntegerField()
    end_ms = pw.BigIntegerField()
    status = pw.CharField(default="approved")  # approved | cancelled
    approved_by = pw.CharField(default="")
    recorded_ms = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("employee", "end_ms"), False),)


class Trip(BaseModel):
    ref = pw.CharField(unique=True)
    employee = pw.ForeignKeyField(Employee, backref="trips")
    destination = pw.CharField(default="")
    start_ms = pw.BigIntegerField()
    end_ms = pw.BigIntegerField()
    status = pw.CharField(default="approved")
    recorded_ms = pw.BigIntegerField(default=0)


class Correction(BaseModel):
    """补卡: a punch added by a person, with the reason; never replaces a recorded punch."""

    ref = pw.CharField(unique=True)
    employee = pw.ForeignKeyField(Employee, backref="corrections")
    at_ms = pw.BigIntegerField()
    direction = pw.CharField(default="unknown")  # in | out | unknown
    reason = pw.CharField(default="")
    approved_by = pw.CharField(default="")
    status = pw.CharField(default="approved")
    recorded_ms = pw.BigIntegerField(default=0)


class HrChange(BaseModel):
    """An employee whose leave, trips or 补卡 changed: the escalation engine looks at them again."""

    employee = pw.ForeignKeyField(Employee, primary_key=True)
    changed_ms = pw.BigIntegerField()


MODELS = (
    Employee,
    PlantBadge,
    EmergencyContact,
    ShiftDef,
    RosterDef,
    ScheduleDay,
    PlantCalendar,
    StatutoryYear,
    Leave,
    Trip,
    Correction,
    HrChange,
)
