"""The employee directory, one employee's page with leave, and the HR spreadsheet import.

Leave recorded here goes through ``cloud.hr.records`` (which marks the employee for the escalation
engine) and the employee's open case is counted again at once (``cases.recount``), so the page shows
the days it now excuses and the steps it supersedes; the engine's next tick finds nothing left to do.
An import is checked whole by ``cloud.hr.importer``: a file with any bad row is refused, and every
problem is listed with its sheet, row number and column.

The employee's page lists their badges' latest punches and day facts (``RECENT_ROWS`` of each), each in its plant's
zone, and marks those the appliance signed after its key may have leaked (``cloud.appliances.trust``): they are
not evidence.

Emergency contacts are listed, added, edited and removed here (``cloud.hr.contacts``), each with its verification
state and since when. A new or changed number is asked to reply "确认" at once when an SMS channel is configured
and it is the plant's waking hours; otherwise the escalation runner's next tick in waking hours asks it.
"""

from __future__ import annotations

import operator
import secrets
import tempfile
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from functools import reduce
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw
from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session, url_for

from cloud.appliances.trust import Trust
from cloud.channels.dispatch import Dispatcher
from cloud.clock import SystemClock
from cloud.escalation import cases
from cloud.escalation.models import AbsenceCase, AttendanceDay
from cloud.hr import contacts as ec
from cloud.hr import importer
from cloud.hr.models import Correction, EmergencyContact, Employee, Leave, PlantBadge, Trip
from cloud.hr.records import HrError, record_leave
from cloud.store import Appliance, Plant, Punch
from cloud.web import caseview, import_template
from cloud.web.present import bi, in_zone, local_ms, zone_name
from cloud.web.roles import can, note, now_ms, own_plant, require
from opskit.download import content_disposition
from opskit.urlints import MAX_PAGE, query_int

bp = Blueprint("employees", __name__)
PAGE_SIZE = 100
RECENT_ROWS = 40  # how many of the employee's latest punches, and of their latest day facts, the page lists
LEAVE_KINDS = ("病假", "事假", "年假", "婚假", "丧假", "产假", "陪产假", "工伤假", "调休", "其他")


def _employee(employee_id: int) -> tuple[Employee, list[PlantBadge]]:
    employee = Employee.get_or_none(Employee.id == employee_id)
    if employee is None:
        abort(404)
    badges = list(PlantBadge.select(PlantBadge, Plant).join(Plant).where(PlantBadge.employee == employee))
    mine = own_plant()
    if mine is not None and all(b.plant_id != mine for b in badges):
        abort(404)
    return employee, badges


def _while_here(badges: list[PlantBadge], tz: ZoneInfo) -> Callable[[int, int], bool]:
    """Whether a span (ms) overlaps the time a badge of this plant was valid (its dates in the plant's zone)."""

    def edge(day: str, end: bool) -> int:
        moment = datetime.combine(date.fromisoformat(day), time.min, tz) + timedelta(days=1 if end else 0)
        return int(moment.timestamp() * 1000)

    spans = [
        (edge(b.valid_from, False) if b.valid_from else 0, edge(b.valid_to, True) if b.valid_to else 2**62)
        for b in badges
    ]
    return lambda start, end: any(start < hi and end >= lo for lo, hi in spans)


def _recent(badges: list[PlantBadge]) -> tuple[list[Punch], list[AttendanceDay]]:
    """The badges' latest punches and day facts, newest first: one query each."""
    if not badges:
        return [], []
    punch_of = reduce(operator.or_, [(Appliance.plant == b.plant_id) & (Punch.employee == b.user_id) for b in badges])
    punches = list(
        Punch.select(Punch, Appliance, Plant)
        .join(Appliance)
        .join(Plant)
        .where(punch_of)
        .order_by(Punch.at_utc_ms.desc(), Punch.seq.desc())
        .limit(RECENT_ROWS)
    )
    fact_of = reduce(
        operator.or_, [(AttendanceDay.plant == b.plant_id) & (AttendanceDay.user_id == b.user_id) for b in badges]
    )
    facts = list(
        AttendanceDay.select(AttendanceDay, Plant)
        .join(Plant)
        .where(fact_of)
        .order_by(AttendanceDay.work_date.desc(), AttendanceDay.start_ms.desc())
        .limit(RECENT_ROWS)
    )
    return punches, facts


