"""Configuration versions for appliances: stored, signed, published retained; and what each applied.

``publish_config`` is the one way to push master data (employees, shifts, rosters, leave, policy,
device settings) to an appliance: the CLI's ``push-config`` calls it, and so can head office's HR
pages later. Each call stores a new version (numbered per appliance, with its content hash, time
and author) before it publishes the signed message retained on ``down/config``, so an appliance
that is offline gets it when it reconnects. The ingest worker records each appliance's answer on
``up/config`` (``record_status``): the version it runs, since when, or why it refused one.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import peewee as pw

from cloud import witness
from cloud.appliances import registry
from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from cloud.hr.plant_changes import ConfigDue
from cloud.store import Appliance, BaseModel, database
from ledger import Malformed, SigningKey, topics
from ledger.config_message import ConfigDocument, ConfigStatus, SignedConfig

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 15.0


class ConfigVersion(BaseModel):
    """One version of one appliance's configuration, with the signed message exactly as published."""

    appliance = pw.ForeignKeyField(Appliance, backref="config_versions")
    version = pw.IntegerField()
    hash = pw.CharField()  # SHA-256 of the canonical document, hex: the appliance reports it back
    created_ms = pw.BigIntegerField()
    by = pw.CharField(default="")
    size = pw.IntegerField()  # bytes on the wire (compressed when large)
    payload = pw.BlobField()
    published_ms = pw.BigIntegerField(null=True)  # when the broker took it; None: publishing failed

    class Meta:
        indexes = ((("appliance", "version"), True),)


class ConfigApplied(BaseModel):
    """What an appliance last said on ``up/config``: the version it runs, and its latest refusal."""

    appliance = pw.ForeignKeyField(Appliance, primary_key=True)
    version = pw.IntegerField(default=0)
    hash = pw.CharField(default="")
    applied_ms = pw.BigIntegerField(null=True)  # the appliance's clock when it applied ``version``
    reported_ms = pw.BigIntegerField(null=True)  # the cloud's clock at its latest answer
    rejected_version = pw.IntegerField(null=True)
    error = pw.TextField(default="")  # why it refused ``rejected_version``; "" once a later version applied
    error_ms = pw.BigIntegerField(null=True)


MODELS = (ConfigVersion, ConfigApplied, ConfigDue)  # ConfigDue: plants HR changed, not pushed yet (hr.plant_changes)


class ConfigPushError(Exception):
    """The configuration was not stored or not published; the message says which, and why."""


class Publisher(Protocol):
    def publish_retained(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True)
class Pushed:
    version: int
    hash: str
    size: int
    compressed: bool


def publish_config(
    plant: str,
    appliance: str,
    document: Mapping[str, Any],
    *,
    by: str,
    settings: CloudSettings,
    clock: Clock | None = None,
    key: SigningKey | None = None,
    publisher: Publisher | None = None,
) -> Pushed:
    """Store ``document`` (its sections: employees, shifts, ...) as the appliance's next version, sign it
    with the witness key and publish it retained (QoS 1). Raises ``ConfigPushError``; a version stored
    but not published stays unpublished (the page shows it) and the next push supersedes it."""
    clock = clock or SystemClock()
    key = key or witness.load(settings)
    target = registry.find(plant, appliance)
    if target is None:
        raise ConfigPushError(f"{plant}/{appliance} is not registered ('punchproof cloud register-appliance')")
    now = to_ms(clock.now())
    for attempt in (1, 2):  # two pushes at once: the second one's version is taken; number it again
        try:
            with database.atomic():
                latest = ConfigVersion.select(pw.fn.MAX(ConfigVersion.version)).where(ConfigVersion.appliance == target)
                version = (latest.scalar() or 0) + 1
                signed = SignedConfig.sign(ConfigDocument.build(plant, appliance, version, now, by, document), key)
                payload = signed.encode()
                row = ConfigVersion.create(
                    appliance=target,
                    version=version,
                    hash=signed.document.hash,
                    created_ms=now,
                    by=by,
                    size=len(payload),
                    payload=payload,
                )
            break
        except Malformed as err:
            raise ConfigPushError(f"not stored: {err}") from err
        except pw.IntegrityError as err:
            if attempt == 2:
                raise ConfigPushError(f"not stored: version {version} was taken twice: {err}") from err
    publish_version(row, settings, publisher=publisher, clock=clock)
    log.info("published configuration v%d to %s/%s (%d bytes) by %s", version, plant, appliance, len(payload), by)
    return Pushed(version, row.hash, len(payload), not payload.startswith(b"{"))


