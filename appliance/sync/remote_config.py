"""The cloud's signed configuration, taken from ``down/config`` and answered on ``up/config``.

The topic is retained, so an appliance that was offline gets the latest version when it
reconnects. A document is applied only when the cloud's witness key signed it, it names this
plant and appliance, and its version is above the one applied (the same version again, as every
reconnect delivers it, is only acknowledged once more). Anything else is refused with one log
line and a ``rejected`` answer the cloud shows; the appliance keeps the master data it had.
Work happens on a thread of its own: applying thousands of rows must not hold up paho's loop.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from appliance.clock import Clock, to_ms
from appliance.config import Settings, TerminalSettings
from appliance.store import AppliedConfig
from appliance.sync.config_apply import ConfigRejected, apply
from ledger import Forged, Malformed, VerifyKey, topics
from ledger.config_message import ConfigStatus, SignedConfig

log = logging.getLogger(__name__)


class Link(Protocol):
    """What the MQTT connection (``appliance.sync.uplink.Uplink``) offers other features."""

    def add_subscription(self, topic: str, handler: Callable[[bytes], None]) -> None: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool: ...


class RemoteConfig:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        cloud_key: VerifyKey,
        *,
        on_applied: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._cloud_key = cloud_key
        self._on_applied = on_applied
        self._publish: Callable[..., bool] = lambda _topic, _payload, **_kw: False
        self._inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        plant, appliance = settings.plant.id, settings.appliance.id
        self.topic = topics.config(plant, appliance)
        self.status_topic = topics.config_applied(plant, appliance)

    def attach(self, link: Link) -> None:
        """Subscribe on ``link`` (before it starts) and answer through it."""
        link.add_subscription(self.topic, self.receive)
        self._publish = link.publish

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="remote-config", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=60)

    def receive(self, payload: bytes) -> None:
        """Called on paho's thread: hand over, never block."""
        self._inbox.put(payload)

    def _run(self) -> None:
        while (payload := self._inbox.get()) is not None:
            try:
                self.handle(payload)
            except Exception:  # the top of the loop: the next document is still taken
                log.exception("remote configuration: unexpected error")

    def handle(self, payload: bytes) -> ConfigStatus:
        """Verify and, if it is new, apply one document; answer the cloud; return the answer."""
        state = AppliedConfig.get_or_create(id=1)[0]
        try:
            signed = SignedConfig.decode(payload)
        except Malformed as err:
            return self._reject(0, hashlib.sha256(payload).hexdigest(), f"malformed: {err}", state.version)
        document = signed.document
        try:
            signed.verify(self._cloud_key)
        except (Forged, Malformed) as err:
            reason = (
                f"forged: the signature does not verify under the cloud key {self._cloud_key.kid} ({err}); "
                "or mqtt.cloud_key_file is not this cloud's cloud-witness.pub"
            )
            return self._reject(document.version, document.hash, reason, state.version)
        plant, appliance = self._settings.plant.id, self._settings.appliance.id
        if (document.plant, document.appliance) != (plant, appliance):
            reason = f"meant for {document.plant}/{document.appliance}, not {plant}/{appliance}"
            return self._reject(document.version, document.hash, reason, state.version)
        if document.version == state.version and document.hash == state.hash:
            log.debug("configuration version %d is applied already", document.version)
            return self._answer(ConfigStatus(document.version, document.hash, "ok", state.version, self._now()))
        if document.version <= state.version:
            reason = f"version {document.version} is not newer than the applied version {state.version} (a replay)"
            return self._reject(document.version, document.hash, reason, state.version)
        terminals = [t.name for t in self._settings.terminals_of(TerminalSettings)]
        try:
            report = apply(document, self._settings.plant.tz, terminals, self._now())
        except ConfigRejected as err:
            return self._reject(document.version, document.hash, f"not usable: {err}", state.version)
        counts = ", ".join(f"{n} {kind}" for kind, n in report.counts.items()) or "no rows"
        removed = ", ".join(f"{n} {kind}" for kind, n in report.removed.items() if n)
        log.info(
            "applied configuration version %d from %s (%s%s); %d past day(s) to evaluate again",
            document.version,
            document.by or "the cloud",
            counts,
            f"; retired {removed}" if removed else "",
            len(report.reevaluate),
        )
        note = ""
        if report.restart_needed:
            note = "device settings take effect when the appliance restarts / 考勤机设置在设备重启后生效"
            log.warning("configuration version %d: %s", document.version, note)
        self._on_applied()
        return self._answer(ConfigStatus(document.version, document.hash, "ok", document.version, self._now(), note))

    def _reject(self, version: int, digest: str, reason: str, applied: int) -> ConfigStatus:
        log.error(
            "refused configuration version %d: %s; keeping version %d / 拒绝云端配置，继续使用当前配置",
            version,
            reason,
            applied,
        )
        AppliedConfig.update(rejected=f"v{version}: {reason}"[:2000], rejected_ms=self._now()).where(
            AppliedConfig.id == 1
        ).execute()
        return self._answer(ConfigStatus(version, digest, "rejected", applied, self._now(), reason))

    def _answer(self, status: ConfigStatus) -> ConfigStatus:
        # Retained: a cloud worker that subscribes later (started after us, or restarted) still learns it.
        if not self._publish(self.status_topic, status.encode(), retain=True):
            log.warning("could not send the configuration answer now; the next reconnect sends it again")
        return status

    def _now(self) -> int:
        return to_ms(self._clock.now())
