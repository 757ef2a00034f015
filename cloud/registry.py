"""The appliance registry: which log belongs to which appliance, and which key signs it."""

from __future__ import annotations

from typing import Any

from cloud.clock import Clock, to_ms
from cloud.store import Appliance, ApplianceKey, LogHead, Plant, database
from ledger import Malformed, VerifyKey


class RegistryError(Exception):
    pass


def register(identity: dict[str, Any], clock: Clock) -> Appliance:
    """Register an appliance from the identity file it wrote (``punchproof appliance identity``)."""
    try:
        plant_id, name, origin = identity["plant"], identity["appliance"], identity["log"]
        key = VerifyKey.from_pem(identity["public_key"])
    except KeyError as err:
        raise RegistryError(f"the identity file lacks {err}") from err
    except Malformed as err:
        raise RegistryError(f"the identity file's public key is unusable: {err}") from err
    if identity.get("kid") not in (None, key.kid):
        raise RegistryError("the identity file's kid does not match its public key")
    with database.atomic():
        plant, _ = Plant.get_or_create(
            id=plant_id,
            defaults={"name": identity.get("plant_name", ""), "timezone": identity.get("timezone", "Asia/Shanghai")},
        )
        existing = Appliance.get_or_none(Appliance.log_origin == origin)
        if existing is not None:
            if ApplianceKey.get_or_none(ApplianceKey.kid == key.kid, ApplianceKey.appliance == existing):
                return existing  # registering the same identity twice is harmless
            raise RegistryError(
                f"log {origin} is already registered with another key; a new key must be added by rotation"
            )
        appliance = Appliance.create(plant=plant, name=name, log_origin=origin, registered_ms=to_ms(clock.now()))
        ApplianceKey.create(appliance=appliance, kid=key.kid, public_key=key.pem(), valid_from_seq=0)
        LogHead.create(appliance=appliance, seq=-1, leaf=None)
    return appliance


def find(plant_id: str, name: str) -> Appliance | None:
    return Appliance.select().join(Plant).where((Plant.id == plant_id) & (Appliance.name == name)).first()


def key_for(appliance: Appliance, kid: str) -> VerifyKey | None:
    """The appliance's key with id ``kid``, unless revoked."""
    row = ApplianceKey.get_or_none(
        (ApplianceKey.appliance == appliance) & (ApplianceKey.kid == kid) & ApplianceKey.revoked_ms.is_null()
    )
    return VerifyKey.from_pem(row.public_key) if row else None
