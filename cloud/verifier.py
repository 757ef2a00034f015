"""Verify a batch against the registry and the stored chain, then store it, at most once.

Order of checks: who sent it (topic and registry), size and shape, the key, then the chain
from the stored head, then every signature. Only then is anything parsed for meaning. A batch
that fails is quarantined verbatim and answered with a reasoned rejection; a duplicate is
answered with the head, so the appliance can move on.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import peewee as pw

from cloud import registry
from cloud.clock import Clock, to_ms
from cloud.store import Appliance, LogHead, LogRecord, Punch, Quarantine, database
from ledger import GENESIS_PREV, ChainBroken, LedgerError, Malformed, topics
from ledger.messages import Ack, Batch
from ledger.verify import verify_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    ack_topic: str
    ack: Ack


class BatchIngest:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def handle(self, topic: str, payload: bytes) -> Outcome | None:
        try:
            plant, name, _rest = topics.parse(topic)
        except ValueError as err:
            self._quarantine(topic, payload, str(err))
            return None
        ack_topic = topics.ack(plant, name)
        appliance = registry.find(plant, name)
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
        try:
            batch = Batch.decode(payload)
        except LedgerError as err:
            self._quarantine(topic, payload, f"malformed batch: {err}")
            return Outcome(ack_topic, Ack(appliance.log_origin, "rejected", -1, "", -1, -1, str(err)))
        if batch.log != appliance.log_origin:
            reason = f"batch for log {batch.log!r} on the topic of {appliance.log_origin!r}"
            self._quarantine(topic, payload, reason)
            return Outcome(ack_topic, Ack(appliance.log_origin, "rejected", -1, "", batch.first, batch.last, reason))
        try:
            ack = self._store(appliance, batch)
        except LedgerError as err:
            self._quarantine(topic, payload, str(err))
            ack = Ack(batch.log, "rejected", -1, "", batch.first, batch.last, str(err))
        return Outcome(ack_topic, ack)

    def _store(self, appliance: Appliance, batch: Batch) -> Ack:
        db = database.obj
        sqlite = isinstance(db, pw.SqliteDatabase)
        # One writer per log at a time: SQLite takes its write lock up front, PostgreSQL locks the head row.
        with db.atomic("IMMEDIATE") if sqlite else db.atomic():
            query = LogHead.select().where(LogHead.appliance == appliance)
            head = (query if sqlite else query.for_update()).get()
            if batch.first > head.seq + 1:
                return self._ack(batch, head, "gap", f"expected seq {head.seq + 1}")
            prev = GENESIS_PREV if batch.first == 0 else self._leaf(appliance, batch.first - 1)
            kid = _kid_of(batch)
            key = registry.key_for(appliance, kid)
            if key is None:
                raise LedgerError(f"{batch.log}: key {kid} is not registered for this appliance, or revoked")
            diverged = "differs from the history the cloud holds: restored from an old backup, or forked"
            try:
                verified = verify_batch(batch, key=key, prev=prev)
            except ChainBroken as err:
                if batch.first > 0 and f"seq {batch.first}: does not link" in str(err):
                    raise ChainBroken(f"{batch.log} seq {batch.first}: {diverged}") from err
                raise
            for fields, leaf in verified:
                if fields["seq"] <= head.seq and self._leaf(appliance, fields["seq"]) != leaf:
                    raise ChainBroken(f"{batch.log} seq {fields['seq']}: {diverged}")
            now_ms = to_ms(self._clock.now())
            fresh = [(f, leaf, r) for (f, leaf), r in zip(verified, batch.records, strict=True) if f["seq"] > head.seq]
            if not fresh:
                return self._ack(batch, head, "duplicate")
            LogRecord.insert_many(
                [
                    {
                        "appliance": appliance,
                        "seq": f["seq"],
                        "type": f["type"],
                        "data": r.data,
                        "sig": r.sig,
                        "leaf": leaf,
                        "received_ms": now_ms,
                    }
                    for f, leaf, r in fresh
                ]
            ).execute()
            punches = [_punch_row(appliance, f, now_ms) for f, _, _ in fresh if f["type"] == "punch"]
            if punches:
                Punch.insert_many(punches).execute()
            head.seq, head.leaf = fresh[-1][0]["seq"], fresh[-1][1]
            head.save()
            Appliance.update(last_batch_ms=now_ms).where(Appliance.id == appliance.id).execute()
        log.info("%s: stored seq %d-%d (%d punches)", batch.log, fresh[0][0]["seq"], head.seq, len(punches))
        return self._ack(batch, head, "ok")

    def _leaf(self, appliance: Appliance, seq: int) -> bytes:
        row = LogRecord.get((LogRecord.appliance == appliance) & (LogRecord.seq == seq))
        return bytes(row.leaf)

    @staticmethod
    def _ack(batch: Batch, head: LogHead, status: str, reason: str = "") -> Ack:
        head_hash = base64.b64encode(bytes(head.leaf)).decode() if head.leaf is not None else ""
        return Ack(batch.log, status, head.seq, head_hash, batch.first, batch.last, reason)

    def _quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        log.error("quarantined a message on %s: %s", topic, reason)
        Quarantine.create(received_ms=to_ms(self._clock.now()), topic=topic, reason=reason, payload=payload)


def _kid_of(batch: Batch) -> str:
    try:
        return str(json.loads(batch.records[0].data)["kid"])
    except (ValueError, KeyError, TypeError) as err:
        raise LedgerError(f"{batch.log} seq {batch.first}: record has no key id") from err


def _punch_row(appliance: Appliance, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
    term = fields["term"]
    try:
        at = datetime.fromisoformat(term["t"]).replace(tzinfo=ZoneInfo(term["tz"]))
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise Malformed(f"seq {fields['seq']}: unknown time zone {term['tz']!r}") from err
    return {
        "appliance": appliance,
        "seq": fields["seq"],
        "employee": fields["emp"],
        "terminal": str(term.get("name", "")),
        "terminal_sn": term["sn"],
        "device_time": term["t"],
        "at_utc_ms": int(at.timestamp() * 1000),
        "state": term["state"],
        "verify": term["verify"],
        "received_ms": now_ms,
    }
