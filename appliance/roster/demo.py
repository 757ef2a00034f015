"""A small plant's master data in the appliance's own rows: the 30 workers ``punchproof emulate zk`` enrols,
on three lines, with day and rotating rosters and a sick leave, for tests that need a plausible roster.

``punchproof demo`` does not use it: the demo loads its plant as an installer does, HR's workbook through
``punchproof cloud import-hr`` and the signed push to the appliance (``punchproof.demo_story``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from firmware_bridge.cli import demo_roster

LINES = ("一线", "二线", "三线")
SHIFTS = [
    {"id": "A", "name": "早班", "spans": "08:00-12:00,13:00-17:00", "late_grace_min": 5},
    {"id": "B", "name": "中班", "spans": "14:00-22:00", "late_grace_min": 5},
    {"id": "N", "name": "夜班", "spans": "20:00-08:00", "late_grace_min": 10},
]
ROSTERS = [
    {"id": "day", "kind": "weekly", "pattern": "A,A,A,A,A,A,-", "holidays": "observe"},
    {"id": "rot", "kind": "rotating", "pattern": "B,B,N,N,-,-", "anchor": "2026-01-05", "holidays": "ignore"},
]


def demo_rows(size: int, now: datetime, tz: ZoneInfo) -> dict[str, list[dict[str, object]]]:
    """Master rows for ``size`` demo workers (badges 1001...): two in three on the day roster."""
    employees = [
        {
            "user_id": user_id,
            "name": name,
            "line": LINES[n % len(LINES)],
            "department": "装配部" if n % 2 == 0 else "包装部",
            "roster": "rot" if n % 3 == 2 else "day",
            "valid_from": "",
            "valid_to": "",
            "active": True,
        }
        for n, (user_id, name) in enumerate(demo_roster(size))
    ]
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    sick = int((today - timedelta(days=3)).astimezone(UTC).timestamp() * 1000)
    back = int((today + timedelta(days=1)).astimezone(UTC).timestamp() * 1000)
    leave = [
        {
            "id": "L-DEMO-1",
            "employee": employees[-1]["user_id"],
            "kind": "病假",
            "start_ms": sick,
            "end_ms": back,
            "status": "approved",
        }
    ]
    return {"shifts": SHIFTS, "rosters": ROSTERS, "employees": employees, "leave": leave}