def publish_version(
    row: ConfigVersion, settings: CloudSettings, *, publisher: Publisher | None = None, clock: Clock | None = None
) -> None:
    """Publish a stored version, retained, exactly as stored; record when the broker took it."""
    target = row.appliance
    topic = topics.config(target.plant_id, target.name)
    try:
        (publisher or MqttPublisher(settings)).publish_retained(topic, bytes(row.payload))
    except ConfigPushError as err:
        raise ConfigPushError(f"version {row.version} stored but not published: {err}") from err
    published = to_ms((clock or SystemClock()).now())
    ConfigVersion.update(published_ms=published).where(ConfigVersion.id == row.id).execute()


class MqttPublisher:
    """A short-lived MQTT v5 connection that publishes one retained message and waits for the broker's PUBACK."""

    def __init__(self, settings: CloudSettings, *, timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self._settings = settings
        self._timeout = timeout_s

    def publish_retained(self, topic: str, payload: bytes) -> None:
        cfg = self._settings
        done = threading.Event()
        outcome: dict[str, Any] = {}
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pp-cloud-config-{uuid.uuid4().hex[:12]}", protocol=mqtt.MQTTv5
        )
        if cfg.mqtt_username:
            client.username_pw_set(cfg.mqtt_username, cfg.mqtt_password)
        if cfg.mqtt_tls:
            client.tls_set(ca_certs=cfg.mqtt_ca_file or None)

        def on_connect(_c: object, _u: object, _f: object, reason: Any, _p: object) -> None:
            if reason.is_failure:
                outcome["error"] = f"the broker refused the connection: {reason}"
                done.set()
                return
            outcome["mid"] = client.publish(topic, payload, qos=1, retain=True).mid

        def on_publish(_c: object, _u: object, mid: int, reason: Any, _p: object) -> None:
            if mid == outcome.get("mid"):
                if reason.is_failure:  # MQTT 5 says why: not authorised, too large...
                    outcome["error"] = f"the broker refused the message: {reason}"
                done.set()

        client.on_connect = on_connect
        client.on_publish = on_publish
        try:
            client.connect(cfg.mqtt_host, cfg.mqtt_port, keepalive=30)
        except OSError as err:
            raise ConfigPushError(f"cannot reach the broker {cfg.mqtt_host}:{cfg.mqtt_port}: {err}") from err
        client.loop_start()
        try:
            if not done.wait(self._timeout):
                raise ConfigPushError(f"the broker did not acknowledge within {self._timeout:g} s")
            if "error" in outcome:
                raise ConfigPushError(outcome["error"])
        finally:
            client.disconnect()
            client.loop_stop()


def record_status(topic: str, payload: bytes, clock: Clock) -> ConfigVersion | None:
    """Store an appliance's answer from ``up/config``. Returns the latest version to publish again when
    the appliance refused a document that is not it (a forged or replayed retained message took its place)."""
    try:
        plant, name, _ = topics.parse(topic)
        status = ConfigStatus.decode(payload)
    except (ValueError, Malformed) as err:
        log.error("ignoring a configuration answer on %s: %s", topic, err)
        return None
    target = registry.find(plant, name)
    if target is None:
        log.error("configuration answer from unregistered appliance %s/%s", plant, name)
        return None
    now = to_ms(clock.now())
    with database.atomic():
        row, _ = ConfigApplied.get_or_create(appliance=target)
        if status.applied != row.version:
            row.applied_ms = status.at_ms if status.status == "ok" else None
        row.version, row.reported_ms = status.applied, now
        if status.status == "ok" and status.version == status.applied:
            row.hash = status.hash
        if status.status == "rejected":
            row.rejected_version, row.error, row.error_ms = status.version, status.reason, now
            log.error("%s/%s refused configuration version %d: %s", plant, name, status.version, status.reason)
        elif row.rejected_version is None or status.version >= row.rejected_version:
            row.rejected_version, row.error, row.error_ms = None, status.reason, None  # a note, if any (restart)
        row.save()
    if status.status != "rejected":
        return None
    latest = (
        ConfigVersion.select().where(ConfigVersion.appliance == target).order_by(ConfigVersion.version.desc()).first()
    )
    if latest is None or latest.hash == status.hash:
        return None
    return latest
