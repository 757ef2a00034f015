"""Can this machine talk MQTT to the broker with these credentials? One CONNECT, then goodbye.

Used by both sides' ``doctor``: a TCP connect alone would not notice a wrong password or a TLS
problem, so it sends a real CONNECT (clean start, a client id of its own so no daemon's or worker's
session is touched) and reports the broker's answer.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt


def probe_broker(
    host: str,
    port: int,
    *,
    username: str = "",
    password: str = "",
    tls: bool = False,
    ca_file: str = "",
    client_id: str,
    timeout: float = 3.0,
) -> str | None:
    """None if the broker accepted the CONNECT; otherwise what went wrong, in words."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    answered = threading.Event()
    outcome: list[str | None] = []

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        outcome.append(f"the broker refused the connection: {reason}" if getattr(reason, "is_failure", False) else None)
        answered.set()

    client.on_connect = on_connect
    if username:
        client.username_pw_set(username, password)
    try:
        if tls:
            client.tls_set(ca_certs=ca_file or None)
        client.connect(host, port, keepalive=10)
    except (OSError, ValueError) as err:
        return f"cannot connect: {getattr(err, 'strerror', None) or err}"
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return f"no answer to MQTT CONNECT within {timeout:g} s (is it an MQTT broker? TLS on one side only?)"
        return outcome[0]
    finally:
        client.disconnect()
        client.loop_stop()
