"""An ingest worker: takes batches from the broker, verifies and stores them, acknowledges.

The acknowledgement is published only after the database commit. Several workers may share
one MQTT v5 shared subscription; the database makes a range stored twice a no-op. The worker
keeps a persistent session, so batches published while it was down wait at the broker (and the
appliances resend whatever the broker lost).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time

import paho.mqtt.client as mqtt
import peewee as pw
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud import witness
from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from cloud.evidence.tsa import TimestampError
from cloud.evidence.witness_log import WitnessLog, witness_log
from cloud.ingest.lanes import LaneIngest
from cloud.ingest.prepare import AheadParser, Prepared, default_processes
from cloud.ingest.verifier import BatchIngest, Outcome
from cloud.plantconfig import config_push
from cloud.store import Appliance, Plant, database, open_db, reconnecting, write_transaction
from ledger import SigningKey, failpoints, topics
from opskit.supervisor import ServiceManager, Unsupervised

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600
STATUS_FILTER = f"{topics.PREFIX}/+/+/status"
DEVICE_FILTER = f"{topics.PREFIX}/+/+/device/+"
GAP_WAIT_S = 3.0  # a range ahead of the stored head waits until the head has not moved for this long
GAP_POLL_S = 0.01
RUN_BATCHES = 16  # parsed batches stored in one transaction (one fsync); the appliance keeps more in flight
HEALTH_EVERY_S = 10.0  # how often the main loop checks the worker when systemd asks for no watchdog


class IngestWorker:
    def __init__(self, settings: CloudSettings, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._ingest: BatchIngest | None = None
        self._lanes = LaneIngest(self._clock)
        self._messages: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._witness: SigningKey | None = None
        self._stopping = threading.Event()
        self._ended = False
        self._sealer: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        cfg = self._settings
        self._witness = witness.load(cfg)
        self._ingest = BatchIngest(self._clock, self._witness)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pp-cloud-{cfg.worker_id}", protocol=mqtt.MQTTv5
        )
        if cfg.mqtt_username:
            client.username_pw_set(cfg.mqtt_username, cfg.mqtt_password)
        if cfg.mqtt_tls:
            client.tls_set(ca_certs=cfg.mqtt_ca_file or None)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda _c, _u, message: self._messages.put(message)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        props = Properties(PacketTypes.CONNECT)
        # One worker keeps a persistent session, so batches wait at the broker while it restarts. Workers on
        # a shared subscription do not: Mosquitto keeps dealing a share of the stream to a dead member's
        # session, where it waits until that worker returns; with clean sessions the live workers take it
        # all, and the appliances resend whatever died with the dead one.
        persistent = not cfg.mqtt_shared
        props.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
        client.connect_async(cfg.mqtt_host, cfg.mqtt_port, keepalive=30, clean_start=not persistent, properties=props)
        self._client = client
        self._thread = threading.Thread(target=self._work, name="ingest", daemon=True)
        self._thread.start()
        client.loop_start()
        self._sealer = threading.Thread(
            target=self._seal_periodically, args=(witness_log(cfg, self._witness),), name="witness-seal", daemon=True
        )
        self._sealer.start()

    def healthy(self) -> bool:
        """The worker's own threads still run (one that died would leave the process up but deaf)."""
        threads = (self._thread, self._sealer)
        return all(t is not None and t.is_alive() for t in threads) and not self._ended

    def _seal_periodically(self, log_: WitnessLog) -> None:
        """Seal the cloud's witness log (and have the TSA stamp it) every ``witness_seal_every_s``."""
        while not self._stopping.wait(self._settings.witness_seal_every_s):
            try:
                reconnecting(log_.seal)
                log_.stamp_latest("hourly", unless_stamped=True)
            except TimestampError as err:
                log.error("the timestamp authority did not stamp the witness log: %s; retrying next time", err)
            except Exception:  # the top of the loop: the next period tries again
                log.exception("sealing the witness log failed")

    def stop(self) -> None:
        self._stopping.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self._messages.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._sealer is not None:
            self._sealer.join(timeout=30)

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the ingest worker: %s; check [mqtt] username/password", reason)
            return
        client.subscribe(topics.all_batches(shared=self._settings.mqtt_shared), qos=1)
        client.subscribe(STATUS_FILTER, qos=1)
        client.subscribe(DEVICE_FILTER, qos=1)
        client.subscribe(topics.all_live(shared=self._settings.mqtt_shared), qos=1)
        client.subscribe(topics.all_configs_applied(shared=self._settings.mqtt_shared), qos=1)
        log.info(
            "ingest worker %s connected to %s:%d",
            self._settings.worker_id,
            self._settings.mqtt_host,
            self._settings.mqtt_port,
        )
        self.connected.set()

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if self.connected.is_set():
            log.warning("ingest worker lost the broker (%s); reconnecting", reason)
        self.connected.clear()

    def _take(self, block: bool) -> tuple[str, bytes] | None:
        """The next message from the broker's thread; None when none waits (or, blocking, at stop)."""
        if self._ended:
            return None
        try:
            message = self._messages.get() if block else self._messages.get_nowait()
        except queue.Empty:
            return None
        if message is None:
            self._ended = True
            return None
        return message.topic, message.payload

    def _work(self) -> None:
        processes = self._settings.ingest_parse_processes or default_processes()
        copy = isinstance(database.obj, pw.PostgresqlDatabase)  # the parsers write PostgreSQL's COPY text
        parser = AheadParser(processes, lookahead=2 * RUN_BATCHES, copy=copy).start()
        try:
            for run in parser.runs(self._take, limit=RUN_BATCHES):
                if len(run) == 1:
                    self._one(*run[0])
                else:
                    self._run(run)
        finally:
            parser.stop()

    def _one(self, topic: str, payload: bytes, prepared: Prepared | None) -> None:
        try:
            if topic.endswith("/status"):
                self._status(topic, payload)
                return
            if topic.endswith("/up/live"):
                reconnecting(lambda: self._lanes.live(topic, payload))
                return
            if "/device/" in topic:
                reconnecting(lambda: self._lanes.device(topic, payload))
                return
            if topic.endswith("/up/config"):
                self._config_status(topic, payload)
                return
            outcome = reconnecting(lambda: self._handle(topic, payload, prepared))
            failpoints.hit("ingest.before_ack")  # committed, not yet acknowledged
            self._acknowledge(topic, payload, prepared, outcome)
        except Exception:  # the top of the worker loop: one bad message must not stop ingest
            log.exception("failed to process a message on %s", topic)

    def _run(self, run: list[tuple[str, bytes, Prepared | None]]) -> None:
        """Store a run of parsed batches in one transaction, then acknowledge each. If the run fails as a
        whole, nothing of it was committed: its batches are stored one by one, as if they came alone."""
        try:
            outcomes = reconnecting(lambda: self._handle_run(run))
        except Exception:  # fall back to the one-by-one path, which reports the culprit
            log.exception("storing %d batches in one transaction failed; storing them one by one", len(run))
            for item in run:
                self._one(*item)
            return
        failpoints.hit("ingest.before_ack")  # committed, not yet acknowledged
        for (topic, payload, prepared), outcome in zip(run, outcomes, strict=True):
            try:
                self._acknowledge(topic, payload, prepared, outcome)
            except Exception:  # the top of the worker loop: one bad message must not stop ingest
                log.exception("failed to acknowledge a batch on %s", topic)

    def _handle_run(self, run: list[tuple[str, bytes, Prepared | None]]) -> list[Outcome | None]:
        with write_transaction():  # each batch's own transaction becomes a savepoint inside this one
            return [self._handle(topic, payload, prepared) for topic, payload, prepared in run]

    def _acknowledge(self, topic: str, payload: bytes, prepared: Prepared | None, outcome: Outcome | None) -> None:
        if outcome is not None and outcome.ack.status == "gap" and self._settings.mqtt_shared:
            outcome = self._await_predecessor(topic, payload, prepared, outcome)
        if outcome is not None and self._client is not None and self._witness is not None:
            self._client.publish(outcome.ack_topic, outcome.ack.signed(self._witness).encode(), qos=1)

    def _await_predecessor(self, topic: str, payload: bytes, prepared: Prepared | None, outcome: Outcome) -> Outcome:
        """On a shared subscription the range before this one is usually being stored by another worker
        right now: wait for it briefly rather than make the appliance resend everything in flight.

        Only while that log's head is moving: the wait ends ``GAP_WAIT_S`` after the head last moved, not
        after this batch came. A head that has not moved for longer (the predecessor was dropped by the broker
        while no worker was subscribed, or died with a killed worker) is answered ``gap`` at once, so the
        appliance resends from it within a round trip, rather than after 3 s for each batch it has in flight,
        one after another in this thread, while the resend waits in the queue behind them."""
        ingest = self._ingest
        assert ingest is not None, "start() first"
        moved_ms = reconnecting(lambda: ingest.head_moved_ms(topic))
        if moved_ms is None:
            return outcome
        left_s = GAP_WAIT_S - (to_ms(self._clock.now()) - moved_ms) / 1000
        deadline = time.monotonic() + min(GAP_WAIT_S, left_s)
        # Once more now, whatever the deadline: acknowledgements before this one in its run may have waited, and
        # a gap must name the head as it is when it is sent, not as it was when the run began.
        outcome = reconnecting(lambda: ingest.handle(topic, payload, prepared)) or outcome
        while outcome.ack.status == "gap" and time.monotonic() < deadline and not self._stopping.wait(GAP_POLL_S):
            outcome = reconnecting(lambda: self._handle(topic, payload, prepared)) or outcome
        return outcome

    def _handle(self, topic: str, payload: bytes, prepared: Prepared | None) -> Outcome | None:
        assert self._ingest is not None, "start() first"
        return self._ingest.handle(topic, payload, prepared)

    def _config_status(self, topic: str, payload: bytes) -> None:
        """An appliance's answer to a configuration; if it refused a forged or replayed retained message,
        the latest version is published again in its place."""
        latest = reconnecting(lambda: config_push.record_status(topic, payload, self._clock))
        if latest is not None and self._client is not None:
            appliance = latest.appliance
            self._client.publish(
                topics.config(appliance.plant_id, appliance.name), bytes(latest.payload), qos=1, retain=True
            )

    def _status(self, topic: str, payload: bytes) -> None:
        try:
            plant, name, _ = topics.parse(topic)
        except ValueError:
            return
        status = payload.decode("utf-8", errors="replace").replace("\x00", "\ufffd")[:16]  # PostgreSQL refuses a NUL
        Appliance.update(status=status, status_ms=to_ms(self._clock.now())).where(
            (Appliance.plant == Plant.get_or_none(Plant.id == plant)) & (Appliance.name == name)
        ).execute()


def run(settings: CloudSettings, service: ServiceManager | None = None) -> None:
    """Run one ingest worker until SIGTERM or SIGINT; tell ``service`` when ready, while healthy, when stopping."""
    service = service or Unsupervised()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    open_db(settings.database_url)
    worker = IngestWorker(settings)
    worker.start()
    service.ready(f"ingest worker {settings.worker_id}")
    connected: bool | None = None
    healthy = True
    while not stopping.wait(service.watchdog_interval_s or HEALTH_EVERY_S):
        if worker.connected.is_set() != connected:
            connected = worker.connected.is_set()
            service.status(f"{settings.worker_id}: {'connected to' if connected else 'waiting for'} the broker")
        if worker.healthy():
            service.watchdog()
            healthy = True
        elif healthy:
            log.error("the ingest thread stopped; not telling the watchdog, so systemd restarts the worker")
            healthy = False
    service.stopping("stopping")
    worker.stop()
    log.info("ingest worker stopped cleanly")
