"""An MQTT v5 client for tests that says what the broker answered: CONNACK, PUBACK and SUBACK reason codes.

Real paho against a real broker; every wait is on a broker's answer (``wait_until``), never a sleep.
"""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.harness.wait import wait_until

NOT_AUTHORIZED = 135


class Probe:
    def __init__(
        self,
        port: int,
        username: str = "",
        password: str = "",
        *,
        client_id: str = "",
        host: str = "localhost",
        cafile: Path | None = None,
        tls: bool = True,
        persistent: bool = False,
    ) -> None:
        self.port, self.host, self.persistent = port, host, persistent
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(cafile) if cafile else None)  # verifies chain and host name
        self.connack: ReasonCode | None = None
        self.disconnected = threading.Event()
        self.messages: list[tuple[str, bytes, bool]] = []
        self._pubacks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda _c, _u, _f, _r, _p: self.disconnected.set()
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self._pubacks.__setitem__(mid, reason)
        self.client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._subacks.__setitem__(mid, reasons)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))

    def _on_connect(self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        self.connack = reason

    def connect(self) -> ReasonCode:
        """Connect (TLS errors raise here) and return the CONNACK's reason; a refused client stops retrying."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if self.persistent else 0
        self.client.connect(self.host, self.port, keepalive=30, clean_start=not self.persistent, properties=props)
        self.client.loop_start()
        reason = wait_until(lambda: self.connack, timeout=10, message=f"CONNACK on port {self.port}")
        if reason.is_failure:
            self.close()
        return reason

    def publish(self, topic: str, payload: bytes = b"x", *, retain: bool = False) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return wait_until(lambda: self._pubacks.get(info.mid), timeout=10, message=f"PUBACK for {topic}")

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_until(lambda: self._subacks.get(mid), timeout=10, message=f"SUBACK for {topic}")[0]

    def received(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in list(self.messages) if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
