"""The evaluator on a real SQLite file with a real signed log and a frozen clock.

Monday 2 March 2026 in Shanghai; shift D 08:00-17:00 (grace 5 min, check-out window 4 h), so a
missed check-in turns tentative at 08:20 (start + grace + 15 min) and can be confirmed from 21:00
(end + 4 h) once both terminals have been read past it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.attendance import Evaluator, actions
from appliance.capture.punchlog import Entry, LogWriter
from appliance.clock import to_ms
from appliance.roster import importer as roster_import
from appliance.rules import fact_id
from appliance.store import (
    MASTER_MODELS,
    ActionRecord,
    BoardRow,
    Employee,
    EvalRequest,
    EvaluatorState,
    LogRecord,
    Punch,
    ShiftDef,
    TerminalHealth,
)
from ledger import GENESIS_PREV, SignedRecord, parse
from ledger.messages import Batch
from ledger.verify import verify_batch
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

LOG = "punchproof/test/pi-01/1"
TERMINALS = ("gate-1", "gate-2")


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=PLANT_TZ).astimezone(UTC)


@pytest.fixture
def clock():
    return FrozenClock(local(2, 7, 0))


@pytest.fixture
def writer(db, key, clock):
    holder: dict[str, Evaluator] = {}
    w = LogWriter(db, key, LOG, clock, "boot-1", on_commit=lambda seq: holder["ev"].wake(seq) if holder else None)
    w.start()
    w.holder = holder  # the evaluator, once made, hears about commits like the daemon's does
    return w


@pytest.fixture
def evaluator(writer, clock):
    ev = Evaluator(writer, PLANT_TZ, TERMINALS, clock)
    writer.holder["ev"] = ev
    return ev


@pytest.fixture(autouse=True)
def master(db, clock):
    store_master(clock)
    recording_since(clock.now() - timedelta(days=30))  # installed a month ago: every day here is covered


def store_master(clock: FrozenClock) -> None:
    """Two employees on a weekday day shift 08:00-17:00, into the database the models are bound to."""
    rows = {
        "shifts": [
            {
                "id": "D",
                "name": "白班",
                "spans": "08:00-17:00",
                "late_grace_min": 5,
                "early_grace_min": 0,
                "checkin_before_min": 120,
                "checkout_after_min": 240,
                "terminals": "",
            }
        ],
        "rosters": [
            {
                "id": "wk",
                "kind": "weekly",
                "pattern": "D,D,D,D,D,-,-",
                "anchor": "",
                "holidays": "observe",
                "makeup_weekday": 0,
            }
        ],
        "employees": [
            {
                "user_id": "1001",
                "name": "张三",
                "line": "一线",
                "department": "",
                "roster": "wk",
                "valid_from": "",
                "valid_to": "",
                "active": True,
            },
            {
                "user_id": "1002",
                "name": "李四",
                "line": "二线",
                "department": "",
                "roster": "wk",
                "valid_from": "",
                "valid_to": "",
                "active": True,
            },
        ],
    }
    roster_import.store(rows, PLANT_TZ, to_ms(clock.now()), source="test")


def read(terminal: str, at: datetime, offset_ms: int = 0) -> None:
    """The terminal was read successfully at ``at`` (what the ingest records)."""
    fields = {"serial": terminal.upper(), "available": True, "last_contact_ms": to_ms(at), "clock_offset_ms": offset_ms}
    TerminalHealth.insert(name=terminal, **fields).on_conflict(
        conflict_target=[TerminalHealth.name], update={getattr(TerminalHealth, k): v for k, v in fields.items()}
    ).execute()


def recording_since(at: datetime, terminals: tuple[str, ...] = TERMINALS) -> None:
    """The appliance has been recording ``terminals`` since ``at`` (their first read)."""
    for name in terminals:
        TerminalHealth.insert(name=name, first_read_ms=to_ms(at)).on_conflict(
            conflict_target=[TerminalHealth.name], update={TerminalHealth.first_read_ms: to_ms(at)}
        ).execute()


def read_all(at: datetime) -> None:
    for name in TERMINALS:
        read(name, at)


def punch_entry(user_id: str, at: datetime, state: int = 0, terminal: str = "gate-1") -> Entry:
    """A punch read from ``terminal``, as the log writer appends it (its row in ``punch`` derived)."""
    device = at.astimezone(PLANT_TZ).replace(tzinfo=None).isoformat()
    body = {
        "emp": user_id,
        "src": "zk",
        "term": {
            "name": terminal,
            "sn": terminal.upper(),
            "t": device,
            "tz": "Asia/Shanghai",
            "state": state,
            "verify": 1,
        },
    }

    def derive(seq, now_ms):
        return Punch, {
            "seq": seq,
            "terminal": terminal,
            "terminal_sn": terminal.upper(),
            "user_id": user_id,
            "device_time": device,
            "at_utc_ms": to_ms(at),
            "verify": 1,
            "state": state,
            "workcode": 0,
            "received_ms": now_ms,
        }

    return Entry("punch", body, derive)


def punch(writer: LogWriter, user_id: str, at: datetime, terminal: str = "gate-1", state: int = 0) -> int:
    return writer.append([punch_entry(user_id, at, state, terminal)])[0]


def row(employee: str, day: str = "2026-03-02") -> BoardRow:
    return BoardRow.get((BoardRow.work_date == day) & (BoardRow.employee == employee) & (BoardRow.shift == "D"))


def day_facts(day: str = "2026-03-02") -> list[dict]:
    """The facts of Monday 2 March (Sunday's rest days are confirmed too, at midnight)."""
    rows = LogRecord.select().where(LogRecord.type == "dayfact").order_by(LogRecord.seq)
    return [fact for r in rows if (fact := parse(bytes(r.data))["fact"])["date"] == day]


def test_a_missed_check_in_is_tentative_from_the_threshold_on(evaluator, writer, clock):
    punch(writer, "1001", local(2, 7, 58))
    clock.advance(hours=1, minutes=19, seconds=59)  # 08:19:59
    read_all(clock.now())
    evaluator.run_once()
    assert row("1002").status == "overdue", "past start + grace: 未打卡（进行中） on the board, not yet a miss"
    assert row("1001").status == "present" and row("1001").name == "张三"
    clock.advance(seconds=1)  # 08:20:00: start 08:00 + grace 5 + 15 minutes
    evaluator.run_once()
    missing = row("1002")
    assert (missing.status, missing.missing_tier, missing.tier) == ("missing", "tentative", "open")
    assert missing.name == "李四" and missing.reason_zh, "the board says why"
    assert day_facts() == [], "nothing tentative goes into the signed log"


def test_the_thread_flags_a_tentative_miss_within_a_minute_and_after_a_punch(evaluator, writer, clock):
    clock.advance(hours=1, minutes=19)  # 08:19
    read_all(clock.now())
    evaluator.start()
    try:
        wait_until(lambda: row("1002").status == "overdue", timeout=10, message="the first pass")
        clock.advance(seconds=60)  # 08:20: the next interval (15 s of the frozen monotonic clock) is due
        evaluator.wake()
        wait_until(lambda: row("1002").missing_tier == "tentative", timeout=10, message="the tentative miss")
        clock.advance(seconds=3)
        punch(writer, "1002", clock.now())  # the commit wakes the evaluator (on_commit), as in the daemon
        wait_until(lambda: row("1002").status == "late", timeout=10, message="the late punch on the board")
        assert row("1002").late_min == 15
    finally:
        evaluator.stop()


def test_an_offline_terminal_holds_confirmation_and_never_makes_an_absence(evaluator, writer, clock):
    punch(writer, "1001", local(2, 7, 58))
    punch(writer, "1001", local(2, 17, 2), state=1)
    clock.advance(hours=14, minutes=30)  # 21:30, past the confirmation moment 21:00
    read("gate-1", clock.now())
    read("gate-2", local(2, 16, 0))  # last read at 16:00, offline since
    evaluator.run_once()
    held = row("1002")
    assert (held.status, held.tier, held.missing_tier) == ("missing", "held", "tentative")
    assert held.held_by == "gate-2" and "gate-2" in held.reason_zh
    assert row("1001").tier == "held", "the whole shift waits, present workers too"
    assert day_facts() == []


def test_a_terminal_whose_clock_is_behind_holds_by_its_own_clock(evaluator, writer, clock):
    clock.advance(hours=14, minutes=5)  # 21:05
    read("gate-1", clock.now())
    read("gate-2", clock.now(), offset_ms=-10 * 60_000)  # its clock says 20:55: punches up to then are read
    evaluator.run_once()
    assert row("1002").tier == "held" and row("1002").held_by == "gate-2"


def test_a_confirmed_fact_is_appended_once_signed_and_chained(evaluator, writer, clock, key):
    punch(writer, "1001", local(2, 8, 22))
    punch(writer, "1001", local(2, 17, 1), state=1)
    clock.advance(hours=14, minutes=30)
    read_all(clock.now())
    report = evaluator.run_once()
    facts = {f["emp"]: f for f in day_facts()}
    assert len(facts) == 2 and len(report.facts) == 4, "Monday's two shifts, and Sunday's two rest days"
    assert (facts["1002"]["status"], facts["1002"]["tier"]) == ("missing", "confirmed")
    assert (facts["1001"]["status"], facts["1001"]["late_min"]) == ("late", 17)
    assert "迟到 17 分钟" in facts["1001"]["reason_zh"]
    assert row("1002").fact_seq in report.facts
    clock.advance(minutes=5)
    read_all(clock.now())
    assert evaluator.run_once().facts == () and len(day_facts()) == 2, "an unchanged decision appends nothing"
    assert len(day_facts("2026-03-01")) == 2
    rows = list(LogRecord.select().order_by(LogRecord.seq))
    batch = Batch(LOG, 0, tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in rows))
    verify_batch(batch, key=key.verify_key, prev=GENESIS_PREV)


