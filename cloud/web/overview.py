"""Head office's first page: every plant's appliances and the punches they delivered."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee as pw
from flask import Blueprint, current_app, render_template

from cloud.config_push import ConfigApplied, ConfigVersion
from cloud.store import Appliance, DeviceStatus, LogHead, Plant, ProvisionalRecord, Punch, Quarantine
from cloud.web.auth import login_required

bp = Blueprint("overview", __name__)


def in_zone(ms: int | None, zone: str) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


@bp.route("/")
@login_required
def index() -> Any:
    appliances = list(
        Appliance.select(Appliance, Plant, LogHead)
        .join(Plant)
        .switch(Appliance)
        .join(LogHead)
        .order_by(Plant.id, Appliance.name)
    )
    punches = list(
        Punch.select(Punch, Appliance, Plant)
        .join(Appliance)
        .join(Plant)
        .order_by(Punch.received_ms.desc(), Punch.seq.desc())
        .limit(200)
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
    quarantined = list(Quarantine.select().order_by(Quarantine.received_ms.desc()).limit(20))
    ahead = dict(
        ProvisionalRecord.select(ProvisionalRecord.appliance, pw.fn.COUNT(ProvisionalRecord.seq))
        .group_by(ProvisionalRecord.appliance)
        .tuples()
    )
    devices: dict[int, list[DeviceStatus]] = {}
    for device in DeviceStatus.select().order_by(DeviceStatus.terminal):
        devices.setdefault(device.appliance_id, []).append(device)
    return render_template(
        "overview.html",
        appliances=appliances,
        punches=punches,
        quarantined=quarantined,
        ahead=ahead,
        devices=devices,
        latest=latest,
        applied=applied,
        in_zone=in_zone,
        office_tz=current_app.config["SETTINGS"].timezone,
    )
