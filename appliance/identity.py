"""The appliance's log-signing key and the identity file the cloud registers."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from appliance.config import Settings
from ledger import SigningKey

log = logging.getLogger(__name__)


def load_or_create_key(path: Path) -> SigningKey:
    """Load the key; generate it on first start (file 0600). The key itself is never logged."""
    if path.exists():
        return SigningKey.load(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    key.save(path)
    log.info("generated the log-signing key %s at %s", key.kid, path)
    return key


def pending_key_path(path: Path) -> Path:
    """Where ``rotate-key`` puts the next key until the daemon has recorded the rotation."""
    return path.with_name(path.name + ".next")


def start_rotation(path: Path) -> SigningKey:
    """Generate the next key beside the current one; the daemon records the hand-over at its next start."""
    pending = pending_key_path(path)
    if pending.exists():
        raise FileExistsError(f"a key rotation is already pending ({pending}); restart the appliance to finish it")
    key = SigningKey.generate()
    key.save(pending)
    log.info("generated the next log-signing key %s at %s", key.kid, pending)
    return key


def load_pending_key(path: Path) -> SigningKey | None:
    pending = pending_key_path(path)
    return SigningKey.load(pending) if pending.exists() else None


def finish_rotation(path: Path) -> None:
    """Replace the key file by the next key, once the log records the rotation. The old key is gone."""
    pending = pending_key_path(path)
    os.replace(pending, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename survives a power cut
    finally:
        os.close(directory)


def identity(settings: Settings, key: SigningKey) -> dict[str, str]:
    """What the cloud needs to register this appliance (no secret in it)."""
    return {
        "plant": settings.plant.id,
        "plant_name": settings.plant.name,
        "timezone": settings.plant.timezone,
        "appliance": settings.appliance.id,
        "log": settings.log_origin,
        "kid": key.kid,
        "public_key": key.verify_key.pem(),
    }


def write_identity(settings: Settings, key: SigningKey, path: Path) -> None:
    path.write_text(json.dumps(identity(settings, key), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
