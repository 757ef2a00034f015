"""Every human action taken on head office's pages, with who, when, from where, and how it ended.

Case actions also land in the case's own hash-chained timeline (``cloud.escalation.timeline``) with
the user as actor; this table covers the rest (leave, imports, policy, exports, accounts) and keeps
refusals too, so that "who tried to approve this" has an answer. Rows are only ever added.
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw

from cloud.store import BaseModel


class AuditEntry(BaseModel):
    at_ms = pw.BigIntegerField(index=True)
    username = pw.CharField(max_length=64, index=True)
    role = pw.CharField(max_length=32)
    address = pw.CharField(max_length=64, default="")
    action = pw.CharField(max_length=64)  # e.g. case.ack, leave.add, policy.publish
    target = pw.CharField(default="", index=True)  # e.g. case:42, employee:E1001, plant:p1
    outcome = pw.CharField(max_length=16)  # done | refused | failed
    detail = pw.TextField(default="{}")  # JSON: the form's fields (never passwords) and the error, if any


MODELS = (AuditEntry,)


def record(
    *,
    at_ms: int,
    username: str,
    role: str,
    address: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.create(
        at_ms=at_ms,
        username=username,
        role=role,
        address=address,
        action=action,
        target=target,
        outcome=outcome,
        detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, default=str),
    )


def for_target(target: str, limit: int = 200) -> list[AuditEntry]:
    query = (
        AuditEntry.select().where(AuditEntry.target == target).order_by(AuditEntry.at_ms.desc(), AuditEntry.id.desc())
    )
    return list(query.limit(limit))
