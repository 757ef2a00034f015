"""The evidence export from the dashboard: a button that runs the CLI's export and hands over the ZIP.

The export can take minutes for a plant-year, so it runs in its own process (``cloud.workers.export_job``)
and the page follows its progress messages; the ZIP is downloaded when it is whole. Jobs live under
``<state_dir>/exports/<id>/``; only the user who started one, an HR admin or an auditor may fetch it.
The ZIP's name holds the employee as typed (Chinese, or anything): its header is built by
``opskit.download.content_disposition``, never from the raw text.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from cloud.evidence.export import ExportError, case_scope
from cloud.store import Plant
from cloud.web import caseview
from cloud.web.roles import check_plant, note, now_ms, own_plant, require, role
from cloud.workers import export_job
from opskit.download import content_disposition
from opskit.urlints import MAX_ID, whole_number

bp = Blueprint("exports", __name__)
JOB_ID = re.compile(r"^[a-f0-9]{16}$")
# The export's progress lines (cloud.evidence.export says them in English, for the log and the CLI) as the
# Chinese page shows them; a line no rule knows is shown as it came.
PROGRESS_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), zh)
    for pattern, zh in (
        (r"bringing the cloud's evidence log up to date", "更新云端证据日志"),
        (r"sealing the cloud's witness log", "封存公司服务器的会签日志"),
        (r"one timestamp authority did not stamp this export: (.*)", "有一家时间戳机构未为本次导出盖章：{0}"),
        (r"the timestamp authority did not stamp this export: (.*)", "时间戳机构未为本次导出盖章：{0}"),
        (r"(.*): reading the log", "{0}：读取设备日志"),
        (
            r"the cloud's evidence log: contacts, receipts, people's actions",
            "读取云端证据日志：联系记录、回执、人工操作",
        ),
        (r"proving the checkpoints in the cloud's witness log", "证明公司服务器会签日志中的检查点"),
        (r"verifying what will be exported", "核验将导出的内容"),
        (r"writing the report", "生成报告"),
        (r"(.*): the bundle has no contacts to show", "{0}：证据包中没有联系记录"),
    )
)
_ELAPSED = re.compile(r"^(\s*[0-9.]+s )(.*)$")


def progress_shown(lines: list[str], lang: str) -> list[str]:
    """The export's progress lines in the page's language."""
    if lang == "en":
        return lines
    shown = []
    for line in lines:
        timed = _ELAPSED.match(line)
        elapsed, text = timed.groups() if timed else ("", line)
        for pattern, zh in PROGRESS_ZH:
            found = pattern.fullmatch(text)
            if found:
                text = zh.format(*found.groups())
                break
        shown.append(elapsed + text)
    return shown


_children: dict[str, subprocess.Popen[bytes]] = {}  # reaped when their page is next asked for


def _root() -> Path:
    return Path(current_app.config["SETTINGS"].state_dir) / "exports"


@bp.route("/evidence")
@require("evidence.export")
def index() -> Any:
    plants = caseview.plants_for(own_plant())
    return render_template("export.html", plants=plants, today=_today(plants).isoformat())


def _today(plants: list[Plant]) -> date:
    """Today where the plants are (the first listed plant's zone), by the app's clock: at 01:30 in Dongguan a server
    on UTC is still on the day before, and the period's default end must be the plant's today."""
    now = datetime.fromtimestamp(now_ms() / 1000, UTC)
    return now.astimezone(ZoneInfo(plants[0].timezone)).date() if plants else now.date()


@bp.route("/evidence/export", methods=["POST"])
@require("evidence.export")
def start() -> Any:
    """Both pages' export: the 证据导出 page's (employee, plant, period) and the case page's 导出本案证据包, which
    adds ``case``: the worker and plant are then the case's, and the bundle is the case's
    (``cloud.evidence.export.case_scope``)."""
    form = request.form
    employee, plant_id = form.get("employee", "").strip()[:64], form.get("plant", "").strip()
    case_id = form.get("case", "").strip()
    case_no = whole_number(case_id, "case", lo=1, hi=MAX_ID) if case_id else None
    if case_no is not None:
        try:
            case = case_scope(case_no)
        except ExportError:
            abort(404)
        employee, plant_id = case.employee, case.plant
    try:
        first, last = date.fromisoformat(form.get("first", "")), date.fromisoformat(form.get("last", ""))
    except ValueError:
        abort(400)
    if not employee or Plant.get_or_none(Plant.id == plant_id) is None or last < first:
        abort(400)
    check_plant(plant_id)
    job_id = secrets.token_hex(8)
    folder = _root() / job_id
    export_job.write_job(
        folder,
        current_app.config["SETTINGS"],
        employee=employee,
        plant=plant_id,
        first=first.isoformat(),
        last=last.isoformat(),
        case=case_no,
        owner=session["user"],
        started_ms=now_ms(),
    )
    with (folder / "runner.log").open("wb") as out:
        _children[job_id] = subprocess.Popen(
            [sys.executable, "-m", "cloud.workers.export_job", str(folder)], stdout=out, stderr=subprocess.STDOUT
        )
    note(
        "done",
        action="evidence.export",
        target=f"employee:{plant_id}/{employee}",
        job=job_id,
        first=str(first),
        last=str(last),
        **({"case": case_id} if case_id else {}),
    )
    return redirect(url_for("exports.job", job_id=job_id))


def _job(job_id: str) -> tuple[Path, dict[str, Any]]:
    if not JOB_ID.match(job_id):
        abort(404)
    folder = _root() / job_id
    try:
        job = json.loads((folder / export_job.JOB).read_text(encoding="utf-8"))
    except FileNotFoundError:
        abort(404)
    if job["owner"] != session.get("user") and role() not in ("hr_admin", "auditor"):
        abort(404)
    return folder, job


def _status(folder: Path, job_id: str) -> dict[str, Any]:
    child = _children.get(job_id)
    if child is not None and child.poll() is not None:
        _children.pop(job_id, None)
    progress = (
        (folder / export_job.PROGRESS).read_text(encoding="utf-8") if (folder / export_job.PROGRESS).exists() else ""
    )
    result_file = folder / export_job.RESULT
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.exists() else None
    lines = progress.splitlines()
    shown = progress_shown(lines, getattr(g, "lang", "zh"))
    return {"done": result is not None, "result": result, "progress": lines, "shown": shown}


@bp.route("/evidence/jobs/<job_id>")
@require("evidence.export")
def job(job_id: str) -> Any:
    folder, described = _job(job_id)
    return render_template("export_job.html", job_id=job_id, job=described, status=_status(folder, job_id))


@bp.route("/evidence/jobs/<job_id>.json")
@require("evidence.export")
def job_status(job_id: str) -> Any:
    folder, _described = _job(job_id)
    return jsonify(_status(folder, job_id))


@bp.route("/evidence/jobs/<job_id>/bundle.zip")
@require("evidence.export")
def download(job_id: str) -> Any:
    folder, described = _job(job_id)
    bundle = folder / export_job.BUNDLE
    if not bundle.exists():
        abort(404)
    note(
        "done", action="evidence.download", target=f"employee:{described['plant']}/{described['employee']}", job=job_id
    )
    name = f"evidence-{described['plant']}-{described['employee']}-{described['first']}-{described['last']}.zip"
    return Response(
        bundle.read_bytes(),
        mimetype="application/zip",
        headers={"Content-Disposition": content_disposition(name)},
    )
