"""The messages beside the ordered backlog lane: the live lane, and terminals' availability.

A live-lane message carries records an appliance committed while its backlog lane is still
catching up. Each record's signature is checked against the registry (the key valid at that
seq), and the record is kept as *provisional* until the backlog lane brings it into the verified
chain; the chain check itself still happens only there, in order. A record that fails is
quarantined like a bad batch. Nothing here is acknowledged: the appliance's cursor moves only on
the backlog lane's acknowledgement.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cloud.appliances import registry
from cloud.clock import Clock, to_ms
from cloud.ingest import quarantine
from cloud.store import Appliance, DeviceStatus, LogHead, ProvisionalRecord, bulk_insert, database
from ledger import LedgerError, Malformed, topics
from ledger.messages import Batch
from ledger.record import employee_of, record_leaf

log = logging.getLogger(__name__)

MAX_DEVICE_BYTES = 4096
PROVISIONAL_COLUMNS = ("appliance_id", "seq", "type", "employee", "t_wall_ms", "data", "sig", "received_ms")


class LaneIngest:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def live(self, topic: str, payload: bytes) -> int:
        """Check and keep a live-lane message; return how many new provisional records it added."""
        try:
            plant, name, _ = topics.parse(topic)
        except ValueError as err:
            self._quarantine(topic, payload, str(err))
            return 0
        appliance = registry.find(plant, name)
        if appliance is None:
            self._quarantine(topic, payload, f"live lane of an unregistered appliance {plant}/{name}")
            return 0
        try:
            batch = Batch.decode(payload)
            if batch.log != appliance.log_origin:
                raise Malformed(f"live records of log {batch.log!r} on the topic of {appliance.log_origin!r}")
            rows = self._checked(appliance, batch)
        except LedgerError as err:
            self._quarantine(topic, payload, f"live lane: {err}")
            return 0
        if not rows:
            return 0
        with database.atomic():
            head = LogHead.get(LogHead.appliance == appliance).seq
            held = {
                r.seq
                for r in ProvisionalRecord.select(ProvisionalRecord.seq).where(
                    (ProvisionalRecord.appliance == appliance)
                    & (ProvisionalRecord.seq.between(rows[0][1], rows[-1][1]))
                )
            }
            fresh = [r for r in rows if r[1] > head and r[1] not in held]
            bulk_insert(ProvisionalRecord, PROVISIONAL_COLUMNS, fresh)
        return len(fresh)

    def _checked(self, appliance: Appliance, batch: Batch) -> list[tuple[Any, ...]]:
        now_ms = to_ms(self._clock.now())
        rows = []
        for offset, record in enumerate(batch.records):
            seq = batch.first + offset
            fields = record.fields()
            if fields.get("seq") != seq or fields.get("log") != batch.log:
                raise Malformed(f"{batch.log} seq {seq}: the record names seq {fields.get('seq')!r}")
            record.verify(registry.key_for(appliance, key_id(fields.get("kid"), batch.log, seq), seq))
            rows.append(
                (
                    appliance.id,
                    seq,
                    str(fields["type"])[:16],
                    employee_of(fields),
                    int(fields["t_wall_ms"]),
                    record.data,
                    record.sig,
                    now_ms,
                )
            )
        return rows

    def device(self, topic: str, payload: bytes) -> None:
        """Keep a terminal's availability as published; a bad message is quarantined."""
        try:
            plant, name, rest = topics.parse(topic)
            appliance = registry.find(plant, name)
            if appliance is None:
                raise Malformed(f"device status of an unregistered appliance {plant}/{name}")
            terminal = rest.removeprefix("device/")
            if not 0 < len(terminal) <= MAX_TERMINAL_NAME or "\x00" in terminal:
                raise Malformed(f"a terminal name of {len(terminal)} characters, or holding a NUL")
            if len(payload) > MAX_DEVICE_BYTES:
                raise Malformed(f"device status of {len(payload)} bytes")
            body = device_status(json.loads(payload))
        except (ValueError, RecursionError, Malformed) as err:  # json's errors are ValueErrors
            self._quarantine(topic, payload, f"device status: {str(err)[:200]}")
            return
        values = {
            "available": body["available"],
            "error": body["error"],
            "detail": json.dumps(body, ensure_ascii=False, sort_keys=True),
            "updated_ms": to_ms(self._clock.now()),
        }
        with database.atomic():
            updated = (
                DeviceStatus.update(**values)
                .where((DeviceStatus.appliance == appliance) & (DeviceStatus.terminal == terminal))
                .execute()
            )
            if not updated:
                if DeviceStatus.select().where(DeviceStatus.appliance == appliance).count() >= MAX_TERMINALS:
                    self._quarantine(topic, payload, f"device status: more than {MAX_TERMINALS} terminals")
                    return
                DeviceStatus.insert(appliance=appliance, terminal=terminal, **values).on_conflict_ignore().execute()

    def _quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        quarantine.keep(topic, reason, payload, to_ms(self._clock.now()))


