"""HR's master data reaches the plant: the plant's configuration document, pushed to each of its appliances.

``push_plant`` builds the plant's sections from the master data (``config_doc.plant_config``: what attendance
needs, no phones or addresses) and publishes them through ``config_push.publish_config`` to every appliance
of the plant, signed and retained. An appliance whose latest version already holds exactly these sections
gets nothing new (an HR import that changed another plant pushes nothing here). ``punchproof cloud
push-plant-config`` calls it, and ``punchproof cloud import-hr`` after a successful import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from cloud.config_push import ConfigPushError, ConfigVersion, Publisher, Pushed, publish_config
from cloud.hr.config_doc import load_plant_master, plant_config
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


def _unchanged(appliance: Appliance, sections: dict[str, Any]) -> bool:
    latest = (
        ConfigVersion.select()
        .where((ConfigVersion.appliance == appliance) & ConfigVersion.published_ms.is_null(False))
        .order_by(ConfigVersion.version.desc())
        .first()
    )
    if latest is None:
        return False
    try:
        return dict(SignedConfig.decode(bytes(latest.payload)).document.sections) == sections
    except Malformed:
        return False


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
            pushed = publish_config(
                plant_id, appliance.name, sections, by=by, settings=settings, clock=clock, key=key, publisher=publisher
            )
        except ConfigPushError as err:
            log.error("plant configuration not pushed to %s/%s: %s", plant_id, appliance.name, err)
            out.append(PlantPush(appliance.name, None, str(err)))
            continue
        out.append(PlantPush(appliance.name, pushed))
    return out
