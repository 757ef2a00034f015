"""Every MQTT topic of the protocol, in one place.

pp/{plant}/{appliance}/up/batch     appliance -> cloud   QoS 1   signed log ranges
pp/{plant}/{appliance}/down/ack     cloud -> appliance   QoS 1   application acknowledgements
pp/{plant}/{appliance}/status       appliance, retained          "online" / "offline" (Last Will)
"""

from __future__ import annotations

PREFIX = "pp"
SHARED_GROUP = "ingest"


def batch(plant: str, appliance: str) -> str:
    return f"{PREFIX}/{plant}/{appliance}/up/batch"


def ack(plant: str, appliance: str) -> str:
    return f"{PREFIX}/{plant}/{appliance}/down/ack"


def status(plant: str, appliance: str) -> str:
    return f"{PREFIX}/{plant}/{appliance}/status"


def all_batches(*, shared: bool) -> str:
    topic = f"{PREFIX}/+/+/up/batch"
    return f"$share/{SHARED_GROUP}/{topic}" if shared else topic


def parse(topic: str) -> tuple[str, str, str]:
    """Return (plant, appliance, rest) of a protocol topic; raise ValueError otherwise."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise ValueError(f"not a Punchproof topic: {topic!r}")
    return parts[1], parts[2], "/".join(parts[3:])
