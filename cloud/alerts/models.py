"""The alert tables: each appliance's reading cursor, each alert read, and each message sent for it."""

from __future__ import annotations

import peewee as pw

from cloud.store import Appliance, BaseModel


class AlertCursor(BaseModel):
    """How far each appliance's stored log was read for ``alert`` records."""

    appliance = pw.ForeignKeyField(Appliance, primary_key=True)
    seq = pw.BigIntegerField(default=-1)


class MissedAlert(BaseModel):
    """One alert as the plant raised it (its signed record: ``appliance``, ``seq``), and what became of it.

    ``status``: new (to send) | held (quiet hours, until ``hold_until_ms``) | sending (claimed: its messages are
    being sent, or a runner stopped while sending them; never sent again) | sent | nobody (every worker listed
    punched before it was sent: no message) | failed (no recipient or no channel took it)."""

    appliance = pw.ForeignKeyField(Appliance, index=False)
    seq = pw.BigIntegerField()
    plant = pw.CharField(index=True)
    work_date = pw.CharField()
    shift = pw.CharField(default="")
    shift_name = pw.CharField(default="")
    line = pw.CharField(default="")
    start_ms = pw.BigIntegerField(default=0)
    due_ms = pw.BigIntegerField(default=0)  # the shift's start plus grace: when the workers became overdue
    raised_ms = pw.BigIntegerField()  # the appliance's clock when it signed the alert
    received_ms = pw.BigIntegerField()
    who = pw.TextField(default="[]")  # JSON [[badge, name], ...] as the plant listed them
    missing = pw.TextField(default="[]")  # JSON [[badge, name], ...] still missing when it was sent
    status = pw.CharField(max_length=16, default="new", index=True)
    hold_until_ms = pw.BigIntegerField(null=True)
    done_ms = pw.BigIntegerField(null=True)
    note = pw.TextField(default="")

    class Meta:
        indexes = ((("appliance", "seq"), True),)


class AlertMessage(BaseModel):
    """One message of an alert to one person: claimed (``sending``) before it is sent, so never sent twice."""

    alert = pw.ForeignKeyField(MissedAlert, backref="messages")
    role = pw.CharField(max_length=16)  # manager | hr
    person = pw.CharField(default="")  # the manager's name, or HR
    recipient = pw.CharField()  # the address it goes to
    channel = pw.CharField(max_length=32)
    status = pw.CharField(max_length=16)  # sending | sent | failed | uncertain
    at_ms = pw.BigIntegerField()
    sent_ms = pw.BigIntegerField(null=True)
    text = pw.TextField(default="")
    reason = pw.TextField(default="")
    provider_message_id = pw.CharField(default="")

    class Meta:
        indexes = ((("alert", "recipient", "channel"), True),)


MODELS = (AlertCursor, MissedAlert, AlertMessage)
