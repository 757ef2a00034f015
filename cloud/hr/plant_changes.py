"""Plants whose master data changed at head office and whose appliances have not been sent it yet.

HR's own record of them, as ``HrChange`` is for the escalation engine. Where HR's pages write what a plant's
configuration carries (a leave, a trip or a 补卡 in ``cloud.hr.records``, a spreadsheet import in
``cloud.hr.importer``), the plant is marked here in the same transaction: one row per plant, with the first and
the latest change not yet pushed. The escalation runner (``cloud.workers.escalate``) pushes a marked plant once
HR has been quiet for a while (``quiet_ms`` after the latest change) or at the latest ``within_ms`` after the
first: an import of many sheets, or a clerk entering leave one after the other, is one push, and a steady
trickle of changes still goes out. A push that failed stays marked with the error and is tried again, after
30 s at first and at most 10 minutes later. Marking costs one upsert per change; nothing is built, hashed or
compared until the push. The table is created with the configuration's (``plantconfig.config_push.MODELS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import peewee as pw

from cloud.store import BaseModel, Plant

RETRY_FIRST_MS = 30_000
RETRY_MAX_MS = 600_000


class ConfigDue(BaseModel):
    """A plant whose configuration is to be pushed: changed since ``first_ms``, latest change ``last_ms``."""

    plant = pw.ForeignKeyField(Plant, primary_key=True)
    first_ms = pw.BigIntegerField()
    last_ms = pw.BigIntegerField()
    attempts = pw.IntegerField(default=0)  # pushes that failed since the first change
    error = pw.TextField(default="")  # why the last push failed; "" while none has
    retry_ms = pw.BigIntegerField(null=True)  # not tried again before then


MODELS = (ConfigDue,)


@dataclass(frozen=True)
class Pending:
    """A plant's configuration waiting to be pushed, as head office's pages show it."""

    plant_id: str
    first_ms: int
    last_ms: int
    due_ms: int  # when the runner pushes it (a failed one: when it tries again)
    attempts: int
    error: str


def mark(plants: Iterable[Plant | str], now_ms: int) -> None:
    """Say that these plants' master data changed now (call in the transaction that writes the change)."""
    for plant in sorted({p if isinstance(p, str) else p.id for p in plants}):
        ConfigDue.insert(plant=plant, first_ms=now_ms, last_ms=now_ms).on_conflict(
            conflict_target=[ConfigDue.plant],
            update={ConfigDue.last_ms: pw.fn.MAX(ConfigDue.last_ms, now_ms)}
            if _sqlite()
            else {ConfigDue.last_ms: pw.fn.GREATEST(ConfigDue.last_ms, now_ms)},
        ).execute()


def _sqlite() -> bool:
    return isinstance(ConfigDue._meta.database.obj, pw.SqliteDatabase)


def due(now_ms: int, *, quiet_ms: int, within_ms: int) -> list[ConfigDue]:
    """The marked plants to push now: quiet since their latest change, or waiting since their first too long,
    and not waiting to be tried again after a failure."""
    return list(
        ConfigDue.select()
        .where(
            ((ConfigDue.last_ms <= now_ms - quiet_ms) | (ConfigDue.first_ms <= now_ms - within_ms))
            & (ConfigDue.retry_ms.is_null() | (ConfigDue.retry_ms <= now_ms))
        )
        .order_by(ConfigDue.plant)
    )


def pushed(row: ConfigDue) -> None:
    """The push that read ``row`` succeeded: unmarked, unless HR changed the plant again meanwhile (then it is
    due again from that change)."""
    gone = ConfigDue.delete().where((ConfigDue.plant == row.plant_id) & (ConfigDue.last_ms <= row.last_ms)).execute()
    if not gone:
        ConfigDue.update(first_ms=row.last_ms + 1, attempts=0, error="", retry_ms=None).where(
            ConfigDue.plant == row.plant_id
        ).execute()


def failed(row: ConfigDue, error: str, now_ms: int) -> int:
    """The push failed: kept, with why, and tried again after a wait that doubles up to ``RETRY_MAX_MS``.
    Returns the wait in ms."""
    wait = min(RETRY_FIRST_MS * 2**row.attempts, RETRY_MAX_MS)
    ConfigDue.update(attempts=ConfigDue.attempts + 1, error=error[:2000], retry_ms=now_ms + wait).where(
        ConfigDue.plant == row.plant_id
    ).execute()
    return wait


def pending(plant_ids: Iterable[str], *, quiet_ms: int, within_ms: int) -> dict[str, Pending]:
    """What waits to be pushed for these plants, by plant id (none: nothing waits)."""
    ids = sorted(set(plant_ids))
    if not ids:
        return {}
    out = {}
    for row in ConfigDue.select().where(ConfigDue.plant.in_(ids)):
        at = min(row.last_ms + quiet_ms, row.first_ms + within_ms)
        if row.retry_ms is not None:
            at = max(at, row.retry_ms)
        out[row.plant_id] = Pending(row.plant_id, row.first_ms, row.last_ms, at, row.attempts, row.error)
    return out