@bp.route("/employees")
@require("view")
def index() -> Any:
    q = request.args.get("q", "").strip()[:64]
    plant = own_plant() if own_plant() is not None else request.args.get("plant", "")
    page = query_int("page", 1, lo=1, hi=MAX_PAGE)
    query = Employee.select(Employee).order_by(Employee.employee_no)
    if plant:
        query = query.where(
            pw.fn.EXISTS(
                PlantBadge.select(PlantBadge.id).where(
                    (PlantBadge.employee == Employee.id) & (PlantBadge.plant == plant)
                )
            )
        )
    if q:
        like = f"%{q}%"
        query = query.where(
            (Employee.employee_no**like)
            | (Employee.name**like)
            | pw.fn.EXISTS(
                PlantBadge.select(PlantBadge.id).where((PlantBadge.employee == Employee.id) & (PlantBadge.user_id == q))
            )
        )
    total = query.count()
    people = list(query.paginate(max(1, page), PAGE_SIZE))
    ids = [e.id for e in people]
    badges: dict[int, list[PlantBadge]] = {}
    for b in PlantBadge.select().where(PlantBadge.employee.in_(ids)) if ids else []:
        badges.setdefault(b.employee_id, []).append(b)
    open_cases = (
        dict(
            AbsenceCase.select(AbsenceCase.employee, AbsenceCase.id)
            .where(AbsenceCase.employee.in_(ids) & AbsenceCase.open_key.is_null(False))
            .tuples()
        )
        if ids
        else {}
    )
    return render_template(
        "employees.html",
        people=people,
        badges=badges,
        open_cases=open_cases,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        q=q,
        plant=plant,
        plants=caseview.plants_for(own_plant()),
    )


@bp.route("/employees/<int:employee_id>")
@require("view")
def show(employee_id: int) -> Any:
    employee, badges = _employee(employee_id)
    mine = own_plant()
    if mine is not None:  # a plant manager: this plant's badge, and what falls in the time they work here
        badges = [b for b in badges if b.plant_id == mine]
    tz = badges[0].plant.timezone if badges else current_app.config["SETTINGS"].timezone
    case_query = AbsenceCase.select().where(AbsenceCase.employee == employee).order_by(AbsenceCase.opened_ms.desc())
    if mine is not None:
        case_query = case_query.where(AbsenceCase.plant == mine)
    here = _while_here(badges, ZoneInfo(tz)) if mine is not None else None
    leaves = list(Leave.select().where(Leave.employee == employee).order_by(Leave.start_ms.desc()))
    trips = list(Trip.select().where(Trip.employee == employee).order_by(Trip.start_ms.desc()))
    corrections = list(Correction.select().where(Correction.employee == employee).order_by(Correction.at_ms.desc()))
    contacts = ec.listed(employee)
    punches, facts = _recent(badges)
    if here is not None:
        punches = [x for x in punches if here(x.at_utc_ms, x.at_utc_ms)]
        facts = [x for x in facts if here(x.start_ms or 0, x.start_ms or 0)]
        leaves = [x for x in leaves if here(x.start_ms, x.end_ms)]
        trips = [x for x in trips if here(x.start_ms, x.end_ms)]
        corrections = [x for x in corrections if here(x.at_ms, x.at_ms)]
        today = datetime.fromtimestamp(now_ms() / 1000, ZoneInfo(tz)).date().isoformat()
        if not any((b.valid_from or "") <= today and (not b.valid_to or today <= b.valid_to) for b in badges):
            contacts = []  # someone who no longer works here: their family's numbers are head office's
    return render_template(
        "employee.html",
        e=employee,
        badges=badges,
        tz=tz,
        tzname=zone_name(tz),
        leaves=leaves,
        trips=trips,
        corrections=corrections,
        contacts=contacts,
        shown={c.id: ec.shown(c, now_ms()) for c in contacts},
        cases=list(case_query),
        punches=punches,
        facts=facts,
        recent_rows=RECENT_ROWS,
        untrusted=Trust.load().untrusted,
        leave_kinds=LEAVE_KINDS,
        in_zone=in_zone,
        bi=bi,
        can=can,
    )


