"""The plants' ``alert`` records, read from the stored logs into ``MissedAlert``, once each.

An alert travels in the appliance's signed log (``appliance.attendance.alerts``): the cloud's ingest stores it like
every record, within a second of the appliance signing it, or after an outage in the log's order. The alert worker
reads the records stored since each appliance's cursor (``AlertCursor``), as the plant actions are read.
"""

from __future__ import annotations

import json
import logging

from cloud.alerts.models import AlertCursor, MissedAlert
from cloud.ingest.record_cursor import copy_new

log = logging.getLogger(__name__)
READ_LIMIT = 5_000  # records looked at per appliance and tick


def read_new(now_ms: int, limit: int = READ_LIMIT) -> int:
    """Copy the alert records stored since each appliance's cursor into ``MissedAlert``; how many."""
    return copy_new(
        AlertCursor,
        "alert",
        MissedAlert,
        lambda appliance, plant, seq, data, t_wall_ms: _alert(appliance, plant, seq, data, t_wall_ms, now_ms),
        limit,
    )


def _alert(appliance_id: int, plant_id: str, seq: int, data: bytes, t_wall_ms: int, now_ms: int) -> dict | None:
    try:
        body = json.loads(data)
        who = [[str(badge)[:64], str(name)[:64]] for badge, name in body["who"]]
        work_date = str(body["date"])[:10]
    except (ValueError, KeyError, TypeError) as err:  # signed and verified, but not of a shape this code knows
        log.error("alert record %d of appliance %d not read: %s", seq, appliance_id, err)
        return None
    return {
        "appliance": appliance_id,
        "seq": seq,
        "plant": plant_id,
        "work_date": work_date,
        "shift": str(body.get("shift", ""))[:64],
        "shift_name": str(body.get("shift_name", ""))[:64],
        "line": str(body.get("line", ""))[:64],
        "start_ms": int(body.get("start_ms") or 0),
        "due_ms": int(body.get("due_ms") or 0),
        "raised_ms": int(t_wall_ms),
        "received_ms": now_ms,
        "who": json.dumps(who, ensure_ascii=False),
        "status": "new",
    }
