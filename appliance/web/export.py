"""CSV and XLSX of a day or a month of the board, as the evaluator last decided it.

CSV is UTF-8 with a BOM (Excel on a Chinese Windows otherwise reads it as GBK); XLSX is written
by openpyxl. Times are the plant's local times; the reason is in the page's language, and the
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
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, g, render_template, request, stream_with_context
from werkzeug.wsgi import wrap_file

from appliance.capture import storage
from appliance.store import BoardRow
from appliance.web import export_xlsx, present
from appliance.web.auth import login_required
from appliance.web.i18n import translate as t
from opskit.cells import csv_row

bp = Blueprint("export", __name__)
log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # characters of CSV per piece sent: one write to the socket, not one per row
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


def rows(first: date, last: date) -> Iterator[list[Any]]:
    """The span's rows as the export shows them, one at a time from the cursor (needs the request's
    context: the page's language and the plant's time zone)."""
    query = (
        BoardRow.select(*READ)
        .where((BoardRow.work_date >= first.isoformat()) & (BoardRow.work_date <= last.isoformat()))
        .order_by(BoardRow.work_date, BoardRow.employee, BoardRow.start_ms)
        .namedtuples()
    )
    for r in query.iterator():
        yield [
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


def csv_pieces(header: list[str], records: Iterator[list[Any]]) -> Iterator[bytes]:
    """The CSV as UTF-8 pieces of about ``CHUNK`` characters, BOM first; no cell a spreadsheet would run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(csv_row(header))
    for record in records:
        writer.writerow(csv_row(record))
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
    header = list(HEADERS_ZH if g.get("lang", "zh") != "en" else COLUMNS)
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
        out = export_xlsx.workbook(header, rows(first, last))
    except OSError as err:
        log.error("export %s: cannot write the temporary XLSX: %s", stem, err)
        return render_template("export_failed.html", detail=err.strerror or str(err)), 503
    response = Response(wrap_file(request.environ, out), mimetype=export_xlsx.MIMETYPE, direct_passthrough=True)
    response.content_length = os.fstat(out.fileno()).st_size
    return _attachment(response, f"{stem}.xlsx")


def _short_of_space(first: date, last: date) -> str | None:
    """Why the span's XLSX must not be written now, or None.

    Its temporary files take about ``export_xlsx.TEMP_BYTES_PER_ROW`` a row on the disk the daemon
    stores punches on: an export that would leave less than ``storage.LOW_MB`` free is refused before
    it starts, rather than filling the disk under the daemon's commits while it runs.
    """
    count = (
        BoardRow.select()
        .where((BoardRow.work_date >= first.isoformat()) & (BoardRow.work_date <= last.isoformat()))
        .count()
    )
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
