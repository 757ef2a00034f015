"""The registration file: everything a Pi needs to reach head office, for the plant's IT person to copy.

Written once per credential by ``punchproof cloud register-appliance`` and read by
``punchproof appliance join``, so nobody types (or sees on a command line) the broker password. It holds
a secret: written with mode 0600, and it should be deleted once the Pi has joined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloud.appliances.broker_auth import BrokerAuthError, Issued, atomic_write
from cloud.config import CloudSettings

FORMAT = "punchproof-registration/1"


def registration(settings: CloudSettings, plant: str, appliance: str, issued: Issued) -> dict[str, Any]:
    if not settings.broker_host:
        raise BrokerAuthError(f"{settings.source}: set broker.host, the broker's name as the appliances reach it")
    ca = ""
    if settings.broker_ca_file:
        try:
            ca = Path(settings.broker_ca_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as err:
            raise BrokerAuthError(f"broker.ca_file: cannot read {settings.broker_ca_file}: {err}") from err
        if "BEGIN CERTIFICATE" not in ca:
            raise BrokerAuthError(f"broker.ca_file: {settings.broker_ca_file} is not a PEM certificate")
    return {
        "format": FORMAT,
        "plant": plant,
        "appliance": appliance,
        "broker": {
            "host": settings.broker_host,
            "port": settings.broker_port,
            "tls": settings.broker_tls,
            "ca_certificate": ca,  # empty: the Pi checks the broker against its system CAs
            "username": issued.username,
            "password": issued.password,
        },
        "cloud_key": settings.witness_public_path.read_text(encoding="ascii"),
    }


def write(path: Path, content: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(content, ensure_ascii=False, indent=2) + "\n", mode=0o600, keep_mode=False)