MAX_TERMINAL_NAME = 64
MAX_KID_CHARS = 200
MAX_TERMINALS = 64  # an appliance's terminals head office keeps a status of; past it, a name is junk
EPOCH_2000_MS, EPOCH_2100_MS = 946_684_800_000, 4_102_444_800_000
# what an appliance publishes about a terminal (appliance.sync.uplink), each field with its bounds: a retained
# message is read by every page that shows the plant, so one wrong type must not reach them
DEVICE_INTS = {
    "last_contact_ms": (EPOCH_2000_MS, EPOCH_2100_MS),
    "clock_offset_ms": (-10 * 365 * 86_400_000, 10 * 365 * 86_400_000),
    "records_left": (0, 100_000_000),
}


def key_id(value: object, log_name: str, seq: int) -> str:
    """A record's key id, fit to look up: text without a NUL, which PostgreSQL refuses in a query (the lookup
    failed and the message escaped the worker's handling). Raises ``Malformed``."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KID_CHARS or "\x00" in value:
        raise Malformed(f"{log_name} seq {seq}: the record's key id {value!r:.40} is not one")
    return value


def device_status(body: object) -> dict[str, object]:
    """The fields of a device status the pages use, checked: raises ``Malformed``. Unknown fields are dropped."""
    if not isinstance(body, dict) or not isinstance(body.get("available"), bool):
        raise Malformed("device status needs a boolean 'available'")
    error = body.get("error", "")
    if not isinstance(error, str):
        raise Malformed("device status 'error' must be text")
    # kept in text columns: PostgreSQL refuses a NUL character (the insert failed, the message escaped the worker)
    out: dict[str, object] = {"available": body["available"], "error": error.replace("\x00", "\ufffd")[:500]}
    if isinstance(body.get("terminal"), str):
        out["terminal"] = body["terminal"].replace("\x00", "\ufffd")[:MAX_TERMINAL_NAME]
    for name, (low, high) in DEVICE_INTS.items():
        value = body.get(name)
        if value is None:
            out[name] = None
        elif isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            out[name] = value
        else:
            raise Malformed(f"device status {name!r} must be a whole number from {low} to {high}, not {value!r:.40}")
    return out


def settle(appliance: Appliance, first: int, leaves: dict[int, bytes]) -> list[int]:
    """The backlog lane verified seq ``first``.. with these leaf hashes: drop their provisional copies.

    Returns the seqs whose provisional copy differed from the verified record: the appliance signed
    two different records at one position, which the caller must raise as an alarm.
    """
    last = first + len(leaves) - 1
    held = list(
        ProvisionalRecord.select(ProvisionalRecord.seq, ProvisionalRecord.data).where(
            (ProvisionalRecord.appliance == appliance) & (ProvisionalRecord.seq <= last)
        )
    )
    if not held:  # the usual case, and a backlog's every batch: one indexed read, no write
        return []
    # rows below ``first`` came on the live lane while another worker stored their range: dropped too
    differing = [row.seq for row in held if row.seq >= first and record_leaf(bytes(row.data)) != leaves.get(row.seq)]
    ProvisionalRecord.delete().where(
        (ProvisionalRecord.appliance == appliance) & (ProvisionalRecord.seq <= last)
    ).execute()
    return differing
