"""Verify a batch against the registry and the stored chain, then store it, at most once.

Order of checks: who sent it (topic and registry), size and shape, the key, then the chain
from the stored head, then every signature. Only then is anything parsed for meaning. A batch
that fails is quarantined verbatim and answered with a reasoned rejection; a duplicate is
answered with the head, so the appliance can move on.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import peewee as pw

from cloud import rows
from cloud.appliances import registry
from cloud.clock import Clock, to_ms
from cloud.ingest import lanes, quarantine
from cloud.ingest.prepare import Prepared
from cloud.store import Appliance, CloudCheckpoint, LogHead, LogRecord, Punch, Quarantine, bulk_insert, database
from ledger import GENESIS_PREV, ChainBroken, LedgerError, SigningKey, note, topics
from ledger.merkle import CompactRange
from ledger.messages import Ack, Batch
from ledger.verify import verify_parsed, verify_range

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
        """Verify and store one message. ``prepared`` is the batch already parsed by ``cloud.ingest.prepare``
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
        if prepared is not None and prepared.log == appliance.log_origin:
            try:
                ack = self._store_ahead(appliance, prepared)
            except LedgerError:  # rolled back; the whole check below finds it again and says why
                ack = None
            if ack is not None:
                return Outcome(ack_topic, ack)
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

    def head_moved_ms(self, topic: str) -> int | None:
        """When the head of the log on ``topic`` last moved (this or another worker stored a range), or None
        if it never did or the topic is not a registered appliance's."""
        try:
            plant, name, _rest = topics.parse(topic)
        except ValueError:
            return None
        appliance = self._appliances.get((plant, name)) or registry.find(plant, name)
        if appliance is None:
            return None
        return Appliance.select(Appliance.last_batch_ms).where(Appliance.id == appliance.id).scalar()

    def _store_ahead(self, appliance: Appliance, prepared: Prepared) -> Ack | None:
        """Store a range parsed ahead (a backlog's usual batch) if it starts right after the stored head;
        None for anything else (a duplicate, an overlap, a gap), which the whole check handles."""
        with _head_locked(appliance) as head:
            if prepared.first != head.seq + 1:
                return None
            key = registry.key_for(appliance, prepared.kids[0], prepared.first)
            try:
                checkpoint, tree = verify_parsed(
                    prepared.log,
                    prepared.first,
                    prepared.checkpoint,
                    leaves=prepared.leaves,
                    first_prev=prepared.first_prev,
                    kids=prepared.kids,
                    key=key,
                    prev=bytes(head.leaf) if head.leaf is not None else GENESIS_PREV,
                    tree=_tree(head),
                )
            except ChainBroken as err:
                if prepared.first > 0 and f"seq {prepared.first}: does not link" in str(err):
                    raise ChainBroken(f"{prepared.log} seq {prepared.first}: {DIVERGED}") from err
                raise
            now_ms = to_ms(self._clock.now())
            constants = {"appliance_id": appliance.id, "received_ms": now_ms}
            bulk_insert(LogRecord, rows.LOG_COLUMNS, prepared.records, constants)
            bulk_insert(Punch, rows.PUNCH_COLUMNS, prepared.punches, constants)
            leaves = dict(enumerate(prepared.leaves, start=prepared.first))
            self._settle(appliance, prepared.log, prepared.first, leaves, now_ms)
            cosignature = self._cosign(appliance, prepared.checkpoint, checkpoint, now_ms)
            self._advance(appliance, head, prepared.last, prepared.leaves[-1], tree, now_ms)
        log.info(
            "%s: stored seq %d-%d (%d punches%s)",
            prepared.log,
            prepared.first,
            head.seq,
            prepared.punch_count,
            ", checkpoint cosigned" if cosignature else "",
        )
        return _ack(prepared.log, prepared.first, prepared.last, head, "ok", cosignature=cosignature)

    def _store(self, appliance: Appliance, batch: Batch) -> Ack:
        with _head_locked(appliance) as head:
            if batch.first > head.seq + 1:
                return self._ack(batch, head, "gap", f"expected seq {head.seq + 1}")
            fresh = self._fresh_part(appliance, batch, head)
            if fresh is None:
                stored = CloudCheckpoint.get_or_none(
                    (CloudCheckpoint.appliance == appliance) & (CloudCheckpoint.size == batch.last + 1)
                )
                return self._ack(batch, head, "duplicate", cosignature=stored.cosignature if stored else "")
            key = registry.key_for(appliance, _kid_of(fresh), fresh.first)
            prev = bytes(head.leaf) if head.leaf is not None else GENESIS_PREV
            try:
                verified = verify_range(fresh, key=key, prev=prev, tree=_tree(head))
            except ChainBroken as err:
                if fresh.first > 0 and f"seq {fresh.first}: does not link" in str(err):
                    raise ChainBroken(f"{batch.log} seq {fresh.first}: {DIVERGED}") from err
                raise
            now_ms = to_ms(self._clock.now())
            for seq, new_key in verified.rotations:
                registry.record_rotation(appliance, seq, verified.records[seq - fresh.first][0]["kid"], new_key)
            constants = {"appliance_id": appliance.id, "received_ms": now_ms}
            bulk_insert(
                LogRecord,
                rows.LOG_COLUMNS,
                [rows.log_row(f, r, leaf) for (f, leaf), r in zip(verified.records, fresh.records, strict=True)],
                constants,
            )
            punches = [rows.punch_row(f) for f, _ in verified.records if f["type"] == "punch"]
            bulk_insert(Punch, rows.PUNCH_COLUMNS, punches, constants)
            leaves = {f["seq"]: leaf for f, leaf in verified.records}
            self._settle(appliance, batch.log, fresh.first, leaves, now_ms)
            cosignature = self._cosign(appliance, fresh.checkpoint, verified.checkpoint, now_ms)
            self._advance(appliance, head, batch.last, verified.records[-1][1], verified.tree, now_ms)
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

    @staticmethod
    def _settle(appliance: Appliance, log_name: str, first: int, leaves: dict[int, bytes], now_ms: int) -> None:
        for seq in lanes.settle(appliance, first, leaves):
            reason = f"{log_name} seq {seq}: the live lane carried another record signed for this position"
            Quarantine.create(received_ms=now_ms, topic="live lane", reason=reason, payload=b"")
            log.error("%s: the appliance's log forked", reason)

    @staticmethod
    def _advance(appliance: Appliance, head: LogHead, last: int, leaf: bytes, tree: CompactRange, now_ms: int) -> None:
        head.seq, head.leaf = last, leaf
        head.compact = json.dumps([base64.b64encode(h).decode() for h in tree.hashes])
        head.save()
        Appliance.update(last_batch_ms=now_ms).where(Appliance.id == appliance.id).execute()

    def _cosign(self, appliance: Appliance, text: str, checkpoint: note.Checkpoint | None, now_ms: int) -> str:
        """Cosign the range's checkpoint (timestamped): the cloud's statement that it existed by now."""
        if checkpoint is None or self._witness_key is None:
            return ""
        cosigned_at = now_ms // 1000
        line = note.cosign(checkpoint, self._witness_key, self._witness_name, cosigned_at).line()
        CloudCheckpoint.insert(
            appliance=appliance,
            size=checkpoint.size,
            root=checkpoint.root,
            note=text,
            cosignature=line,
            cosigned_at=cosigned_at,
            received_ms=now_ms,
        ).execute()
        return line

    @staticmethod
    def _ack(batch: Batch, head: LogHead, status: str, reason: str = "", *, cosignature: str = "") -> Ack:
        return _ack(batch.log, batch.first, batch.last, head, status, reason, cosignature=cosignature)

    def _quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        quarantine.keep(topic, reason, payload, to_ms(self._clock.now()))


