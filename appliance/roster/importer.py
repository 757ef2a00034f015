"""``punchproof appliance import-roster FILE.csv|FILE.xlsx``: master data from the HR office's sheets.

An XLSX workbook may hold several sheets, each named for what it holds (Chinese or English
sheet name); a CSV file holds one kind, given by ``--kind`` or recognised by its headers. Headers
may be Chinese or English. CSV files may be UTF-8 (with or without BOM) or GB18030 (what Excel
writes on a Chinese Windows). Times without a zone are the plant's local time.

==============  ==================================================================================
kind (sheet)    columns (Chinese / English; * = required)
==============  ==================================================================================
shifts 班次      *班次/id, 名称/name, *时段/spans ("08:00-12:00,13:00-17:00"; "20:00-08:00" ends
                next day), 迟到宽限/late_grace_min (5), 早退宽限/early_grace_min (0),
                提前打卡/checkin_before_min (120), 延后打卡/checkout_after_min (240),
                考勤机/terminals (names, comma-separated; empty = all)
rosters 排班规则  *编号/id, 类型/kind (固定|weekly, 轮班|rotating), *模式/pattern (weekly: 7 days
                Monday first "D,D,D,D,D,-,-"; rotating: the cycle "D,D,N,N,-,-"; "A+B" = two
                shifts that day), 起始日期/anchor (rotating: day 0), 节假日/holidays
                (休息|observe, 照常|ignore), 调休按/makeup_weekday (0 = Monday)
employees 员工   *工号/user_id (the badge number on the terminals), 姓名/name, 产线/line,
                部门/department, 排班/roster, 生效日期/valid_from, 失效日期/valid_to,
                在职/active (是/否)
schedule 排班表  *工号/employee, *日期/day, 班次/shifts (empty or "-" = rest; overrides the roster)
leave 请假       *单号/id, *工号/employee, 假别/kind, *开始/start, *结束/end, 状态/status
                (已批准|approved, 已撤销|cancelled); a date alone as the end means the whole day
trips 出差       *单号/id, *工号/employee, 目的地/destination, *开始/start, *结束/end, 状态/status
corrections 补卡 *单号/id, *工号/employee, *时间/at, 方向/direction (上班|in, 下班|out),
                *原因/reason, 审批人/by, 状态/status
==============  ==================================================================================

Every row is checked before anything is written; a file with a bad row is refused whole, with
every problem listed by sheet and row. A row only changes the worker it names: a worker the file does not
name stays as they are (a partial sheet makes nobody leave), while 在职 = 否 or a past 失效日期 makes them
leave the roster, and the terminals. ``check``, run in the transaction after the rows are written, may
refuse the whole file (``import-roster`` refuses one that removes more workers at once than the brake's
limit, docs/enrolment.md): then nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw

from appliance.roster import store as roster_store
from appliance.rules import RulesError
from appliance.store import (
    CorrectionEntry,
    Employee,
    LeaveEntry,
    RosterDef,
    ScheduleDay,
    ShiftDef,
    TripEntry,
)
from opskit.sheets import Layout, Refusal, Row, Sheet, Unreadable
from opskit.sheets import read as read_sheets

KINDS: dict[str, tuple[str, ...]] = {  # kind -> sheet names that mean it
    "shifts": ("shifts", "班次"),
    "rosters": ("rosters", "排班规则", "轮班"),
    "employees": ("employees", "员工", "人员", "花名册"),
    "schedule": ("schedule", "排班表", "排班"),
    "leave": ("leave", "请假", "假期"),
    "trips": ("trips", "出差"),
    "corrections": ("corrections", "补卡"),
}
ORDER = ("shifts", "rosters", "employees", "schedule", "leave", "trips", "corrections")

HEADERS: dict[str, dict[str, str]] = {
    "shifts": {
        "班次": "id",
        "班次编号": "id",
        "名称": "name",
        "班次名称": "name",
        "时段": "spans",
        "上班时段": "spans",
        "迟到宽限": "late_grace_min",
        "早退宽限": "early_grace_min",
        "提前打卡": "checkin_before_min",
        "延后打卡": "checkout_after_min",
        "考勤机": "terminals",
    },
    "rosters": {
        "编号": "id",
        "排班规则": "id",
        "类型": "kind",
        "模式": "pattern",
        "起始日期": "anchor",
        "节假日": "holidays",
        "调休按": "makeup_weekday",
    },
    "employees": {
        "工号": "user_id",
        "考勤号": "user_id",
        "姓名": "name",
        "产线": "line",
        "班组": "line",
        "部门": "department",
        "排班": "roster",
        "排班规则": "roster",
        "生效日期": "valid_from",
        "入职日期": "valid_from",
        "失效日期": "valid_to",
        "离职日期": "valid_to",
        "在职": "active",
    },
    "schedule": {"工号": "employee", "日期": "day", "班次": "shifts"},
    "leave": {
        "单号": "id",
        "工号": "employee",
        "假别": "kind",
        "请假类型": "kind",
        "开始": "start",
        "开始时间": "start",
        "结束": "end",
        "结束时间": "end",
        "状态": "status",
    },
    "trips": {
        "单号": "id",
        "工号": "employee",
        "目的地": "destination",
        "开始": "start",
        "开始时间": "start",
        "结束": "end",
        "结束时间": "end",
        "状态": "status",
    },
    "corrections": {
        "单号": "id",
        "工号": "employee",
        "时间": "at",
        "补卡时间": "at",
        "方向": "direction",
        "原因": "reason",
        "审批人": "by",
        "状态": "status",
    },
}
REQUIRED = {
    "shifts": ("id", "spans"),
    "rosters": ("id", "pattern"),
    "employees": ("user_id",),
    "schedule": ("employee", "day"),
    "leave": ("id", "employee", "start", "end"),
    "trips": ("id", "employee", "start", "end"),
    "corrections": ("id", "employee", "at", "reason"),
}
WORDS = {  # Chinese values -> stored values
    "固定": "weekly",
    "轮班": "rotating",
    "休息": "observe",
    "放假": "observe",
    "照常": "ignore",
    "上班": "in",
    "下班": "out",
    "已批准": "approved",
    "批准": "approved",
    "已撤销": "cancelled",
    "撤销": "cancelled",
}
LAYOUT = Layout(KINDS, HEADERS)
YES = {"是", "在职", "yes", "y", "true", "1"}
NO = {"否", "离职", "no", "n", "false", "0"}


class ImportError_(ValueError):  # noqa: N801 - ``ImportError`` is a builtin
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class ImportReport:
    counts: Mapping[str, int]
    reevaluate: tuple[str, ...]  # past dates the evaluator will look at again


def read_file(path: Path, kind: str = "auto") -> list[Sheet]:
    """The sheets of a .csv or .xlsx file, headers mapped to field names; nothing written."""
    try:
        found = read_sheets(path, LAYOUT, kind)
    except Unreadable as err:
        raise ImportError_(str(path), [_unreadable(err)]) from err
    if found[0].kind not in KINDS:  # only a CSV's --kind can name what no sheet holds
        raise ImportError_(str(path), [f"--kind {kind!r}: one of {', '.join(KINDS)}"])
    return found


def _unreadable(err: Unreadable) -> str:
    if err.reason == "suffix":
        return "use a .csv or .xlsx file"
    if err.reason == "empty":
        return "the file is empty"
    if err.reason == "workbook":
        return f"not a readable .xlsx workbook: {err.detail}"
    if err.reason == "too many rows":
        return f"more than {err.detail} rows (empty ones included), not read: delete unneeded rows or split the file"
    names = " / ".join(f"{n[1]} ({k})" for k, n in KINDS.items())
    return f"no sheet named for what it holds; name sheets {names}; found {err.found}"


# -- checking and converting -----------------------------------------------------------------


class _Row(Row[str]):
    words = WORDS

    def bad(self, column: str, why: str) -> None:
        self.problems.append(f"{self.sheet.name} row {self.number}, {column}: {why}")

    def refuse(self, name: str, why: Refusal) -> None:
        if why.what == "number":
            self.bad(name, f"{why.text!r} is not a number")
        elif why.what == "date":
            self.bad(name, f"{why.text!r} is not a date YYYY-MM-DD")
        elif why.what == "instant":
            self.bad(name, f"{why.text!r} is not a date or a date and time (YYYY-MM-DD HH:MM)")
        else:
            self.bad(name, f"{why.text!r}: one of {', '.join(why.allowed)}")


def _shift(r: _Row) -> dict[str, Any]:
    row = {
        "id": r.text("id"),
        "name": r.text("name"),
        "spans": r.text("spans"),
        "late_grace_min": r.integer("late_grace_min", 5),
        "early_grace_min": r.integer("early_grace_min", 0),
        "checkin_before_min": r.integer("checkin_before_min", 120),
        "checkout_after_min": r.integer("checkout_after_min", 240),
        "terminals": r.text("terminals").replace("，", ","),
    }
    try:
        roster_store.shift_of(ShiftDef(**row))
    except (RulesError, ValueError) as err:
        r.bad("spans", str(err))
    return row


def _roster(r: _Row) -> dict[str, Any]:
    kind = r.choice("kind", ("weekly", "rotating"), "weekly")
    row = {
        "id": r.text("id"),
        "kind": kind,
        "pattern": r.text("pattern").replace("，", ","),
        "anchor": r.day("anchor"),
        # a weekly roster is a 标准工时 week that rests on public holidays; a rotation runs through them
        "holidays": r.choice("holidays", ("observe", "ignore"), "observe" if kind == "weekly" else "ignore"),
        "makeup_weekday": r.integer("makeup_weekday", 0),
    }
    days = roster_store.parse_pattern(row["pattern"])
    if row["kind"] == "weekly" and len(days) != 7:
        r.bad("pattern", f"a weekly pattern has 7 days, Monday first; got {len(days)}")
    if row["kind"] == "rotating" and not row["anchor"]:
        r.bad("anchor", "a rotating roster needs the date of day 0 of its cycle")
    return row


def _employee(r: _Row) -> dict[str, Any]:
    active = r.text("active", "是").lower()
    if active not in YES | NO:
        r.bad("active", f"{active!r}: 是 or 否")
    return {
        "user_id": r.text("user_id"),
        "name": r.text("name"),
        "line": r.text("line"),
        "department": r.text("department"),
        "roster": r.text("roster"),
        "valid_from": r.day("valid_from"),
        "valid_to": r.day("valid_to"),
        "active": active not in NO,
    }


def _schedule(r: _Row) -> dict[str, Any]:
    return {"employee": r.text("employee"), "day": r.day("day"), "shifts": r.text("shifts")}


def _span(r: _Row) -> tuple[int, int]:
    start, end = r.instant("start"), r.instant("end", end=True)
    if start and end and end <= start:
        r.bad("end", "ends before it starts")
    return start, end


def _leave(r: _Row) -> dict[str, Any]:
    start, end = _span(r)
    status = r.choice("status", ("approved", "cancelled"), "approved")
    return {
        "id": r.text("id"),
        "employee": r.text("employee"),
        "kind": r.text("kind", "请假"),
        "start_ms": start,
        "end_ms": end,
        "status": status,
    }


def _trip(r: _Row) -> dict[str, Any]:
    start, end = _span(r)
    status = r.choice("status", ("approved", "cancelled"), "approved")
    return {
        "id": r.text("id"),
        "employee": r.text("employee"),
        "destination": r.text("destination"),
        "start_ms": start,
        "end_ms": end,
        "status": status,
    }


def _correction(r: _Row, now_ms: int) -> dict[str, Any]:
    return {
        "id": r.text("id"),
        "employee": r.text("employee"),
        "at_ms": r.instant("at"),
        "direction": r.choice("direction", ("in", "out", "unknown"), "unknown"),
        "reason": r.text("reason"),
        "by": r.text("by"),
        "recorded_ms": now_ms,
        "status": r.choice("status", ("approved", "cancelled"), "approved"),
    }


MODELS: dict[str, type[pw.Model]] = {
    "shifts": ShiftDef,
    "rosters": RosterDef,
    "employees": Employee,
    "schedule": ScheduleDay,
    "leave": LeaveEntry,
    "trips": TripEntry,
    "corrections": CorrectionEntry,
}


def check(sheets: list[Sheet], tz: ZoneInfo, now_ms: int, source: str) -> dict[str, list[dict[str, Any]]]:
    """Every row converted, or ``ImportError_`` listing every problem of the file."""
    problems: list[str] = []
    converters: dict[str, Callable[[_Row], dict[str, Any]]] = {
        "shifts": _shift,
        "rosters": _roster,
        "employees": _employee,
        "schedule": _schedule,
        "leave": _leave,
        "trips": _trip,
        "corrections": lambda r: _correction(r, now_ms),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for sheet in sheets:
        for number, values in sheet.rows:
            row = _Row(sheet, number, values, tz, problems)
            for column in REQUIRED[sheet.kind]:
                if not row.text(column):
                    row.bad(column, "required")
            out.setdefault(sheet.kind, []).append(converters[sheet.kind](row))
        if sheet.rows and not any(h in sheet.rows[0][1] for h in REQUIRED[sheet.kind]):
            problems.append(f"{sheet.name}: none of the headers is known; see 'import-roster --help' for the columns")
    if problems:
        raise ImportError_(source, problems)
    return out


def import_file(
    path: Path, tz: ZoneInfo, now_ms: int, *, kind: str = "auto", then: Callable[[], None] | None = None
) -> ImportReport:
    """Read, check and store a file's master data in one transaction; ``then`` runs in it once the rows are
    written, and an error it raises undoes them all."""
    sheets = read_file(path, kind)
    rows = check(sheets, tz, now_ms, str(path))
    return store(rows, tz, now_ms, source=f"import:{path.name}", then=then)


def store(
    rows: Mapping[str, list[dict[str, Any]]],
    tz: ZoneInfo,
    now_ms: int,
    *,
    source: str,
    then: Callable[[], None] | None = None,
) -> ImportReport:
    counts: dict[str, int] = {}
    spans: list[tuple[int, int]] = []
    with Employee._meta.database.atomic():
        for kind in ORDER:
            if kind in rows:
                counts[kind] = roster_store.save(MODELS[kind], rows[kind], source=source, now_ms=now_ms)
        spans += [(r["start_ms"], r["end_ms"]) for kind in ("leave", "trips") for r in rows.get(kind, [])]
        spans += [(r["at_ms"], r["at_ms"]) for r in rows.get("corrections", [])]
        for r in rows.get("schedule", []):
            local = datetime.fromisoformat(r["day"]).replace(tzinfo=tz)
            spans.append((int(local.timestamp() * 1000), int(local.timestamp() * 1000)))
        days = roster_store.request_reevaluation(spans, tz, now_ms)
        if then is not None:
            then()
    return ImportReport(counts, tuple(days))
