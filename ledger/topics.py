"""Every MQTT topic of the protocol, in one place (docs/sync.md describes the payloads).

pp/{plant}/{appliance}/up/batch        appliance -> cloud   QoS 1            the signed log in order (backlog lane)
pp/{plant}/{appliance}/up/live         appliance -> cloud   QoS 1            newest records (live lane)
pp/{plant}/{appliance}/up/config       appliance -> cloud   QoS 1, retained  the configuration version it applied
pp/{plant}/{appliance}/down/ack        cloud -> appliance   QoS 1            application acknowledgements
pp/{plant}/{appliance}/down/config     cloud -> appliance   QoS 1, retained  signed, versioned configuration
pp/{plant}/{appliance}/status          appliance, retained                   "online" / "offline" (Last Will)
pp/{plant}/{appliance}/device/{name}   appliance, retained                   one terminal's availability, on change

An appliance may publish only under ``up/``, ``status`` and ``device/`` of its own prefix and subscribe
only to its own ``down/``; the broker's ACL (cloud.appliances.broker_auth) enforces exactly this table.
"""

from __future__ import annotations

PREFIX = "pp"
SHARED_GROUP = "ingest"


def base(plant: str, appliance: str) -> str:
    return f"{PREFIX}/{plant}/{appliance}"


def batch(plant: str, appliance: str) -> str:
    return f"{base(plant, appliance)}/up/batch"


def live(plant: str, appliance: str) -> str:
    return f"{base(plant, appliance)}/up/live"


def config_applied(plant: str, appliance: str) -> str:
    return f"{base(plant, appliance)}/up/config"


def ack(plant: str, appliance: str) -> str:
    return f"{base(plant, appliance)}/down/ack"


def config(plant: str, appliance: str) -> str:
    return f"{base(plant, appliance)}/down/config"


def status(plant: str, appliance: str) -> str:
    return f"{base(plant, appliance)}/status"


def device(plant: str, appliance: str, terminal: str) -> str:
    return f"{base(plant, appliance)}/device/{terminal}"


def all_batches(*, shared: bool) -> str:
    topic = f"{PREFIX}/+/+/up/batch"
    return f"$share/{SHARED_GROUP}/{topic}" if shared else topic


def all_live(*, shared: bool) -> str:
    topic = f"{PREFIX}/+/+/up/live"
    return f"$share/{SHARED_GROUP}/{topic}" if shared else topic


def all_configs_applied(*, shared: bool) -> str:
    topic = f"{PREFIX}/+/+/up/config"
    return f"$share/{SHARED_GROUP}/{topic}" if shared else topic


def parse(topic: str) -> tuple[str, str, str]:
    """Return (plant, appliance, rest) of a protocol topic; raise ValueError otherwise."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise ValueError(f"not a Punchproof topic: {topic!r}")
    return parts[1], parts[2], "/".join(parts[3:])
