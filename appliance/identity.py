"""The appliance's log-signing key and the identity file the cloud registers."""

from __future__ import annotations

import json
import logging
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
