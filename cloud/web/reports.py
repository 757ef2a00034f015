"""The monthly attendance report of one plant, as an Excel workbook (openpyxl, written in streaming mode).

One row per badge, one column per day of the month with the confirmed day fact's status as a short
mark, then the totals. Only confirmed facts (signed by the appliance after its watermark passed) are
reported; a day with no fact yet is left blank, never guessed. A second sheet explains the marks and
names the source, the plant's zone and who produced the file. A day whose fact the appliance signed after its key
may have leaked (``cloud.appliances.trust``) is marked 疑 before its mark, is not evidence and is left out of the
totals; the second sheet says from when each such appliance's records are not evidence. Names and numbers come
from HR's sheets: every text cell is written as a string cell, shown as typed, never as a formula
(``opskit.cells``).
"""

from __future__ import annotations

import calendar
import io
import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, session

from cloud.appliances.trust import Trust
from cloud.escalation.models import AttendanceDay
from cloud.hr.models import Employee, PlantBadge
from cloud.store import Plant
from cloud.web import caseview
from cloud.web.present import in_zone, zone_name
from cloud.web.roles import check_plant, note, now_ms, own_plant, require
from opskit.cells import xlsx_row
from opskit.download import content_disposition
from opskit.urlints import PlainBadRequest

bp = Blueprint("reports", __name__)
MARKS = {  # status → (mark, zh, en)
    "present": ("√", "出勤", "present"),
    "late": ("迟", "迟到", "late"),
    "left_early": ("早", "早退", "left early"),
    "incomplete": ("卡", "缺卡", "punch missing"),
    "missing": ("旷", "缺勤", "absent"),
    "on_leave": ("假", "请假", "on leave"),
    "business_trip": ("差", "出差", "business trip"),
    "rest_day": ("休", "休息日", "rest day"),
    "holiday": ("节", "节假日", "public holiday"),
    "uncovered": ("未", "未覆盖：设备当时尚未记录，不计缺勤", "not covered: not yet recorded, never counted absent"),
}
UNTRUSTED = "疑"  # before a day's mark: the appliance signed that fact after its key may have leaked
TOTALS = ("present", "late", "left_early", "incomplete", "missing", "on_leave", "business_trip")


@bp.route("/reports")
@require("view")
def index() -> Any:
    today = in_zone(now_ms(), "Asia/Shanghai", "%Y-%m")
    return render_template("reports.html", plants=caseview.plants_for(own_plant()), month=today)


def _month(text: str) -> date:
    """``?month=YYYY-MM``; anything else is a 400 that says so (a 20-digit year was an OverflowError, a 500)."""
    found = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})", text)
    if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
        raise PlainBadRequest("请求中的 month 应为年月，如 2025-03 / month must be a year and month, e.g. 2025-03")
    return date(int(found[1]), int(found[2]), 1)


@bp.route("/reports/attendance.xlsx")
@require("view")
def attendance() -> Any:
    plant = Plant.get_or_none(Plant.id == request.args.get("plant", ""))
    if plant is None:
        abort(404)
    check_plant(plant.id)
    first = _month(request.args.get("month", ""))
    data = workbook(plant, first, by=str(session["user"]), now=now_ms())
    note("done", action="report.attendance", target=f"plant:{plant.id}", month=f"{first:%Y-%m}")
    name = f"attendance-{plant.id}-{first:%Y-%m}.xlsx"
    return Response(
        data,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": content_disposition(name)},
    )


def workbook(plant: Plant, first: date, *, by: str, now: int) -> bytes:
    from openpyxl import Workbook

    days = calendar.monthrange(first.year, first.month)[1]
    prefix = f"{first:%Y-%m}-"
    facts: dict[str, dict[int, str]] = {}
    doubtful: set[tuple[str, int]] = set()
    trust = Trust.load()
    for user_id, work_date, status, appliance, seq in (
        AttendanceDay.select(
            AttendanceDay.user_id,
            AttendanceDay.work_date,
            AttendanceDay.status,
            AttendanceDay.appliance,
            AttendanceDay.seq,
        )
        .where((AttendanceDay.plant == plant) & AttendanceDay.work_date.startswith(prefix))
        .order_by(AttendanceDay.work_date, AttendanceDay.start_ms)
        .tuples()
    ):
        day = facts.setdefault(user_id, {})
        n = int(work_date[8:10])
        day[n] = _worse(day.get(n), status)  # two shifts on one day: the worse one shows
        if not trust.trusted(appliance, seq):
            doubtful.add((user_id, n))
    people = {
        user_id: (no, name)
        for user_id, no, name in PlantBadge.select(PlantBadge.user_id, Employee.employee_no, Employee.name)
        .join(Employee)
        .where(PlantBadge.plant == plant)
        .tuples()
    }
    book = Workbook(write_only=True)
    sheet = book.create_sheet(f"{first:%Y-%m} 考勤")
    sheet.append(["考勤号", "工号", "姓名", *[str(n) for n in range(1, days + 1)], *[MARKS[k][1] for k in TOTALS]])
    for user_id in sorted(set(facts) | set(people)):
        no, name = people.get(user_id, ("", ""))
        marks = facts.get(user_id, {})
        counts = [sum(1 for n, s in marks.items() if s == k and (user_id, n) not in doubtful) for k in TOTALS]
        day_marks = [
            (UNTRUSTED if (user_id, n) in doubtful else "") + MARKS.get(marks.get(n, ""), ("",))[0]
            for n in range(1, days + 1)
        ]
        sheet.append(xlsx_row(sheet, [user_id, no, name, *day_marks, *counts]))
    legend = book.create_sheet("说明")
    legend.append(["标记", "含义", "meaning"])
    for mark, zh, en in MARKS.values():
        legend.append([mark, zh, en])
    legend.append(
        [
            f"{UNTRUSTED}（标记前）",
            "设备密钥可能泄露后的记录，不作为证据，不计入合计",
            "recorded after the appliance key may have leaked: not evidence, left out of the totals",
        ]
    )
    legend.append([])
    legend.append(xlsx_row(legend, ["工厂", plant.name or plant.id]))
    legend.append(xlsx_row(legend, ["时区", zone_name(plant.timezone)]))
    legend.append(["来源", "考勤设备签名确认的日考勤结论（已过同步水位）；空白 = 尚无确认结论"])
    for point in trust.points.values():
        if point.plant_id == plant.id:
            zh, en = point.words()
            legend.append(xlsx_row(legend, ["密钥可能泄露", zh, en]))
    legend.append(xlsx_row(legend, ["生成", f"{in_zone(now, plant.timezone)} · {by}"]))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


SEVERITY = (
    "missing",
    "incomplete",
    "late",
    "left_early",
    "on_leave",
    "business_trip",
    "present",
    "uncovered",
    "holiday",
    "rest_day",
)


def _worse(a: str | None, b: str) -> str:
    if a is None:
        return b
    rank = {s: i for i, s in enumerate(SEVERITY)}
    return a if rank.get(a, 99) <= rank.get(b, 99) else b
