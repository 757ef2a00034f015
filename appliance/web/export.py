"""CSV and XLSX of a day or a month of the board, as the evaluator last decided it.

CSV is UTF-8 with a BOM (Excel on a Chinese Windows otherwise reads it as GBK); XLSX is written
by openpyxl. Times are the plant's local times; the reason is in the page's language, and the
seq of the signed day fact (if confirmed) lets anyone find the record in the evidence.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, abort, g, request

from appliance.store import BoardRow
from appliance.web import present
from appliance.web.auth import login_required
from appliance.web.i18n import translate as t

bp = Blueprint("export", __name__)

COLUMNS = (
    "date",
    "employee",
    "name",
    "line",
    "shift",
    "status",
    "tier",
    "late_min",
    "early_min",
    "missed",
    "check_in",
    "check_out",
    "reason",
    "fact_seq",
)
HEADERS_ZH = (
    "日期",
    "工号",
    "姓名",
    "产线",
    "班次",
    "状态",
    "确认",
    "迟到分钟",
    "早退分钟",
    "缺卡次数",
    "上班打卡",
    "下班打卡",
    "原因",
    "日结论日志序号",
)


def _span(period: str, day: date) -> tuple[date, date]:
    if period == "day":
        return day, day
    if period != "month":
        abort(400)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def rows(first: date, last: date) -> list[list[Any]]:
    query = (
        BoardRow.select()
        .where((BoardRow.work_date >= first.isoformat()) & (BoardRow.work_date <= last.isoformat()))
        .order_by(BoardRow.work_date, BoardRow.employee, BoardRow.start_ms)
    )
    return [
        [
            r.work_date,
            r.employee,
            r.name,
            r.line,
            r.shift_name or r.shift,
            t("st_" + r.status),
            t(present.tier_key(r)),
            r.late_min,
            r.early_min,
            r.missed,
            present.local(r.in_ms, "%Y-%m-%d %H:%M:%S") if r.in_ms else "",
            present.local(r.out_ms, "%Y-%m-%d %H:%M:%S") if r.out_ms else "",
            present.reason(r),
            "" if r.fact_seq is None else r.fact_seq,
        ]
        for r in query
    ]


@bp.route("/export")
@login_required
def download() -> Any:
    period = request.args.get("period", "day")
    fmt = request.args.get("format", "csv")
    first, last = _span(period, present.parse_day(request.args.get("date")))
    header = list(HEADERS_ZH if g.get("lang", "zh") != "en" else COLUMNS)
    data = rows(first, last)
    stem = f"attendance-{first.isoformat()}" + (f"-to-{last.isoformat()}" if last != first else "")
    if fmt not in ("csv", "xlsx"):
        abort(400)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(data)
        body = ("\ufeff" + buffer.getvalue()).encode("utf-8")
        return _file(body, f"{stem}.csv", "text/csv; charset=utf-8")
    return _file(_xlsx(header, data), f"{stem}.xlsx", XLSX)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _xlsx(header: list[str], data: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("考勤")
    sheet.append(header)
    for row in data:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _file(body: bytes, name: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
