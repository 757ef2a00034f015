"""The evaluator reads the master tables at every pass that finds them changed (``appliance.roster.store.load``):
5,000 workers were 5,000 peewee model instances, all kept by the query until its loop ended, some megabytes at
the peak of a pass that the process kept resident afterwards (#25 item 1's 200 MB). Plain rows, one at a time:
the peak above what the pass keeps (its people and assignments) stays small. Real SQLite, tracemalloc."""

from __future__ import annotations

import tracemalloc

from appliance.roster import store as roster_store
from appliance.store import Employee, RosterDef, ScheduleDay, ShiftDef
from tests.conftest import PLANT_TZ

WORKERS = 5000
LIMIT = 512 * 1024  # 3.5 MB above with the model instances, 45 kB with plain rows


def test_reading_5000_workers_peaks_little_above_what_it_keeps(db):
    ShiftDef.create(id="D", name="白班", spans="08:00-17:00")
    RosterDef.create(id="wk", kind="weekly", pattern="D,D,D,D,D,-,-", holidays="observe")
    rows = [
        {"user_id": f"{100000 + n}", "name": f"工人{n}", "line": f"{n % 20 + 1}线", "roster": "wk", "active": True}
        for n in range(WORKERS)
    ]
    with db.atomic():
        for start in range(0, WORKERS, 500):
            Employee.insert_many(rows[start : start + 500]).execute()
        ScheduleDay.create(employee="100007", day="2026-03-02", shifts="D")
    roster_store.load(PLANT_TZ, ["gate-1"])  # warm: the statements and the module's first-use objects
    tracemalloc.start()
    try:
        master = roster_store.load(PLANT_TZ, ["gate-1"])
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(master.people) == WORKERS and not master.problems
    assert master.people["100007"].name == "工人7"
    assert peak - kept < LIMIT, f"{(peak - kept) / 1e6:.1f} MB above what the pass keeps"
