"""Store and forward: the signed log goes up to the cloud in batches over MQTT.

The cursor (``SyncState.acked_seq``) moves only on the cloud's application acknowledgement,
sent after the cloud verified and committed the range, and only when the cloud's head hash is
the hash this appliance holds at that position. A broker PUBACK moves nothing. Several
batches are kept in flight; any not acknowledged in time are sent again, and the cloud stores
a range at most once.

A batch the broker could give to no subscriber (MQTT v5 PUBACK reason 16: head office's ingest
workers are all down or restarting, on a shared subscription) is lost. The broker says so at
once, so the appliance does not wait out the acknowledgement timeout: it sends one record from
its cursor again every second or two until a worker takes it, then the whole window. A ``gap``
acknowledgement (the cloud names its head) sends everything again from there, once: further
``gap`` answers naming the same head are for batches sent before that resend and are ignored.

Two lanes share the connection. The backlog lane sends the log in order, as fast as the cloud
acknowledges. While it is behind (after a long outage), records committed since the connection
came up also go on the live lane at once: the cloud checks each one's signature and shows it
within seconds, and the backlog lane still brings it into the verified chain in its turn.

Each terminal's availability is published retained on its own topic whenever it changes, so
head office sees a dead terminal without asking the plant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.capture.punchlog import LogWriter
from appliance.clock import Clock, to_ms
from appliance.config import Settings
from appliance.store import Checkpoint, Cosignature, LogRecord, SyncState, TerminalHealth
from ledger import Forged, Malformed, SignedRecord, VerifyKey, failpoints, note, topics
from ledger.messages import MAX_MESSAGE_BYTES, Ack, Batch

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
MAX_PAUSE_S = 300.0  # after repeated rejections, try again at least every five minutes
ENVELOPE_BYTES = 256
LIVE_RECORDS = 64  # per live-lane message: a shift-change burst is a few hundred punches a minute
DEVICE_CHECK_S = 1.0
NO_SUBSCRIBERS = 16  # MQTT v5 PUBACK reason: the broker had no subscriber to give the message to, and dropped it
PROBE_FIRST_S, PROBE_MAX_S = 0.5, 2.0  # while no worker is subscribed: one record again this often (doubling)
PROBES_BEFORE_ALARM = 4  # dropped that many times running (~3.5 s): shown on the plant manager's page


@dataclass
class Refused:
    """The broker refused a publish (MQTT v5 PUBACK reason code): e.g. 135, not authorized by its ACL."""

    mid: int
    reason: str


@dataclass
class Dropped:
    """The broker accepted a publish but had no subscriber for it (no ingest worker): the message is gone."""

    mid: int


@dataclass
class InFlight:
    first: int
    last: int
    sent_at: float
    mid: int = 0


class Uplink:
    def __init__(self, settings: Settings, clock: Clock, cloud_key: VerifyKey) -> None:
        self._settings = settings
        self._clock = clock
        self._cloud_key = cloud_key
        self._unsigned_acks = 0
        plant, appliance = settings.plant.id, settings.appliance.id
        self.batch_topic = topics.batch(plant, appliance)
        self.ack_topic = topics.ack(plant, appliance)
        self.status_topic = topics.status(plant, appliance)
        self.live_topic = topics.live(plant, appliance)
        self._client: mqtt.Client | None = None
        self._acks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._refusals: queue.SimpleQueue[Refused | Dropped] = queue.SimpleQueue()
        self._batch_mids: set[int] = set()  # only while a fault test has armed a failpoint
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._reported_connected: bool | None = None
        self._thread: threading.Thread | None = None
        self._inflight: dict[int, InFlight] = {}
        self._next = 0
        self._writer: LogWriter | None = None
        self._paused_until = 0.0
        self._rejections = 0
        self._probing = 0  # > 0 while no ingest worker takes batches: how many probes were dropped so far
        self._probe_at = 0.0  # the backlog lane's next probe (the live lane is not held back)
        self._resent_from: int | None = None  # the cloud's head a gap acknowledgement made us resend from
        self._low_gap_at: float | None = None  # when a gap first named a head below the cursor (see _confirms_loss)
        self.halted = False  # set when the cloud holds another history of this log
        self.acked_seq = -1
        self._cursor_moved = False  # acked_seq moved since it was last saved
        self._live_sent = -1  # the live lane has sent every record up to here
        self._devices: dict[str, tuple[bool, str]] = {}  # what each terminal's retained topic says now
        self._devices_checked = float("-inf")
        self.live_sent_records = 0  # for the benchmark and the tests: records sent on the live lane
        self._subscriptions: dict[str, Callable[[bytes], None]] = {}  # other features' topics (add_subscription)

    # -- other features on this connection (appliance.sync.remote_config): one tidy addition ---------
    def add_subscription(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Before ``start``: subscribe to ``topic`` at every connect; ``handler`` gets its payloads on paho's
        thread and must not block."""
        self._subscriptions[topic] = handler

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """QoS 1; False when not connected (paho would queue it in RAM only)."""
        client = self._client
        return (
            client is not None
            and self._connected.is_set()
            and client.publish(topic, payload, qos=1, retain=retain).rc == 0
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, writer: LogWriter) -> None:
        self._writer = writer
        cfg = self._settings.mqtt
        self.acked_seq = SyncState.get_by_id(1).acked_seq
        self._next = self.acked_seq + 1
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"pp-{self._settings.plant.id}-{self._settings.appliance.id}",
            protocol=mqtt.MQTTv5,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_file or None)
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_socket_open = _nodelay
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(max(20, cfg.inflight * 2))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False, properties=props)
        client.loop_start()
        self._client = client
        self._thread = threading.Thread(target=self._pump, name="uplink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._client is not None:
            if self._connected.is_set():
                info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
                info.wait_for_publish(timeout=2)
            self._client.disconnect()
            self._client.loop_stop()
        SyncState.update(connected=False).where(SyncState.id == 1).execute()  # the page must not say "connected"

    def wake(self, _seq: int | None = None) -> None:
        """New records were committed: send them now rather than at the next tick."""
        self._wake.set()

    # -- paho callbacks: never block here, hand over to the pump ---------------------------
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s; check [mqtt] username/password", reason)
            return
        client.subscribe(self.ack_topic, qos=1)
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        self._connected.clear()
        self._wake.set()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.topic in self._subscriptions:
            self._subscriptions[message.topic](message.payload)
            return
        self._acks.put(message.payload)
        self._wake.set()

    def _on_publish(self, _c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        # A PUBACK with a failure code means the broker dropped the message (SYNC.md: an ACL
        # refusal is otherwise silent): tell the pump, which shows it and backs off.
        if getattr(reason, "is_failure", False):
            self._refusals.put(Refused(mid, str(reason)))
            self._wake.set()
        elif getattr(reason, "value", 0) == NO_SUBSCRIBERS:
            self._refusals.put(Dropped(mid))
            self._wake.set()
        elif mid in self._batch_mids:
            failpoints.hit("sync.after_puback")  # the broker has the batch; the cloud has not acknowledged it

    # -- the pump: acks in, batches out ------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self._report_connection()
                if not self._acks.empty():
                    # All the acknowledgements waiting, in one transaction: one fsync for a run of them, not two each.
                    with SyncState._meta.database.atomic("IMMEDIATE"):
                        while not self._acks.empty():
                            self._handle_ack(self._acks.get())
                        self._save_cursor()
                while not self._refusals.empty():
                    self._handle_refusal(self._refusals.get())
                self._expire()
                # Act on the state _report_connection() just handled: a connection that came up after it is
                # reported (and the cursor reset) on the next pass, so the first batch is not sent twice.
                if self._reported_connected and not self.halted and self._clock.monotonic() >= self._paused_until:
                    if self._clock.monotonic() >= self._probe_at:
                        self._send()
                    self._send_live()
                if self._reported_connected:
                    self._publish_devices()
            except Exception:  # the top of the loop: keep forwarding whatever went wrong once
                log.exception("uplink: unexpected error")
                self._stop.wait(1)

    def _report_connection(self) -> None:
        connected = self._connected.is_set()
        if connected != self._reported_connected:
            if connected:
                log.info("connected to broker %s:%d", self._settings.mqtt.host, self._settings.mqtt.port)
                self._inflight.clear()
                self._next = self.acked_seq + 1  # resend everything the cloud has not acknowledged
                self._resent_from = None
                # What is stored now is backlog; the live lane carries only what is committed from here on.
                self._live_sent = self._writer.head_seq if self._writer is not None else -1
                self._devices.clear()  # republish every terminal's availability
            elif self._reported_connected is not None:
                log.warning("lost the broker; punches are kept and will be sent on reconnect")
            SyncState.update(connected=connected).where(SyncState.id == 1).execute()
            self._reported_connected = connected

    def _handle_ack(self, payload: bytes) -> None:
        try:
            ack = Ack.decode(payload)
        except Malformed as err:
            log.error("ignoring a malformed acknowledgement: %s", err)
            return
        if ack.log != self._settings.log_origin:
            log.error("ignoring an acknowledgement for log %r", ack.log)
            return
        try:
            ack.verify(self._cloud_key)
        except (Forged, Malformed) as err:
            self._unsigned_acks += 1
            message = (
                f"ignored {self._unsigned_acks} acknowledgement(s) not signed by the cloud ({err}): forged, or "
                "mqtt.cloud_key_file is not this cloud's cloud-witness.pub"
            )
            if self._unsigned_acks == 1 or self._unsigned_acks % 100 == 0:  # alarm, without flooding the journal
                log.error(message)
            self._record_error(message)
            return
        batch = self._inflight.get(ack.first)
        if ack.status in ("gap", "rejected") and (batch is None or batch.last != ack.last):
            # Both move the cursor back or stop sending. Genuine, they answer a batch in flight; one for a range
            # not in flight is an old acknowledgement sent again (anyone with the cloud's broker login can).
            log.warning(
                "ignoring a '%s' acknowledgement for seq %d-%d: no such batch is in flight (replayed?)",
                ack.status,
                ack.first,
                ack.last,
            )
            return
        if ack.status == "gap" and ack.head_seq == self._resent_from:
            # Sent before we resent from that head: the resend is on its way (and the ack timeout covers its loss).
            return
        if (
            ack.status == "gap"
            and ack.head_seq < self.acked_seq
            and batch is not None
            and not self._confirms_loss(batch)
        ):
            return
        self._probing = 0  # a worker answered
        if ack.status == "rejected":
            # Resending at once would only be rejected again: back off, and show why on the board.
            self._rejections += 1
            pause = min(MAX_PAUSE_S, self._settings.mqtt.ack_timeout_s * 2 ** min(self._rejections - 1, 8))
            log.error("the cloud rejected seq %d-%d: %s; retrying in %.0f s", ack.first, ack.last, ack.reason, pause)
            self._record_error(ack.reason)
            self._paused_until = self._clock.monotonic() + pause
            self._inflight.clear()
            self._next = self.acked_seq + 1
            return
        self._rejections = 0
        if ack.head_seq >= 0 and not self._matches_local(ack):
            return
        if ack.cosignature:
            self._store_cosignature(ack)
        if ack.head_seq > self.acked_seq or ack.status == "gap":  # a gap: the cloud lost records; resend them
            if ack.head_seq > self.acked_seq:
                self._low_gap_at = None  # a gap below the new cursor must be confirmed afresh
            self.acked_seq = ack.head_seq
            self._cursor_moved = True  # saved once for all the acknowledgements handled together
        for first in [f for f, b in self._inflight.items() if b.last <= self.acked_seq]:
            del self._inflight[first]
        if ack.status == "gap":
            log.info("the cloud holds up to seq %d; resending from there", ack.head_seq)
            self._inflight.clear()
            self._next = ack.head_seq + 1
            self._resent_from = ack.head_seq

    def _confirms_loss(self, batch: InFlight) -> bool:
        """A gap naming a head below the cursor: the cloud lost records (restored from a backup), or, with several
        workers, one of them answered before another stored up to the cursor and its answer came last. Believe it
        when it answers a batch sent after the first such gap since the cursor last moved came (a later batch, or
        the ack timeout's resend)."""
        if self._low_gap_at is not None and batch.sent_at > self._low_gap_at:
            self._low_gap_at = None
            return True
        if self._low_gap_at is None:
            self._low_gap_at = self._clock.monotonic()
        return False

    def _record_error(self, message: str) -> None:
        """Show ``message`` on the board; a cursor moved by earlier acknowledgements is saved first (in order)."""
        self._save_cursor()
        SyncState.update(last_error=message).where(SyncState.id == 1).execute()

    def _save_cursor(self) -> None:
        if self._cursor_moved:
            SyncState.update(acked_seq=self.acked_seq, acked_at_ms=to_ms(self._clock.now()), last_error="").where(
                SyncState.id == 1
            ).execute()
            self._cursor_moved = False

    def _handle_refusal(self, refused: Refused | Dropped) -> None:
        batch = next((b for b in self._inflight.values() if b.mid == refused.mid), None)
        if isinstance(refused, Dropped):
            if batch is not None:
                self._handle_dropped(batch)
            return
        if batch is None:
            log.error("the broker refused a status or live-lane message (%s); check its ACL", refused.reason)
            return
        self._rejections += 1
        pause = min(MAX_PAUSE_S, self._settings.mqtt.ack_timeout_s * 2 ** min(self._rejections - 1, 8))
        message = (
            f"the broker refused seq {batch.first}-{batch.last} ({refused.reason}): check [mqtt] username and "
            "the broker's ACL for this appliance (punchproof cloud register-appliance); punches are kept"
        )
        log.error("%s; retrying in %.0f s", message, pause)
        self._record_error(message)
        self._paused_until = self._clock.monotonic() + pause
        self._inflight.clear()
        self._next = self.acked_seq + 1

    def _handle_dropped(self, batch: InFlight) -> None:
        """No ingest worker was subscribed when the broker got ``batch``: it and everything sent after it are
        lost. Try again soon with one record, until a worker answers (then ``_send`` opens the window)."""
        message = (
            f"the broker dropped seq {batch.first}-{batch.last}: no head-office ingest worker is subscribed "
            "(stopped or restarting); punches are kept and sent as soon as one is"
        )
        if self._probing == 0:
            log.warning(message)
        self._probing += 1
        if self._probing == PROBES_BEFORE_ALARM:  # a restart of the workers takes a second or two: no alarm for that
            self._record_error(message)
        self._probe_at = self._clock.monotonic() + min(PROBE_MAX_S, PROBE_FIRST_S * 2 ** (self._probing - 1))
        self._inflight.clear()
        self._next = self.acked_seq + 1
        self._resent_from = None

    def _matches_local(self, ack: Ack) -> bool:
        row = _fetch_one(f'SELECT leaf FROM "{LogRecord._meta.table_name}" WHERE seq = ?', ack.head_seq)
        if row is None or base64.b64encode(bytes(row[0])).decode() != ack.head_hash:
            message = (
                f"the cloud holds a different record at seq {ack.head_seq} of this log: this appliance was "
                "restored from an old backup, or its log forked. Sync is halted until support resolves it; "
                "punches are still read and stored."
            )
            log.error(message)
            self._record_error(message)
            self.halted = True
            self._inflight.clear()
            return False
        return True

    def _expire(self) -> None:
        timeout = self._settings.mqtt.ack_timeout_s
        now = self._clock.monotonic()
        if any(now - b.sent_at > timeout for b in self._inflight.values()):
            log.warning("no acknowledgement within %.0f s; resending from seq %d", timeout, self.acked_seq + 1)
            self._inflight.clear()
            self._next = self.acked_seq + 1
            self._resent_from = None

    def _store_cosignature(self, ack: Ack) -> None:
        """Keep the cloud's cosignature of the checkpoint ending at ``ack.last``, if it verifies."""
        size = ack.last + 1
        checkpoint = _fetch_one(f'SELECT note FROM "{Checkpoint._meta.table_name}" WHERE size = ?', size)
        if checkpoint is None or _fetch_one(f'SELECT 1 FROM "{Cosignature._meta.table_name}" WHERE size = ?', size):
            return
        line = ack.cosignature if ack.cosignature.endswith("\n") else ack.cosignature + "\n"
        text = checkpoint[0] + line
        try:
            witness = note.parse(text)[1][-1].name
            cosigned_at = note.verify_cosignature(text, self._cloud_key, witness)
        except (Forged, Malformed) as err:
            log.error("the cloud's cosignature of checkpoint %d does not verify: %s", size, err)
            return
        Cosignature.insert(
            size=size, line=line, cosigned_at=cosigned_at, received_ms=to_ms(self._clock.now())
        ).execute()
        if self._writer is not None:
            self._writer.set_anchor(base64.b64encode(hashlib.sha256(line.encode()).digest()).decode())

    def _send(self) -> None:
        cfg = self._settings.mqtt
        assert self._client is not None and self._writer is not None
        window = 1 if self._probing else cfg.inflight  # no worker took the last batch: one small probe at a time
        while len(self._inflight) < window and self._next <= self._writer.head_seq:
            end, checkpoint = self._batch_end(1 if self._probing else cfg.batch_records)
            rows = list(  # tuples, not model objects: a backlog reads a million of them
                LogRecord.select(LogRecord.seq, LogRecord.data, LogRecord.sig)
                .where((LogRecord.seq >= self._next) & (LogRecord.seq < end))
                .order_by(LogRecord.seq)
                .tuples()
            )
            if not rows or rows[0][0] != self._next:
                log.error("the local log has no record at seq %d; the database is damaged", self._next)
                self.halted = True
                return
            records, size = [], ENVELOPE_BYTES + len(checkpoint)
            for _seq, data, sig in rows:
                size += len(data) * 2 + 100  # JSON-escaped record + signature
                if records and size > MAX_MESSAGE_BYTES:
                    checkpoint = ""  # cut short: the checkpoint no longer ends this batch
                    break
                records.append(SignedRecord(bytes(data), bytes(sig)))
            batch = Batch(self._settings.log_origin, rows[0][0], tuple(records), checkpoint)
            failpoints.hit("sync.before_publish")  # committed locally, not yet sent
            info = self._client.publish(self.batch_topic, batch.encode(), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # not connected after all; the reconnect resends from the cursor
            self._inflight[batch.first] = InFlight(batch.first, batch.last, self._clock.monotonic(), info.mid)
            if failpoints.armed():
                self._batch_mids.add(info.mid)
            self._next = batch.last + 1

    def _send_live(self) -> None:
        """Records committed since the connection came up that the backlog lane has not reached: send now."""
        assert self._client is not None and self._writer is not None
        head = self._writer.head_seq
        start = max(self._live_sent, self._next - 1) + 1
        if start > head:
            return
        rows = list(
            LogRecord.select(LogRecord.seq, LogRecord.data, LogRecord.sig)
            .where((LogRecord.seq >= start) & (LogRecord.seq <= head))
            .order_by(LogRecord.seq)
        )
        for chunk in range(0, len(rows), LIVE_RECORDS):
            part = rows[chunk : chunk + LIVE_RECORDS]
            if part[0].seq + len(part) - 1 != part[-1].seq:
                log.error("the local log has a hole between seq %d and %d", part[0].seq, part[-1].seq)
                return
            records = tuple(SignedRecord(bytes(r.data), bytes(r.sig)) for r in part)
            live = Batch(self._settings.log_origin, part[0].seq, records)
            if self._client.publish(self.live_topic, live.encode(), qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                return
            self._live_sent = live.last
            self.live_sent_records += len(records)

    def _publish_devices(self) -> None:
        """Each terminal's availability, retained, whenever it changes (and all of them at each connect)."""
        now = self._clock.monotonic()
        if now - self._devices_checked < DEVICE_CHECK_S:
            return
        self._devices_checked = now
        assert self._client is not None
        plant, appliance = self._settings.plant.id, self._settings.appliance.id
        for row in TerminalHealth.select():
            state = (bool(row.available), row.last_error or "")
            if self._devices.get(row.name) == state:
                continue
            payload = {
                "terminal": row.name,
                "available": state[0],
                "error": state[1],
                "last_contact_ms": row.last_contact_ms,
                "clock_offset_ms": row.clock_offset_ms,
                "records_left": row.capacity,
            }
            body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
            info = self._client.publish(topics.device(plant, appliance, row.name), body, qos=1, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._devices[row.name] = state

    def _batch_end(self, limit: int) -> tuple[int, str]:
        """Where the next batch ends (exclusive) and, if a checkpoint ends it there, that checkpoint."""
        assert self._writer is not None
        query = (
            f'SELECT size, note FROM "{Checkpoint._meta.table_name}" WHERE size > ? AND size <= ? ORDER BY size DESC'
        )
        for attempt in (1, 2):
            checkpoint = _fetch_one(query + " LIMIT 1", self._next, self._next + limit)
            if checkpoint is not None:
                return checkpoint[0], checkpoint[1]
            if attempt == 1 and self._writer.head_seq < self._next + limit:
                self._writer.checkpoint()  # each sync ends at a checkpoint of everything so far
        return self._next + limit, ""


def _fetch_one(sql: str, *params: object) -> tuple[Any, ...] | None:
    """One row by plain SQL: the ORM's query building costs more than SQLite on the per-batch lookups."""
    return LogRecord._meta.database.execute_sql(sql, params).fetchone()


def _nodelay(_client: object, _userdata: object, sock: socket.socket) -> None:
    # Nagle's algorithm costs ~40-90 ms per request/acknowledge round trip (SYNC.md).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