def test_leave_approved_later_supersedes_the_confirmed_absence(evaluator, writer, clock):
    clock.advance(hours=14, minutes=30)
    read_all(clock.now())
    evaluator.run_once()
    (absent,) = [f for f in day_facts() if f["emp"] == "1002"]
    assert absent["status"] == "missing"
    clock.advance(days=3)  # Thursday: 2 March is neither today nor yesterday any more
    read_all(clock.now())
    assert "2026-03-02" not in evaluator.run_once().days
    sick = {
        "id": "L7",
        "employee": "1002",
        "kind": "病假",
        "start_ms": to_ms(local(2, 0)),
        "end_ms": to_ms(local(3, 0)),
        "status": "approved",
    }
    report = roster_import.store({"leave": [sick]}, PLANT_TZ, to_ms(clock.now()), source="test")
    assert "2026-03-02" in report.reevaluate
    result = evaluator.run_once()
    assert "2026-03-02" in result.days
    newer = [f for f in day_facts() if f["emp"] == "1002" and f["date"] == "2026-03-02"]
    assert [f["status"] for f in newer] == ["missing", "on_leave"]
    assert newer[1]["supersedes"] == fact_id(absent), "the new fact names the one it replaces"
    assert row("1002").status == "on_leave"
    assert "2026-03-02" not in evaluator.run_once().days, "the request is served once"
    assert len(day_facts()) == 3


