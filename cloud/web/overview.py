"""Head office's devices page (``/devices``): every plant's appliances, their sync watermark, terminals and
configuration, the open cases per plant, and the punches they delivered (those signed after an appliance key may
have leaked marked as not evidence). A plant manager sees their own plant only. (The first page is HR's work
queue, ``cloud.web.queue``.)"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw
from flask import Blueprint, current_app, render_template

from cloud.appliances.trust import Trust
from cloud.escalation.models import AbsenceCase, AttendanceDay
from cloud.hr import plant_changes
from cloud.ingest.quarantine import QuarantineOverflow
from cloud.plantconfig.config_push import ConfigApplied, ConfigVersion
from cloud.store import Appliance, DeviceStatus, LogHead, LogRecord, Plant, ProvisionalRecord, Punch, Quarantine
from cloud.web.present import bi
from cloud.web.roles import own_plant, require

bp = Blueprint("overview", __name__)


def in_zone(ms: int | None, zone: str) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def waiting_text(row: plant_changes.Pending, zone: str) -> str:
    """HR's changes not yet on the plant's appliances: since when, when they go, and why the last push failed."""
    since, at = in_zone(row.first_ms, zone)[11:16], in_zone(row.due_ms, zone)[11:16]
    if not row.attempts:
        return bi(f"待推送：人事 {since} 起的修改，约 {at} 推送", f"pending push: HR's changes since {since}, at {at}")
    return bi(
        f"待推送：推送失败 {row.attempts} 次（{row.error}），{at} 重试",
        f"pending push: failed {row.attempts} times ({row.error}); again at {at}",
    )


@bp.route("/devices")
@require("view")
def index() -> Any:
    mine = own_plant()
    query = (
        Appliance.select(Appliance, Plant, LogHead)
        .join(Plant)
        .switch(Appliance)
        .join(LogHead)
        .order_by(Plant.id, Appliance.name)
    )
    appliances = list(query.where(Appliance.plant == mine) if mine is not None else query)
    ids = [a.id for a in appliances]
    punches = (
        list(
            Punch.select(Punch, Appliance, Plant)
            .join(Appliance)
            .join(Plant)
            .where(Punch.appliance.in_(ids))
            .order_by(Punch.received_ms.desc(), Punch.seq.desc())
            .limit(200)
        )
        if ids
        else []
    )
    # the sync watermark: the newest record stored contiguously (its appliance clock), and the last confirmed day
    newest_record = {
        a.id: LogRecord.select(LogRecord.t_wall_ms)
        .where((LogRecord.appliance == a.id) & (LogRecord.seq == a.loghead.seq))
        .scalar()
        for a in appliances
    }
    confirmed_through = (
        dict(
            AttendanceDay.select(AttendanceDay.plant, pw.fn.MAX(AttendanceDay.work_date))
            .where(AttendanceDay.plant.in_({a.plant_id for a in appliances}))
            .group_by(AttendanceDay.plant)
            .tuples()
        )
        if appliances
        else {}
    )
    open_cases = (
        dict(
            AbsenceCase.select(AbsenceCase.plant, pw.fn.COUNT(AbsenceCase.id))
            .where(AbsenceCase.open_key.is_null(False) & AbsenceCase.plant.in_({a.plant_id for a in appliances}))
            .group_by(AbsenceCase.plant)
            .tuples()
        )
        if appliances
        else {}
    )
    newest = (
        ConfigVersion.select(ConfigVersion.appliance, pw.fn.MAX(ConfigVersion.version).alias("top"))
        .group_by(ConfigVersion.appliance)
        .alias("newest")
    )
    latest = {
        row.appliance_id: row
        for row in ConfigVersion.select(
            ConfigVersion.appliance, ConfigVersion.version, ConfigVersion.published_ms
        ).join(
            newest,
            on=(ConfigVersion.appliance == newest.c.appliance_id) & (ConfigVersion.version == newest.c.top),
        )
    }
    applied = {row.appliance_id: row for row in ConfigApplied.select()}
    settings = current_app.config["SETTINGS"]
    waiting = plant_changes.pending(
        {a.plant_id for a in appliances},
        quiet_ms=settings.config_push_quiet_s * 1000,
        within_ms=settings.config_push_within_s * 1000,
    )
    quarantined = (
        [] if mine is not None else list(Quarantine.select().order_by(Quarantine.received_ms.desc()).limit(20))
    )
    overflow = (
        []
        if mine is not None
        else list(QuarantineOverflow.select().order_by(QuarantineOverflow.last_ms.desc()).limit(20))
    )
    ahead = dict(
        ProvisionalRecord.select(ProvisionalRecord.appliance, pw.fn.COUNT(ProvisionalRecord.seq))
        .group_by(ProvisionalRecord.appliance)
        .tuples()
    )
    devices: dict[int, list[DeviceStatus]] = {}
    details: dict[int, dict[str, Any]] = {}
    for device in DeviceStatus.select().where(DeviceStatus.appliance.in_(ids)).order_by(DeviceStatus.terminal):
        devices.setdefault(device.appliance_id, []).append(device)
        try:
            details[device.id] = dict(json.loads(device.detail or "{}"))
        except ValueError:
            details[device.id] = {}
    return render_template(
        "overview.html",
        appliances=appliances,
        punches=punches,
        untrusted=Trust.load().untrusted,  # a punch signed after its appliance key may have leaked is marked
        quarantined=quarantined,
        overflow=overflow,
        ahead=ahead,
        devices=devices,
        details=details,
        newest_record=newest_record,
        confirmed_through=confirmed_through,
        open_cases=open_cases,
        latest=latest,
        applied=applied,
        waiting=waiting,
        waiting_text=waiting_text,
        in_zone=in_zone,
        bi=bi,
        office_tz=current_app.config["SETTINGS"].timezone,
    )