@bp.route("/employees/<int:employee_id>/leave", methods=["POST"])
@require("hr.edit")
def add_leave(employee_id: int) -> Any:
    employee, badges = _employee(employee_id)
    form = request.form
    tz = badges[0].plant.timezone if badges else current_app.config["SETTINGS"].timezone
    ref = form.get("ref", "").strip()[:64] or f"WEB-{employee.employee_no}-{secrets.token_hex(3).upper()}"
    kind = form.get("kind", "").strip()[:16]
    detail = {"ref": ref, "kind": kind, "start": form.get("start", ""), "end": form.get("end", "")}
    try:
        if kind not in LEAVE_KINDS:
            raise HrError(f"假别 {kind!r} 无效 / unknown kind of leave")
        start, end = local_ms(form.get("start", ""), tz), local_ms(form.get("end", ""), tz)
        record_leave(employee, ref, kind, start, end, now_ms=now_ms(), approved_by=str(session["user"]))
    except (HrError, ValueError) as err:
        note("refused", action="leave.add", target=f"employee:{employee.employee_no}", error=str(err), **detail)
        flash(str(err), "error")
        return redirect(url_for("employees.show", employee_id=employee_id))
    for badge in badges:  # count the absence again now, under the case's lock, as the engine's tick would
        cases.recount(badge.plant, badge.user_id, now_ms=now_ms())
    note("done", action="leave.add", target=f"employee:{employee.employee_no}", **detail)
    flash("leave.add", "done")
    return redirect(url_for("employees.show", employee_id=employee_id))


def _contact_form() -> dict[str, Any]:
    form = request.form
    position = form.get("position", "").strip()
    return {
        "name": form.get("name", "")[:64],
        "relation": form.get("relation", "")[:32],
        "phone": form.get("phone", "")[:32],
        "position": int(position) if position.isdigit() and 0 < int(position) < 100 else None,
    }


def _ask_now(contact: EmergencyContact, tz: str) -> None:
    """The verification SMS at once, when an SMS channel is configured and it is waking hours at the plant; else the
    runner asks at its next tick. A provider that fails leaves the contact 未核验 (the runner tries again)."""
    channels = current_app.config["SETTINGS"].channels
    clock = current_app.config.get("CLOCK", SystemClock())
    if not channels.configured or not ec.waking(now_ms(), tz):
        return
    dispatcher = Dispatcher(channels.build(clock), clock=clock)
    if dispatcher.has("sms"):
        ec.request(EmergencyContact.get_by_id(contact.id), dispatcher, now_ms=now_ms())


def _contact_of(employee: Employee, contact_id: int) -> EmergencyContact:
    contact = EmergencyContact.get_or_none(
        (EmergencyContact.id == contact_id)
        & (EmergencyContact.employee == employee)
        & EmergencyContact.removed_ms.is_null()
    )
    if contact is None:
        abort(404)
    return contact


def _contact_change(employee_id: int, action: str, change: Callable[[Employee], EmergencyContact | None]) -> Any:
    employee, badges = _employee(employee_id)
    tz = badges[0].plant.timezone if badges else current_app.config["SETTINGS"].timezone
    target = f"employee:{employee.employee_no}"
    try:
        contact = change(employee)
    except HrError as err:
        note("refused", action=action, target=target, error=str(err))
        flash(str(err), "error")
        return redirect(url_for("employees.show", employee_id=employee_id, _anchor="contacts"))
    if contact is not None:
        _ask_now(contact, tz)
    note("done", action=action, target=target)
    flash(action, "done")
    return redirect(url_for("employees.show", employee_id=employee_id, _anchor="contacts"))