def test_a_confirmed_absence_on_a_shift_the_roster_no_longer_has_is_withdrawn(evaluator, writer, clock):
    """A day's facts are keyed by shift: when a fix to the roster (or a provisional calendar's working day
    that became a holiday) takes the shift away, the day's new fact has another key, and the old
    absence stood for ever, still counted by head office. It is superseded by 未排班."""
    clock.advance(hours=14, minutes=30)
    read_all(clock.now())
    evaluator.run_once()
    (absent,) = [f for f in day_facts() if f["emp"] == "1002"]
    assert (absent["key"], absent["status"]) == ("1002/2026-03-02/D", "missing")
    clock.advance(hours=12)  # Tuesday morning: Monday is yesterday
    read_all(clock.now())
    rest = {"employee": "1002", "day": "2026-03-02", "shifts": "-"}  # HR: he was given Monday off after all
    roster_import.store({"schedule": [rest]}, PLANT_TZ, to_ms(clock.now()), source="test")
    assert "2026-03-02" in evaluator.run_once().days
    monday = {f["key"]: f for f in day_facts() if f["emp"] == "1002"}
    withdrawn = monday["1002/2026-03-02/D"]
    assert (withdrawn["status"], withdrawn["supersedes"]) == ("not_scheduled", fact_id(absent))
    assert withdrawn["reason_zh"] == "班次 D 已不在当日排班中：此前的结论撤回"
    facts = len(day_facts())
    evaluator.run_once()
    assert len(day_facts()) == facts, "withdrawn once"