def _kid_of(batch: Batch) -> str:
    try:
        kid = json.loads(batch.records[0].data)["kid"]
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise LedgerError(f"{batch.log} seq {batch.first}: record has no key id") from err
    return lanes.key_id(kid, batch.log, batch.first)


@contextlib.contextmanager
def _head_locked(appliance: Appliance) -> Iterator[LogHead]:
    """A transaction holding the log's head: one writer per log at a time. SQLite takes its write lock up
    front, PostgreSQL locks the head row. Inside a run's transaction this is a savepoint."""
    db = database.obj
    sqlite = isinstance(db, pw.SqliteDatabase)
    with db.atomic("IMMEDIATE") if sqlite else db.atomic():
        query = LogHead.select().where(LogHead.appliance == appliance)
        yield (query if sqlite else query.for_update()).get()


def _tree(head: LogHead) -> CompactRange:
    return CompactRange(head.seq + 1, [base64.b64decode(h) for h in json.loads(head.compact)])


def _ack(
    log_name: str, first: int, last: int, head: LogHead, status: str, reason: str = "", *, cosignature: str = ""
) -> Ack:
    head_hash = base64.b64encode(bytes(head.leaf)).decode() if head.leaf is not None else ""
    return Ack(log_name, status, head.seq, head_hash, first, last, reason, cosignature)
