"""CSV and XLSX of a day or a month of the board, as the evaluator last decided it.

CSV is UTF-8 with a BOM (Excel on a Chinese Windows otherwise reads it as GBK); XLSX is written
by openpyxl, with a second sheet of the raw punches (打卡记录) beside the day conclusions, its dates
and times as Excel dates and times. Times are the plant's local times; the reason is in the page's language, and the
seq of the signed day fact (if confirmed) lets anyone find the record in the evidence.

Names, lines and shifts come from HR's sheets, so a spreadsheet must never run them
(``opskit.cells``): in the XLSX a text cell is always a string cell, shown as typed; in the CSV a
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a CR gets a single quote in front (the
OWASP rule: ``=HYPERLINK(...)`` is written ``'=HYPERLINK(...)``), which a program reading the CSV
must drop.

A month of a 5,000-worker plant is 155,000 rows: as Python lists, hundreds of MB, on a Pi whose
processes must stay under 200 MB together. So rows come one at a time from the database's cursor:
the CSV is sent while it is read, the XLSX is written to a temporary file (``export_xlsx``).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import peewee as pw
from flask import Blueprint, Response, abort, g, render_template, request, stream_with_context
from werkzeug.wsgi import wrap_file

from appliance.capture import storage
from appliance.store import BoardRow, Employee, Punch
from appliance.web import export_xlsx, present
from appliance.web.auth import login_required
from appliance.web.i18n import translate as t
from opskit.cells import csv_row

bp = Blueprint("export", __name__)
log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # characters of CSV per piece sent: one write to the socket, not one per row
# the day conclusions: (Chinese header, English header, width in Excel's characters)
DAY_COLUMNS = (
    ("日期", "Date", 12),
    ("工号", "Badge", 10),
    ("姓名", "Name", 12),
    ("产线", "Line", 10),
    ("班次", "Shift", 12),
    ("状态", "Status", 16),
    ("确认", "Final?", 14),
    ("迟到分钟", "Minutes late", 10),
    ("早退分钟", "Minutes early", 10),
    ("缺卡次数", "Punches missing", 10),
    ("上班打卡", "Check-in", 20),
    ("下班打卡", "Check-out", 20),
    ("原因", "Reason", 60),
    ("日结论日志序号", "Day fact record", 14),
)
# the raw punches the conclusions were drawn from, one row a punch, as the terminals recorded them
PUNCH_COLUMNS = (
    ("打卡时间", "Punched at", 20),
    ("工号", "Badge", 10),
    ("姓名", "Name", 12),
    ("上/下班", "In/out", 8),
    ("考勤机", "Terminal", 12),
    ("考勤机时间", "Terminal's time", 20),
    ("日志序号", "Log record", 10),
)
SHEETS = {"day": ("考勤", "Attendance"), "punches": ("打卡记录", "Punches")}
READ = (  # what a row of the export is made of: not the whole row (start, end, punches, watch...)
    BoardRow.work_date,
    BoardRow.employee,
    BoardRow.name,
    BoardRow.line,
    BoardRow.shift_name,
    BoardRow.shift,
    BoardRow.status,
    BoardRow.tier,
    BoardRow.missing_tier,
    BoardRow.late_min,
    BoardRow.early_min,
    BoardRow.missed,
    BoardRow.in_ms,
    BoardRow.out_ms,
    BoardRow.reason_zh,
    BoardRow.reason_en,
    BoardRow.fact_seq,
)


def _span(period: str, day: date) -> tuple[date, date]:
    if period == "day":
        return day, day
    if period != "month":
        abort(400)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def _local(ms: int | None) -> datetime | None:
    """A stored UTC instant as the plant's local time, naive: what a spreadsheet's date-time cell holds."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, present.tz()).replace(tzinfo=None, microsecond=0)


def rows(first: date, last: date) -> Iterator[list[Any]]:
    """The span's day conclusions as the export shows them, one at a time from the cursor (needs the
    request's context: the page's language and the plant's time zone). Dates are ``date``, times naive
    local ``datetime``; the CSV writes them as text (``csv_text``)."""
    query = (
        BoardRow.select(*READ)
        .where((BoardRow.work_date >= first.isoformat()) & (BoardRow.work_date <= last.isoformat()))
        .order_by(BoardRow.work_date, BoardRow.employee, BoardRow.start_ms)
        .namedtuples()
    )
    for r in query.iterator():
        yield [
            date.fromisoformat(r.work_date),
            r.employee,
            r.name,
            r.line,
            r.shift_name or r.shift,
            t("st_" + r.status),
            t(present.tier_key(r)),
            r.late_min,
            r.early_min,
            r.missed,
            _local(r.in_ms),
            _local(r.out_ms),
            present.reason(r),
            r.fact_seq,
        ]