def test_rest_days_are_confirmed_at_midnight_and_never_missing(evaluator, clock):
    clock.advance(days=5, hours=2)  # Saturday 09:00, a rest day in the weekly roster
    read_all(clock.now())
    evaluator.run_once()
    saturday = BoardRow.get((BoardRow.work_date == "2026-03-07") & (BoardRow.employee == "1002"))
    assert saturday.status == "rest_day" and saturday.missing_tier == ""


def test_actions_from_the_pages_are_signed_once_with_the_user(evaluator, writer, clock):
    request = actions.queue(
        employee="1002",
        work_date="2026-03-02",
        shift="D",
        kind="seen_on_line",
        reason="在二线看到他",
        user="boss",
        role="plant_manager",
        now_ms=to_ms(clock.now()),
        today=clock.now().astimezone(PLANT_TZ).date(),
    )
    (seq,) = actions.sign_pending(writer)
    assert actions.sign_pending(writer) == []
    record = parse(bytes(LogRecord.get_by_id(seq).data))
    assert (record["type"], record["act"], record["user"], record["reason"]) == (
        "action",
        "seen_on_line",
        "boss",
        "在二线看到他",
    )
    assert ActionRecord.get_by_id(seq).request == request.id
    with pytest.raises(ValueError, match="reason"):
        actions.queue(
            employee="1002",
            work_date="2026-03-02",
            shift="D",
            kind="sent_home",
            reason=" ",
            user="boss",
            role="admin",
            now_ms=0,
            today=clock.now().astimezone(PLANT_TZ).date(),
        )


def test_the_pass_is_recorded_for_the_pages(evaluator, clock):
    read_all(clock.now())
    evaluator.run_once()
    evaluator.run_once()
    state = EvaluatorState.get_by_id(1)
    assert state.passes == 2 and state.last_pass_ms == to_ms(clock.now()) and state.last_error == ""
    assert state.board_version == 1, "the second pass changed no row: nothing rewritten, no refresh asked"
    written = {(r.employee, r.shift): r.as_of_ms for r in BoardRow.select()}
    clock.advance(hours=1, minutes=30)  # 07:00 -> 08:30: the missing check-ins turn tentative
    read_all(clock.now())
    evaluator.run_once()
    assert EvaluatorState.get_by_id(1).board_version == 2
    rewritten = {(r.employee, r.shift) for r in BoardRow.select() if r.as_of_ms != written[(r.employee, r.shift)]}
    assert rewritten and rewritten != set(written), "only the rows that changed were written"


def test_the_evaluator_ignores_its_own_commits(evaluator, writer, clock):
    evaluator._thread = threading.current_thread()  # as if this were the evaluator's thread
    evaluator.wake(1)
    assert not evaluator._dirty
    evaluator._thread = None


def test_no_punch_for_an_unknown_badge_breaks_a_pass(evaluator, writer, clock):
    punch(writer, "9999", local(2, 7, 59))
    clock.advance(hours=2)
    read_all(clock.now())
    evaluator.run_once()
    assert not BoardRow.select().where(BoardRow.employee == "9999").exists()
    assert row("1001").status == "missing"


def test_day_boundary_uses_the_plant_zone(evaluator, clock):
    read_all(clock.now())
    report = evaluator.run_once()
    assert clock.now() == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 07:00 on 2 March in Shanghai
    assert report.days == ("2026-03-01", "2026-03-02")


def test_a_pass_over_the_new_punchers_changes_their_rows_only(evaluator, writer, clock):
    clock.advance(hours=1, minutes=25)  # 08:25: both missing, tentatively
    read_all(clock.now())
    evaluator.run_once()
    before = row("1002")
    assert row("1001").missing_tier == before.missing_tier == "tentative"
    version = EvaluatorState.get_by_id(1).board_version
    punch(writer, "1001", local(2, 8, 22))
    report = evaluator.run_new_punches()
    assert report.employees == 1 and report.evaluations == 2, "1001 only: yesterday (his rest day) and today"
    assert row("1001").status == "late" and row("1001").late_min == 17
    after = row("1002")
    assert (after.status, after.as_of_ms) == (before.status, before.as_of_ms), "1002 was not evaluated again"
    assert EvaluatorState.get_by_id(1).board_version == version + 1, "the pages refresh"
    assert evaluator.run_new_punches().employees == 0, "nothing new: nothing done"
    clock.advance(hours=13)  # 21:25: the day is over; only a full pass sees what time changed
    read_all(clock.now())
    assert evaluator.run_new_punches().employees == 0 and row("1002").tier == "open"
    evaluator.run_once()
    assert row("1002").tier == "confirmed" and len(day_facts()) == 2


