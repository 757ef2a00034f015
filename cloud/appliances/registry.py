"""The appliance registry: which log belongs to which appliance, and which key signs it."""

from __future__ import annotations

from typing import Any

from cloud.clock import Clock, to_ms
from cloud.store import Appliance, ApplianceKey, LogHead, Plant, database
from ledger import Forged, Malformed, VerifyKey


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


def key_for(appliance: Appliance, kid: str, seq: int) -> VerifyKey:
    """The appliance's key ``kid``, if it may sign record ``seq``; raise ``Forged`` saying why not."""
    row = ApplianceKey.get_or_none((ApplianceKey.appliance == appliance) & (ApplianceKey.kid == kid))
    origin = appliance.log_origin
    if row is None:
        raise Forged(f"{origin} seq {seq}: signed with key {kid}, which is not registered for this appliance")
    if row.revoked_ms is not None:
        raise Forged(f"{origin} seq {seq}: signed with key {kid}, which was revoked")
    if seq < row.valid_from_seq or (row.valid_to_seq is not None and seq > row.valid_to_seq):
        until = "" if row.valid_to_seq is None else f" to {row.valid_to_seq} (rotated out)"
        raise Forged(f"{origin} seq {seq}: signed with key {kid}, which is valid from seq {row.valid_from_seq}{until}")
    return VerifyKey.from_pem(row.public_key)


def record_rotation(appliance: Appliance, seq: int, old_kid: str, new_key: VerifyKey) -> None:
    """A verified keyrot record at ``seq``: the old key ends there, the new one signs from ``seq + 1``."""
    taken = ApplianceKey.get_or_none(ApplianceKey.kid == new_key.kid)
    if taken is not None:
        raise Forged(f"{appliance.log_origin} seq {seq}: rotates to key {new_key.kid}, which is already registered")
    ApplianceKey.update(valid_to_seq=seq).where(
        (ApplianceKey.appliance == appliance) & (ApplianceKey.kid == old_kid)
    ).execute()
    ApplianceKey.create(appliance=appliance, kid=new_key.kid, public_key=new_key.pem(), valid_from_seq=seq + 1)


def revoke(kid: str, at_ms: int) -> ApplianceKey:
    """Mark a key as compromised: nothing it signs is accepted any more, and an evidence bundle counts its
    records only where the cloud witnessed them before ``at_ms``."""
    row = ApplianceKey.get_or_none(ApplianceKey.kid == kid)
    if row is None:
        raise RegistryError(f"no registered key has the id {kid}")
    if row.revoked_ms is None:
        row.revoked_ms = at_ms
        row.save()
    return row