def _span_ms(first: date, last: date) -> tuple[int, int]:
    """From the plant's midnight starting ``first`` to the one ending ``last``, in UTC ms."""
    zone = present.tz()
    start = datetime.combine(first, time(), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def punch_rows(first: date, last: date) -> Iterator[list[Any]]:
    """Every punch of the span, in time order, with the worker's name, one at a time from the cursor."""
    start, end = _span_ms(first, last)
    query = (
        Punch.select(
            Punch.at_utc_ms, Punch.user_id, Employee.name, Punch.state, Punch.terminal, Punch.device_time, Punch.seq
        )
        .join(Employee, pw.JOIN.LEFT_OUTER, on=(Punch.user_id == Employee.user_id))
        .where((Punch.at_utc_ms >= start) & (Punch.at_utc_ms < end))
        .order_by(Punch.at_utc_ms, Punch.seq)
        .tuples()
    )
    for at_ms, user, name, state, terminal, device_time, seq in query.iterator():
        try:
            device = datetime.fromisoformat(device_time)
        except ValueError:
            device = device_time  # as the terminal said it
        direction = t(f"state_{state}") if state in (0, 1) else t("state_other")
        yield [_local(at_ms), user, name or t("unregistered"), direction, terminal, device, seq]


def csv_text(record: list[Any]) -> list[Any]:
    """A record as the CSV writes it: dates ISO, times ``2026-03-02 08:22:00``, nothing for None."""
    out: list[Any] = []
    for value in record:
        if value is None:
            out.append("")
        elif isinstance(value, datetime):
            out.append(value.strftime("%Y-%m-%d %H:%M:%S"))
        elif isinstance(value, date):
            out.append(value.isoformat())
        else:
            out.append(value)
    return out


def csv_pieces(header: list[str], records: Iterator[list[Any]]) -> Iterator[bytes]:
    """The CSV as UTF-8 pieces of about ``CHUNK`` characters, BOM first; no cell a spreadsheet would run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(csv_row(header))
    for record in records:
        writer.writerow(csv_row(csv_text(record)))
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _own_connection(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``pieces``, read on a connection this generator opens and closes itself.

    The response is read after the request is torn down (``opskit.webapp.per_request`` has closed
    the request's connection by then); a query would quietly reopen it (peewee's autoconnect), and
    only Flask 3.1's habit of running the teardown again when a ``stream_with_context`` generator
    ends would close it. This relies on neither: the connection is closed when the last piece is
    sent or when the server closes the response early (the client went away), in a ``finally``. A
    connection already open in this thread (not the request's: a test's) is left as it is.
    """
    db = BoardRow._meta.database
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        yield from pieces
    finally:
        if opened and not db.is_closed():
            db.close()


@bp.route("/export")
@login_required
def download() -> Any:
    period = request.args.get("period", "day")
    fmt = request.args.get("format", "csv")
    first, last = _span(period, present.parse_day(request.args.get("date")))
    english = g.get("lang", "zh") == "en"
    header = [en if english else zh for zh, en, _width in DAY_COLUMNS]
    stem = f"attendance-{first.isoformat()}" + (f"-to-{last.isoformat()}" if last != first else "")
    if fmt not in ("csv", "xlsx"):
        abort(400)
    if fmt == "csv":
        # stream_with_context: the rows' labels, times and reasons need the request's g and app
        body = stream_with_context(_own_connection(csv_pieces(header, rows(first, last))))
        return _attachment(Response(body, content_type="text/csv; charset=utf-8"), f"{stem}.csv")
    short = _short_of_space(first, last)
    if short:
        log.error("export %s: not enough free space for the temporary XLSX: %s", stem, short)
        return render_template("export_failed.html", detail=short), 503
    try:
        out = export_xlsx.workbook(_sheets(first, last, english))
    except OSError as err:
        log.error("export %s: cannot write the temporary XLSX: %s", stem, err)
        return render_template("export_failed.html", detail=err.strerror or str(err)), 503
    response = Response(wrap_file(request.environ, out), mimetype=export_xlsx.MIMETYPE, direct_passthrough=True)
    response.content_length = os.fstat(out.fileno()).st_size
    return _attachment(response, f"{stem}.xlsx")


def _sheets(first: date, last: date, english: bool) -> list[export_xlsx.Sheet]:
    """The day conclusions, and beside them the punches they were drawn from."""

    def columns(spec: tuple[tuple[str, str, int], ...]) -> list[export_xlsx.Column]:
        return [export_xlsx.Column(en if english else zh, width) for zh, en, width in spec]

    pick = 1 if english else 0
    return [
        export_xlsx.Sheet(SHEETS["day"][pick], columns(DAY_COLUMNS), rows(first, last)),
        export_xlsx.Sheet(SHEETS["punches"][pick], columns(PUNCH_COLUMNS), punch_rows(first, last)),
    ]


def _short_of_space(first: date, last: date) -> str | None:
    """Why the span's XLSX must not be written now, or None.

    Its temporary files take about ``export_xlsx.TEMP_BYTES_PER_ROW`` a row on the disk the daemon
    stores punches on: an export that would leave less than ``storage.LOW_MB`` free is refused before
    it starts, rather than filling the disk under the daemon's commits while it runs.
    """
    start, end = _span_ms(first, last)
    count = (
        BoardRow.select()
        .where((BoardRow.work_date >= first.isoformat()) & (BoardRow.work_date <= last.isoformat()))
        .count()
    ) + Punch.select().where((Punch.at_utc_ms >= start) & (Punch.at_utc_ms < end)).count()
    needed = count * export_xlsx.TEMP_BYTES_PER_ROW // 2**20 + storage.LOW_MB
    try:
        free = storage.free_mb(Path(tempfile.gettempdir()))
    except OSError:
        return None  # the write itself will say what is wrong
    if free >= needed:
        return None
    return f"{count} rows need about {needed} MB free, {free} MB left / {count} 行约需 {needed} MB 空间，仅剩 {free} MB"


def _attachment(response: Response, name: str) -> Response:
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