def test_the_first_pass_is_a_full_one_and_too_many_new_punchers_make_a_full_one(evaluator, writer, clock, monkeypatch):
    from appliance.attendance import evaluator as module

    clock.advance(hours=1, minutes=25)
    read_all(clock.now())
    punch(writer, "1001", local(2, 8, 1))
    assert evaluator.run_new_punches().employees is None, "no master data read yet: a full pass"
    assert row("1002").missing_tier == "tentative"
    monkeypatch.setattr(module, "PARTIAL_MAX", 1)
    punch(writer, "1001", local(2, 8, 24))
    punch(writer, "1002", local(2, 8, 24))
    assert evaluator.run_new_punches().employees is None, "two new punchers, one allowed: a full pass"
    assert row("1002").status == "late"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    punches=st.lists(
        st.tuples(st.sampled_from(["1001", "1002"]), st.integers(6 * 60, 19 * 60), st.sampled_from([0, 1, 255])),
        min_size=1,
        max_size=8,
        unique=True,  # a terminal's record twice is one punch (the ingest's duplicate key)
    ),
    now_minutes=st.integers(7 * 60, 23 * 60),
)
def test_passes_over_new_punchers_leave_nothing_for_a_full_pass_to_change(tmp_path_factory, key, punches, now_minutes):
    """At a frozen moment, a full pass after the partial ones changes no row and appends no fact."""
    from appliance.store import open_db

    db = open_db(tmp_path_factory.mktemp("db") / "appliance.sqlite3")
    clock = FrozenClock(local(2, 5, 0))
    store_master(clock)
    w = LogWriter(db, key, LOG, clock, "boot-1")
    w.start()
    ev = Evaluator(w, PLANT_TZ, TERMINALS, clock)
    clock.advance(minutes=now_minutes - 5 * 60)
    read_all(clock.now())
    ev.run_once()  # what time alone changes, before the punches
    for user, minute, state in punches:
        punch(w, user, local(2, minute // 60, minute % 60), state=state)
        ev.run_new_punches()
    version = EvaluatorState.get_by_id(1).board_version
    facts_before = LogRecord.select().where(LogRecord.type == "dayfact").count()
    report = ev.run_once()
    assert EvaluatorState.get_by_id(1).board_version == version, "the full pass found rows to change"
    assert report.facts == () and LogRecord.select().where(LogRecord.type == "dayfact").count() == facts_before
    db.close()


def test_a_final_yesterday_is_left_alone_until_the_roster_changes(evaluator, clock):
    read_all(clock.now())
    assert evaluator.run_once().days == ("2026-03-01", "2026-03-02"), "the first pass: yesterday too"
    assert BoardRow.get(BoardRow.work_date == "2026-03-01").tier == "confirmed", "Sunday: rest days, final"
    assert evaluator.run_once().days == ("2026-03-02",), "yesterday is final: not evaluated again"
    roster_import.store(
        {"employees": [{"user_id": "1003", "name": "王五", "line": "一线", "roster": "wk", "active": True}]},
        PLANT_TZ,
        to_ms(clock.now()),
        source="test",
    )
    assert evaluator.run_once().days == ("2026-03-01", "2026-03-02"), "a roster change: yesterday again"
    assert evaluator.run_once().days == ("2026-03-02",)


def test_a_full_pass_falls_due_when_time_changes_a_result_and_not_before(evaluator, clock):
    clock.advance(hours=1, minutes=19)  # 08:19: both overdue (since 08:05); their check-in turns tentative at 08:20
    read_all(clock.now())
    evaluator.run_once()
    assert row("1002").status == "overdue" and evaluator.why_full() is None
    clock.advance(seconds=59)
    read_all(clock.now())  # terminals read, but no result is waiting on them
    assert evaluator.why_full() is None, "08:19:59: nothing can have changed"
    clock.advance(seconds=1)
    assert evaluator.why_full() == "time"
    evaluator.run_once()
    assert row("1002").missing_tier == "tentative" and evaluator.why_full() is None


def test_after_the_last_result_is_final_the_next_pass_is_at_midnight(evaluator, writer, clock):
    punch(writer, "1001", local(2, 7, 58))
    punch(writer, "1001", local(2, 17, 0), state=1)
    clock.advance(hours=15)  # 22:00: past 21:00, every terminal read
    read_all(clock.now())
    evaluator.run_once()
    assert {r.tier for r in BoardRow.select().where(BoardRow.work_date == "2026-03-02")} == {"confirmed"}
    clock.advance(minutes=4)
    assert evaluator.why_full() is None
    clock.jump_wall(hours=1, minutes=55, seconds=59)  # the wall clock alone, so that "idle" stays away
    assert clock.now() == local(2, 23, 59, 59) and evaluator.why_full() is None
    clock.jump_wall(seconds=1)
    assert evaluator.why_full() == "time", "midnight: a new day to evaluate"


def test_nothing_at_all_makes_a_full_pass_due_every_few_minutes(evaluator, clock):
    read_all(clock.now())
    evaluator.run_once()  # 07:00: nothing falls due before 08:20
    clock.advance(seconds=299)
    assert evaluator.why_full() is None
    clock.advance(seconds=1)
    assert evaluator.why_full() == "idle"


def test_master_data_written_by_anyone_makes_a_full_pass_due(evaluator, clock):
    read_all(clock.now())
    evaluator.run_once()
    assert evaluator.why_full() is None
    roster_import.store(
        {"employees": [{"user_id": "1003", "name": "王五", "line": "一线", "roster": "wk", "active": True}]},
        PLANT_TZ,
        to_ms(clock.now()),
        source="test",
    )
    assert evaluator.why_full() == "master data"
    evaluator.run_once()
    assert row("1003").name == "王五" and evaluator.why_full() is None
    ShiftDef.update(late_grace_min=10).where(ShiftDef.id == "D").execute()  # not through an importer
    assert evaluator.why_full() == "master data"
    evaluator.run_once()
    EvalRequest.insert(day="2026-03-01", requested_ms=to_ms(clock.now())).execute()
    assert evaluator.why_full() == "master data"
    assert "2026-03-01" in evaluator.run_once().days
    assert not EvalRequest.select().exists() and evaluator.why_full() is None, "serving a request changes nothing"


def test_every_master_table_has_its_triggers(db):
    names = {name for (name,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for model in MASTER_MODELS:
        table = model._meta.table_name
        assert {f"{table}_{a}_master" for a in ("insert", "update", "delete")} <= names, table
    assert {"eval_request_insert_master", "eval_request_update_master"} <= names
    assert "eval_request_delete_master" not in names


def test_a_terminal_read_again_after_holding_results_back_makes_a_full_pass_due(evaluator, writer, clock):
    clock.advance(hours=14, minutes=30)  # 21:30, past the confirmation moment 21:00
    read("gate-1", clock.now())
    read("gate-2", local(2, 16, 0))  # offline since 16:00
    evaluator.run_once()
    assert row("1002").tier == "held"
    read("gate-1", clock.now() + timedelta(seconds=5))  # a terminal that held nothing back
    clock.advance(seconds=30)
    assert evaluator.why_full() is None, "gate-2 is still offline: nothing to do"
    read("gate-2", clock.now())
    assert evaluator.why_full() == "watermark"
    evaluator.run_once()
    assert row("1002").tier == "confirmed" and evaluator.why_full() is None


def test_a_row_that_no_longer_applies_is_removed_and_the_others_are_not_rewritten(evaluator, clock):
    read_all(clock.now())
    evaluator.run_once()
    assert row("1002").status == "upcoming"
    kept = row("1001").as_of_ms
    Employee.update(active=False).where(Employee.user_id == "1002").execute()  # left the plant
    clock.advance(minutes=1)
    evaluator.run_once()
    assert [r.employee for r in BoardRow.select().where(BoardRow.work_date == "2026-03-02")] == ["1001"]
    assert row("1001").as_of_ms == kept, "an unchanged row is not written again"
