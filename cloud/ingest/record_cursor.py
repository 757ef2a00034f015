"""Reading one kind of appliance record as it arrives: a cursor per appliance, advanced under its own row's lock.

The plants' signed ``action`` records (answers on the board) and ``alert`` records (missed check-ins) are copied
from the stored log into tables of their own by whichever process gets there first: the runner's tick, its alert
thread, a second runner. Each appliance's cursor row is locked while its batch is copied and the cursor moved, so
two readers never copy one record twice, and a record that does not parse is logged and passed over, never
retried for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee as pw

from cloud.store import Appliance, LogHead, LogRecord, database

# (appliance id, plant id, seq, the record's bytes, its t_wall_ms) -> the row to insert, or None to pass it over
RowOf = Callable[[int, str, int, bytes, int], dict[str, Any] | None]


def copy_new(cursor: type[pw.Model], record_type: str, target: type[pw.Model], row_of: RowOf, limit: int) -> int:
    """Copy the ``record_type`` records stored since each appliance's ``cursor`` (a model with ``appliance`` and
    ``seq``) into ``target``, at most ``limit`` seqs per appliance a call; how many rows were inserted."""
    behind = (
        LogHead.select(LogHead.appliance, LogHead.seq, Appliance.plant)
        .join(Appliance, on=(Appliance.id == LogHead.appliance))
        .join(cursor, pw.JOIN.LEFT_OUTER, on=(cursor.appliance == LogHead.appliance))
        .where(LogHead.seq > pw.fn.COALESCE(cursor.seq, -1))
        .tuples()
    )
    db = database.obj
    sqlite = isinstance(db, pw.SqliteDatabase)
    count = 0
    for appliance_id, head, plant_id in list(behind):
        cursor.insert(appliance=appliance_id, seq=-1).on_conflict_ignore().execute()
        with db.atomic("IMMEDIATE") if sqlite else db.atomic():  # the cursor row is the lock
            query = cursor.select().where(cursor.appliance == appliance_id)
            done = (query if sqlite else query.for_update()).get().seq
            upto = min(head, done + limit)
            if upto <= done:
                continue
            rows = (
                LogRecord.select(LogRecord.seq, LogRecord.data, LogRecord.t_wall_ms)
                .where(
                    (LogRecord.appliance == appliance_id)
                    & (LogRecord.seq > done)
                    & (LogRecord.seq <= upto)
                    & (LogRecord.type == record_type)
                )
                .order_by(LogRecord.seq)
                .tuples()
            )
            values = [v for s, d, t in rows if (v := row_of(appliance_id, plant_id, s, bytes(d), t)) is not None]
            if values:
                target.insert_many(values).on_conflict_ignore().execute()
                count += len(values)
            cursor.update(seq=upto).where(cursor.appliance == appliance_id).execute()
    return count
