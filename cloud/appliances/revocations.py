"""The appliance keys head office revoked (``punchproof cloud revoke-key``), with the point from which each key's log
is untrusted. The table lives here, below the evidence log that signs each row as a ``keyrevoke`` record, so that the
pages and the escalation can ask whether a record is trusted (``cloud.appliances.trust``)."""

from __future__ import annotations

import peewee as pw

from cloud.store import BaseModel


class KeyRevocation(BaseModel):
    """An appliance key revoked at head office (``punchproof cloud revoke-key``), with the point from which that
    log's records are untrusted: ``since_seq``, the first record that may have been made by whoever copied the
    key. Each row becomes a signed ``keyrevoke`` record of this log; a later row may only move the point earlier,
    and the earliest counts."""

    id = pw.AutoField()
    key_log = pw.CharField(index=True)  # the appliance's log origin
    kid = pw.CharField()
    revoked_ms = pw.BigIntegerField()
    since_seq = pw.BigIntegerField()
    since = pw.CharField(default="")  # what the operator gave (--compromised-since), in words
    operator = pw.CharField(default="")
