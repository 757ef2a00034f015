"""The evaluator's memory (#25 item 1: every appliance process together within 200 MB at the shift change).

- Its process, started as the daemon starts it (``EvaluatorProcess``), imports only what a pass uses: not the log
  writer's side (``appliance.capture``, ``ledger`` and the cryptography package under it, some 8 MB resident), nor
  the pages' libraries. Python itself lists every module the real child imports, its passes' lazy imports included
  (``PYTHONPROFILEIMPORTTIME``, on its stderr).
- Queueing a day's facts for the log writer (``handoff.put``) holds one row at a time: building them all first (their
  JSON, then peewee's query nodes for ``insert_many``) cost some 8 kB a fact, 27 MB more at the peak of a pass with
  3,333 facts due (16.5 MB here for 3,000).
"""

from __future__ import annotations

import re
import tracemalloc
from datetime import UTC, datetime, timedelta

from appliance.attendance import handoff
from appliance.clock import to_ms
from appliance.roster import importer as roster_import
from appliance.runtime.evaluator_process import EvaluatorProcess
from appliance.store import EvalHandoff, EvaluatorState, TerminalHealth
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until

TERMINALS = ("gate-1",)
WORKERS = 20
# modules a pass never uses: the log writer's side and the pages'
NOT_IMPORTED = (
    "cryptography",
    "ledger",
    "appliance.capture",
    "appliance.web",
    "flask",
    "jinja2",
    "openpyxl",
    "reportlab",
)


def _resting_plant(now: datetime) -> None:
    """``WORKERS`` workers on a roster of rest days, recorded for three days: yesterday's rest day is confirmed
    at midnight, so the evaluator's first pass decides a day fact for each and queues it for the log writer."""
    rows = {
        "shifts": [],
        "rosters": [
            {
                "id": "rest",
                "kind": "weekly",
                "pattern": "-,-,-,-,-,-,-",
                "anchor": "",
                "holidays": "observe",
                "makeup_weekday": 0,
            }
        ],
        "employees": [
            {
                "user_id": f"{1000 + n}",
                "name": f"工人{n}",
                "line": "一线",
                "department": "",
                "roster": "rest",
                "valid_from": "",
                "valid_to": "",
                "active": True,
            }
            for n in range(WORKERS)
        ],
    }
    roster_import.store(rows, PLANT_TZ, to_ms(now), source="test")
    for name in TERMINALS:
        TerminalHealth.insert(name=name, first_read_ms=to_ms(now - timedelta(days=3))).execute()


def test_the_evaluators_process_imports_neither_the_log_writers_side_nor_the_pages(db, tmp_path, monkeypatch, capfd):
    _resting_plant(datetime.now(UTC))
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the child lists each module it imports, as it imports it
    process = EvaluatorProcess(tmp_path / "appliance.sqlite3", PLANT_TZ, TERMINALS)
    process.start()
    try:
        wait_until(
            lambda: EvaluatorState.get_by_id(1).passes > 0 and EvalHandoff.select().count() == WORKERS,
            timeout=60,
            message="the evaluator's first pass, its day facts queued",
        )
    finally:
        process.stop()
    err = capfd.readouterr().err
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", err, re.M))
    assert "appliance.attendance.evaluator" in imported and "appliance.rules" in imported, err[-2000:]
    heavy = sorted(m for m in imported if m.split(".")[0] in NOT_IMPORTED or m.startswith(NOT_IMPORTED))
    assert heavy == [], heavy


def test_queueing_a_days_facts_holds_one_row_at_a_time(db):
    # as a 20-terminal plant's first day writes them: each reason names every terminal (some 2.6 kB a fact)
    since = [f"zk{t:02d} 自 2026-03-02 08:15 起才由本设备记录" for t in range(20)]
    bodies = [
        {
            "key": f"{n:05d}/2026-03-02/D",
            "emp": f"{n:05d}",
            "date": "2026-03-02",
            "shift": "D",
            "status": "uncovered",
            "reason_zh": f"未覆盖：班次 08:00 开始时本设备尚未记录（{'；'.join(since)}），无打卡不能据此认定缺勤",
            "reason_en": "Not covered: "
            + "; ".join(f"zk{t:02d} recorded only from 2026-03-02 08:15" for t in range(20)),
        }
        for n in range(3000)
    ]
    now = to_ms(datetime(2026, 3, 2, 12, tzinfo=UTC))
    handoff.put(handoff.DAYFACT, bodies[:10], now)  # the statement and the connection, before measuring
    tracemalloc.start()
    try:
        handoff.put(handoff.DAYFACT, bodies, now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert EvalHandoff.select().count() == 3000
    assert peak < 1 * 2**20, f"{peak / 2**20:.1f} MB at the peak to queue 3,000 facts"