@bp.route("/employees/<int:employee_id>/contacts", methods=["POST"])
@require("hr.edit")
def add_contact(employee_id: int) -> Any:
    form = _contact_form()
    return _contact_change(employee_id, "contact.add", lambda employee: ec.add(employee, now_ms=now_ms(), **form))


@bp.route("/employees/<int:employee_id>/contacts/<int:contact_id>", methods=["POST"])
@require("hr.edit")
def edit_contact(employee_id: int, contact_id: int) -> Any:
    form = _contact_form()

    def change(employee: Employee) -> EmergencyContact | None:
        contact = _contact_of(employee, contact_id)
        return contact if ec.edit(contact, now_ms=now_ms(), **form) else None

    return _contact_change(employee_id, "contact.edit", change)


@bp.route("/employees/<int:employee_id>/contacts/<int:contact_id>/ask", methods=["POST"])
@require("hr.edit")
def ask_contact(employee_id: int, contact_id: int) -> Any:
    def change(employee: Employee) -> EmergencyContact:
        contact = _contact_of(employee, contact_id)
        ec.ask_again(contact, now_ms=now_ms())
        return contact

    return _contact_change(employee_id, "contact.ask", change)


@bp.route("/employees/<int:employee_id>/contacts/<int:contact_id>/remove", methods=["POST"])
@require("hr.edit")
def remove_contact(employee_id: int, contact_id: int) -> Any:
    def change(employee: Employee) -> None:
        ec.remove(_contact_of(employee, contact_id), now_ms=now_ms())

    return _contact_change(employee_id, "contact.remove", change)


@bp.route("/import", methods=["GET", "POST"])
@require("hr.edit")
def hr_import() -> Any:
    plants = caseview.plants_for(own_plant())
    if request.method == "GET":
        return render_template(
            "import.html", plants=plants, problems=None, counts=None, name="", kind_names=importer.KIND_ZH
        )
    upload = request.files.get("file")
    plant = Plant.get_or_none(Plant.id == request.form.get("plant", ""))
    kind = request.form.get("kind", "auto")
    name = upload.filename if upload is not None and upload.filename else ""
    if plant is None or not name or kind not in ("auto", *importer.KINDS):
        flash("请选择工厂和文件 / choose a plant and a file", "error")
        return render_template(
            "import.html", plants=plants, problems=None, counts=None, name=name, kind_names=importer.KIND_ZH
        ), 400
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="hr-import-") as tmp:
        path = Path(tmp) / f"upload{suffix if suffix in ('.csv', '.xlsx') else '.bin'}"
        assert upload is not None
        upload.save(path)
        try:
            sheets = importer.read(path, kind)
            for sheet in sheets:
                sheet.name = name if suffix == ".csv" else sheet.name
            report = importer.store(importer.check(sheets, plant, name), plant, now_ms())
        except importer.ImportRefused as err:
            note("refused", action="hr.import", target=f"plant:{plant.id}", file=name, problems=len(err.problems))
            return _import_page(plants, name=name, problems=err.problems), 422
    note("done", action="hr.import", target=f"plant:{plant.id}", file=name, counts=dict(report.counts))
    return _import_page(plants, name=name, counts=report.counts)


@bp.route("/import/template.xlsx")
@require("hr.edit")
def hr_import_template() -> Any:
    """The workbook to fill in for one kind of sheet (``?kind=employees`` by default), with its 填写说明."""
    kind = request.args.get("kind", "employees")
    if kind not in import_template.COLUMNS:
        abort(404)
    return Response(
        import_template.workbook(kind),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": content_disposition(f"{importer.KIND_ZH[kind]}-导入模板.xlsx")},
    )


def _import_page(plants: list[Plant], *, name: str = "", problems: Any = None, counts: Any = None) -> str:
    return render_template(
        "import.html", plants=plants, problems=problems, counts=counts, name=name, kind_names=importer.KIND_ZH
    )
