"""HR's master data reaches the plant: the plant's configuration document, pushed to each of its appliances.

``push_plant`` builds the plant's sections from the master data (``config_doc.plant_config``: what attendance
needs, no phones or addresses) and publishes them through ``config_push.publish_config`` to every appliance
of the plant, signed and retained. An appliance whose latest version already holds exactly these sections
gets nothing new (an HR import that changed another plant pushes nothing here). ``punchproof cloud
push-plant-config`` calls it, ``punchproof cloud import-hr`` after a successful import, and the escalation runner
when a termination took effect (``behind``: an appliance whose configuration still expects the worker).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloud import witness
from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from cloud.plantconfig.config_doc import load_plant_master, plant_config
from cloud.plantconfig.config_push import ConfigPushError, ConfigVersion, Publisher, Pushed, publish_config
from cloud.store import Appliance, Plant
from ledger import Malformed, SigningKey
from ledger.config_message import SignedConfig, normalize_sections

log = logging.getLogger(__name__)
HISTORY_MS = 62 * 86_400_000  # leave, trips and 补卡 that ended this long ago still matter to re-evaluation
ROWS = ("shifts", "rosters", "employees", "schedule", "leave", "trips", "corrections")


@dataclass(frozen=True)
class PlantPush:
    appliance: str
    pushed: Pushed | None  # None: unchanged, nothing published
    error: str = ""


def sections_for(plant: Plant, now_ms: int) -> dict[str, Any]:
    config = plant_config(load_plant_master(plant, since_ms=now_ms - HISTORY_MS))
    sections: dict[str, Any] = {name: config[name] for name in ROWS}
    if config["calendar"]:
        sections["calendar"] = {"text": config["calendar"]}
    return normalize_sections(sections)


def _latest(appliance: Appliance) -> ConfigVersion | None:
    """The appliance's latest version the broker took (one stored but not published never reached it)."""
    return (
        ConfigVersion.select()
        .where((ConfigVersion.appliance == appliance) & ConfigVersion.published_ms.is_null(False))
        .order_by(ConfigVersion.version.desc())
        .first()
    )


def _unchanged(appliance: Appliance, sections: dict[str, Any]) -> bool:
    latest = _latest(appliance)
    if latest is None:
        return False
    try:
        return dict(SignedConfig.decode(bytes(latest.payload)).document.sections) == sections
    except Malformed:
        return False


def _witness(settings: CloudSettings) -> SigningKey:
    try:
        return witness.load(settings)
    except witness.WitnessKeyMissing as err:
        raise ConfigPushError(f"not signed: {err}") from err


def behind(plant: Plant, ends: Mapping[str, str]) -> list[str]:
    """The plant's appliances whose latest published configuration does not yet end these badges (``user_id`` →
    the ``valid_to`` it must carry, an ISO date) by that date: one still expecting a worker after it. A badge
    the configuration does not list is expected by nobody there; an appliance never configured expects nobody."""
    out = []
    for appliance in Appliance.select().where(Appliance.plant == plant).order_by(Appliance.name):
        employees = _published_employees(appliance)
        for user_id, valid_to in ends.items():
            row = employees.get(user_id)
            if row is not None and (not row.get("valid_to") or str(row["valid_to"]) > valid_to):
                out.append(appliance.name)
                break
    return out


def _published_employees(appliance: Appliance) -> dict[str, dict[str, Any]]:
    latest = _latest(appliance)
    if latest is None:
        return {}
    try:
        sections = SignedConfig.decode(bytes(latest.payload)).document.sections
    except Malformed:
        return {}
    return {str(e.get("user_id")): e for e in sections.get("employees") or ()}


def push_plant(
    plant_id: str,
    *,
    by: str,
    settings: CloudSettings,
    clock: Clock | None = None,
    key: SigningKey | None = None,
    publisher: Publisher | None = None,
    force: bool = False,
) -> list[PlantPush]:
    """Push the plant's configuration to each of its appliances; one failing appliance does not stop the rest."""
    clock = clock or SystemClock()
    plant = Plant.get_or_none(Plant.id == plant_id)
    if plant is None:
        raise ConfigPushError(f"厂区 {plant_id} 不存在 / no plant {plant_id}")
    sections = sections_for(plant, to_ms(clock.now()))
    out = []
    for appliance in Appliance.select().where(Appliance.plant == plant).order_by(Appliance.name):
        if not force and _unchanged(appliance, sections):
            out.append(PlantPush(appliance.name, None))
            continue
        try:
            key = key or _witness(settings)  # loaded once, and only when something is to be signed
            pushed = publish_config(
                plant_id, appliance.name, sections, by=by, settings=settings, clock=clock, key=key, publisher=publisher
            )
        except ConfigPushError as err:
            log.error("plant configuration not pushed to %s/%s: %s", plant_id, appliance.name, err)
            out.append(PlantPush(appliance.name, None, str(err)))
            continue
        out.append(PlantPush(appliance.name, pushed))
    return out
