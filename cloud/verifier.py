"""Verify a batch against the registry and the stored chain, then store it, at most once.

Order of checks: who sent it (topic and registry), size and shape, the key, then the chain
from the stored head, then every signature. Only then is anything parsed for meaning. A batch
that fails is quarantined verbatim and answered with a reasoned rejection; a duplicate is
answered with the head, so the appliance can move on.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import peewee as pw

from cloud import lanes, registry
from cloud.clock import Clock, to_ms
from cloud.prepare import Prepared
from cloud.store import Appliance, CloudCheckpoint, LogHead, LogRecord, Punch, Quarantine, bulk_insert, database
from ledger import GENESIS_PREV, ChainBroken, LedgerError, Malformed, SigningKey, note, topics
from ledger.merkle import CompactRange
from ledger.messages import Ack, Batch
from ledger.record import employee_of
from ledger.verify import VerifiedRange, verify_range

log = logging.getLogger(__name__)

WITNESS_NAME = "punchproof-cloud/witness"
DIVERGED = "differs from the history the cloud holds: restored from an old backup, or forked"


@dataclass(frozen=True)
class Outcome:
    ack_topic: str
    ack: Ack


class BatchIngest:
    def __init__(self, clock: Clock, witness_key: SigningKey | None = None, witness_name: str = WITNESS_NAME) -> None:
        self._clock = clock
        self._witness_key = witness_key
        self._witness_name = witness_name
        # Registered appliances by topic: registration never moves a log to another appliance, so the lookup
        # (a join per batch) is done once per worker; keys are still looked up per batch (revocation).
        self._appliances: dict[tuple[str, str], Appliance] = {}

    def handle(self, topic: str, payload: bytes, prepared: Prepared | None = None) -> Outcome | None:
        """Verify and store one message. ``prepared`` is the batch already parsed by ``cloud.prepare``
        (in another process); without it, this does all the work."""
        try:
            plant, name, _rest = topics.parse(topic)
        except ValueError as err:
            self._quarantine(topic, payload, str(err))
            return None
        ack_topic = topics.ack(plant, name)
        appliance = self._appliances.get((plant, name)) or registry.find(plant, name)
        if appliance is None:
            reason = (
                f"appliance {plant}/{name} is not registered; register its identity file with "
                "'punchproof cloud register-appliance'"
            )
            self._quarantine(topic, payload, reason)
            try:  # answer in the sender's terms, so that it can show the reason
                batch = Batch.decode(payload)
                return Outcome(ack_topic, Ack(batch.log, "rejected", -1, "", batch.first, batch.last, reason))
            except LedgerError:
                return Outcome(ack_topic, Ack("", "rejected", -1, "", -1, -1, reason))
        self._appliances[(plant, name)] = appliance
        try:
            batch = prepared.batch if prepared is not None else Batch.decode(payload)
        except LedgerError as err:
            self._quarantine(topic, payload, f"malformed batch: {err}")
            return Outcome(ack_topic, Ack(appliance.log_origin, "rejected", -1, "", -1, -1, str(err)))
        if batch.log != appliance.log_origin:
            reason = f"batch for log {batch.log!r} on the topic of {appliance.log_origin!r}"
            self._quarantine(topic, payload, reason)
            return Outcome(ack_topic, Ack(appliance.log_origin, "rejected", -1, "", batch.first, batch.last, reason))
        try:
            ack = self._store(appliance, batch, prepared.parsed if prepared is not None else None)
        except LedgerError as err:
            self._quarantine(topic, payload, str(err))
            ack = Ack(batch.log, "rejected", -1, "", batch.first, batch.last, str(err))
        return Outcome(ack_topic, ack)

    def _store(self, appliance: Appliance, batch: Batch, parsed: list[tuple[dict[str, Any], bytes]] | None) -> Ack:
        db = database.obj
        sqlite = isinstance(db, pw.SqliteDatabase)
        # One writer per log at a time: SQLite takes its write lock up front, PostgreSQL locks the head row.
        with db.atomic("IMMEDIATE") if sqlite else db.atomic():
            query = LogHead.select().where(LogHead.appliance == appliance)
            head = (query if sqlite else query.for_update()).get()
            if batch.first > head.seq + 1:
                return self._ack(batch, head, "gap", f"expected seq {head.seq + 1}")
            fresh = self._fresh_part(appliance, batch, head)
            if fresh is None:
                stored = CloudCheckpoint.get_or_none(
                    (CloudCheckpoint.appliance == appliance) & (CloudCheckpoint.size == batch.last + 1)
                )
                return self._ack(batch, head, "duplicate", cosignature=stored.cosignature if stored else "")
            key = registry.key_for(appliance, _kid_of(fresh), fresh.first)
            hashes = [base64.b64decode(h) for h in json.loads(head.compact)]
            prev = bytes(head.leaf) if head.leaf is not None else GENESIS_PREV
            try:
                ahead = parsed[len(batch.records) - len(fresh.records) :] if parsed is not None else None
                verified = verify_range(
                    fresh, key=key, prev=prev, tree=CompactRange(head.seq + 1, hashes), parsed=ahead
                )
            except ChainBroken as err:
                if fresh.first > 0 and f"seq {fresh.first}: does not link" in str(err):
                    raise ChainBroken(f"{batch.log} seq {fresh.first}: {DIVERGED}") from err
                raise
            now_ms = to_ms(self._clock.now())
            for seq, new_key in verified.rotations:
                registry.record_rotation(appliance, seq, verified.records[seq - fresh.first][0]["kid"], new_key)
            bulk_insert(
                LogRecord,
                ("appliance_id", "seq", "type", "data", "sig", "leaf", "t_wall_ms", "employee", "received_ms"),
                [
                    (
                        appliance.id,
                        f["seq"],
                        f["type"],
                        r.data,
                        r.sig,
                        leaf,
                        f["t_wall_ms"],
                        employee_of(f),
                        now_ms,
                    )
                    for (f, leaf), r in zip(verified.records, fresh.records, strict=True)
                ],
            )
            punches = [_punch_row(appliance, f, now_ms) for f, _ in verified.records if f["type"] == "punch"]
            bulk_insert(Punch, PUNCH_COLUMNS, punches)
            for seq in lanes.settle(appliance, fresh.first, {f["seq"]: leaf for f, leaf in verified.records}):
                reason = f"{batch.log} seq {seq}: the live lane carried another record signed for this position"
                Quarantine.create(received_ms=now_ms, topic="live lane", reason=reason, payload=b"")
                log.error("%s: the appliance's log forked", reason)
            cosignature = self._witness(appliance, fresh, verified, now_ms)
            head.seq, head.leaf = batch.last, verified.records[-1][1]
            head.compact = json.dumps([base64.b64encode(h).decode() for h in verified.tree.hashes])
            head.save()
            Appliance.update(last_batch_ms=now_ms).where(Appliance.id == appliance.id).execute()
        log.info(
            "%s: stored seq %d-%d (%d punches%s)",
            batch.log,
            fresh.first,
            head.seq,
            len(punches),
            ", checkpoint cosigned" if cosignature else "",
        )
        return self._ack(batch, head, "ok", cosignature=cosignature)

    def _fresh_part(self, appliance: Appliance, batch: Batch, head: LogHead) -> Batch | None:
        """The part of ``batch`` the cloud does not hold yet; what it holds must be identical."""
        overlap = head.seq + 1 - batch.first
        if overlap <= 0:
            return batch
        stored = {
            row.seq: bytes(row.leaf)
            for row in LogRecord.select(LogRecord.seq, LogRecord.leaf).where(
                (LogRecord.appliance == appliance)
                & (LogRecord.seq >= batch.first)
                & (LogRecord.seq < batch.first + overlap)
            )
        }
        for offset, record in enumerate(batch.records[:overlap]):
            if stored.get(batch.first + offset) != record.leaf:
                raise ChainBroken(f"{batch.log} seq {batch.first + offset}: {DIVERGED}")
        if overlap >= len(batch.records):
            return None
        return Batch(batch.log, head.seq + 1, batch.records[overlap:], batch.checkpoint)

    def _witness(self, appliance: Appliance, batch: Batch, verified: VerifiedRange, now_ms: int) -> str:
        """Cosign the range's checkpoint (timestamped): the cloud's statement that it existed by now."""
        if verified.checkpoint is None or self._witness_key is None:
            return ""
        cosigned_at = now_ms // 1000
        line = note.cosign(verified.checkpoint, self._witness_key, self._witness_name, cosigned_at).line()
        CloudCheckpoint.insert(
            appliance=appliance,
            size=verified.checkpoint.size,
            root=verified.checkpoint.root,
            note=batch.checkpoint,
            cosignature=line,
            cosigned_at=cosigned_at,
            received_ms=now_ms,
        ).execute()
        return line

    @staticmethod
    def _ack(batch: Batch, head: LogHead, status: str, reason: str = "", *, cosignature: str = "") -> Ack:
        head_hash = base64.b64encode(bytes(head.leaf)).decode() if head.leaf is not None else ""
        return Ack(batch.log, status, head.seq, head_hash, batch.first, batch.last, reason, cosignature)

    def _quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        log.error("quarantined a message on %s: %s", topic, reason)
        Quarantine.create(received_ms=to_ms(self._clock.now()), topic=topic, reason=reason, payload=payload)


def _kid_of(batch: Batch) -> str:
    try:
        return str(json.loads(batch.records[0].data)["kid"])
    except (ValueError, KeyError, TypeError) as err:
        raise LedgerError(f"{batch.log} seq {batch.first}: record has no key id") from err


PUNCH_COLUMNS = (
    "appliance_id",
    "seq",
    "employee",
    "terminal",
    "terminal_sn",
    "device_time",
    "at_utc_ms",
    "state",
    "verify",
    "received_ms",
)


def _punch_row(appliance: Appliance, fields: dict[str, Any], now_ms: int) -> tuple[Any, ...]:
    term = fields["term"]
    try:
        at = datetime.fromisoformat(term["t"]).replace(tzinfo=_zone(term["tz"]))
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise Malformed(f"seq {fields['seq']}: unknown time zone {term['tz']!r}") from err
    return (
        appliance.id,
        fields["seq"],
        fields["emp"],
        str(term.get("name", "")),
        term["sn"],
        term["t"],
        int(at.timestamp() * 1000),
        term["state"],
        term["verify"],
        now_ms,
    )


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
