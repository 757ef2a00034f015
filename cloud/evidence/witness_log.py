"""The cloud's own append-only log of the appliance checkpoints it cosigned.

A cosignature says "the cloud saw this checkpoint at time T", but T is the cloud's own word.
This log turns it into something a third party can hold the cloud to: every cosigned
checkpoint becomes a leaf of an RFC 9162 tree, the cloud signs checkpoints of that tree with its
witness key, and each configured RFC 3161 timestamp authority stamps those checkpoints (hourly, and
at each evidence export); one TSA that is down does not keep the others from stamping. A stamped
witness checkpoint proves that every appliance checkpoint in it, and so every record under those,
existed by the TSA's time; and the cloud cannot later drop or reorder what it witnessed without
forking its own signed log.

Each entry names the previous entry of its log (``prev``) and each witness checkpoint commits, in its note, the
latest entry of every log (``heads/1``, ledger/witnesslog.py): what an evidence bundle says of a log's end is then
the cloud's stamped word, not the exporter's pick.

Sealing runs under one lock (SQLite's write lock, or the state row on PostgreSQL), so several
ingest workers may all seal: the second finds nothing new.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import peewee as pw

from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from cloud.evidence.log import ORIGIN as EVIDENCE_ORIGIN
from cloud.evidence.log import EvidenceCheckpoint
from cloud.evidence.tsa import TimestampError, configured_clients
from cloud.store import (
    Appliance,
    CloudCheckpoint,
    WitnessCheckpoint,
    WitnessEntry,
    WitnessStamp,
    WitnessState,
    bulk_insert,
    database,
)
from ledger import SigningKey, leaf_hash, note
from ledger.merkle import CompactRange
from ledger.witnesslog import entry_bytes, heads_extension, note_digest

log = logging.getLogger(__name__)

ORIGIN = "punchproof-cloud/checkpoints"


class Stamp(Protocol):
    tsr: bytes  # the TSA's whole reply (TimeStampResp, DER), as openssl ts -verify -in reads it
    gen_time: datetime


class Stamper(Protocol):
    url: str

    def stamp(self, message_digest: bytes) -> Stamp: ...


@dataclass(frozen=True)
class Sealed:
    size: int
    added: int


class WitnessLog:
    def __init__(
        self,
        key: SigningKey,
        clock: Clock,
        *,
        origin: str = ORIGIN,
        stamper: Stamper | None = None,
        stampers: Sequence[Stamper] = (),
        commit_heads: bool = True,
    ) -> None:
        """``commit_heads=False`` seals as the software before per-log heads did (entries without ``prev``,
        checkpoints without ``heads/1``): only to make such a witness log in tests."""
        self._key = key
        self._commit_heads = commit_heads
        self._clock = clock
        self.origin = origin
        self._stampers = ([stamper] if stamper is not None else []) + list(stampers)
        self.failures: list[str] = []  # what the TSAs that did not stamp in the last stamp_latest said

    def sign_manifest(self, manifest: bytes) -> tuple[str, bytes]:
        """An evidence bundle's manifest.json signed with the witness key (FORMAT.md, "The signed manifest"): its kid
        and the raw Ed25519 signature over those exact bytes."""
        return self._key.verify_key.kid, self._key.sign(manifest)

    def stamp_manifest(self, manifest: bytes) -> bytes | None:
        """An RFC 3161 stamp over an evidence bundle's manifest.json (its SHA-256) by the first configured TSA that
        gives one (FORMAT.md, "The signed manifest"); None when none is configured or none answered (logged)."""
        for stamper in self._stampers:
            try:
                return stamper.stamp(hashlib.sha256(manifest).digest()).tsr
            except TimestampError as err:
                log.error("the TSA at %s did not stamp the bundle's manifest: %s", stamper.url, err)
        return None

    @property
    def stamped(self) -> bool:
        """Whether any timestamp authority is configured to stamp this log."""
        return bool(self._stampers)

    def seal(self) -> Sealed:
        """Append every cosigned checkpoint not yet in the log, and sign a checkpoint of it if it grew."""
        db = database.obj
        sqlite = isinstance(db, pw.SqliteDatabase)
        with db.atomic("IMMEDIATE") if sqlite else db.atomic():
            if WitnessState.get_or_none(WitnessState.id == 1) is None:
                WitnessState.insert(id=1).on_conflict_ignore().execute()
            query = WitnessState.select().where(WitnessState.id == 1)
            state = (query if sqlite else query.for_update()).get()
            new = (
                CloudCheckpoint.select(CloudCheckpoint, Appliance.log_origin)
                .join(Appliance)
                .switch(CloudCheckpoint)
                .join(WitnessEntry, pw.JOIN.LEFT_OUTER, on=(WitnessEntry.checkpoint == CloudCheckpoint.id))
                .where(WitnessEntry.seq.is_null())
                .order_by(CloudCheckpoint.id)
            )
            tree = CompactRange(state.size, [base64.b64decode(h) for h in json.loads(state.compact)])
            heads = current_heads()
            rows = []
            for checkpoint in new.iterator():
                origin = checkpoint.appliance.log_origin
                data = entry_bytes(
                    origin,
                    checkpoint.size,
                    bytes(checkpoint.root),
                    checkpoint.cosigned_at,
                    checkpoint.cosignature.strip(),
                    heads.get(origin, -1) if self._commit_heads else None,
                )
                heads[origin] = tree.size
                leaf = leaf_hash(data)
                rows.append((tree.size, checkpoint.id, None, data, leaf))
                tree.append(leaf)
            own = (  # the cloud's own evidence log, witnessed like an appliance's
                EvidenceCheckpoint.select()
                .join(WitnessEntry, pw.JOIN.LEFT_OUTER, on=(WitnessEntry.evidence == EvidenceCheckpoint.size))
                .where(WitnessEntry.seq.is_null())
                .order_by(EvidenceCheckpoint.size)
            )
            for checkpoint in own.iterator():
                data = entry_bytes(
                    EVIDENCE_ORIGIN,
                    checkpoint.size,
                    bytes(checkpoint.root),
                    checkpoint.cosigned_at,
                    checkpoint.cosignature.strip(),
                    heads.get(EVIDENCE_ORIGIN, -1) if self._commit_heads else None,
                )
                heads[EVIDENCE_ORIGIN] = tree.size
                leaf = leaf_hash(data)
                rows.append((tree.size, None, checkpoint.size, data, leaf))
                tree.append(leaf)
            if not rows:
                return Sealed(state.size, 0)
            bulk_insert(WitnessEntry, ("seq", "checkpoint_id", "evidence", "data", "leaf"), rows)
            extensions = (heads_extension(heads),) if self._commit_heads else ()
            signed = note.Checkpoint(self.origin, tree.size, tree.root(), extensions)
            WitnessCheckpoint.create(
                size=tree.size,
                root=signed.root,
                note=note.render(signed, [note.sign(signed, self._key)]),
                created_ms=to_ms(self._clock.now()),
            )
            state.size = tree.size
            state.compact = json.dumps([base64.b64encode(h).decode() for h in tree.hashes])
            state.save()
        log.info("witness log: %d checkpoints added, size %d", len(rows), tree.size)
        return Sealed(tree.size, len(rows))

    def stamp_latest(self, reason: str, *, unless_stamped: bool = False) -> list[WitnessStamp]:
        """Have each configured TSA stamp the latest witness checkpoint; return the stamps stored (none when
        no TSA is configured). Network I/O: call it outside any transaction. A TSA that fails is skipped
        (its error logged and kept in ``failures``) while the others stamp; when every TSA asked failed, the
        first error is raised and nothing is stored. With ``unless_stamped``, a TSA that has stamped the
        latest checkpoint already is not asked again; one that failed is asked on the next call."""
        self.failures = []
        latest = WitnessCheckpoint.select().order_by(WitnessCheckpoint.size.desc()).first()
        if not self._stampers or latest is None:
            return []
        done = {row.tsa_url for row in latest.stamps} if unless_stamped else set()
        rows, errors = [], []
        for stamper in self._stampers:
            if stamper.url in done:
                continue
            try:
                stamp = stamper.stamp(note_digest(latest.note))
            except TimestampError as err:
                log.error("the TSA at %s did not stamp witness checkpoint %d: %s", stamper.url, latest.size, err)
                errors.append(err)
                continue
            rows.append(
                WitnessStamp.create(
                    checkpoint=latest.size,
                    token=stamp.tsr,
                    gen_time_ms=to_ms(stamp.gen_time),
                    reason=reason,
                    tsa_url=stamper.url,
                )
            )
            log.info("witness checkpoint %d stamped by the TSA at %s (%s)", latest.size, stamp.gen_time, reason)
        self.failures = [str(err) for err in errors]
        if errors and not rows:
            raise errors[0]
        return rows


def current_heads() -> dict[str, int]:
    """Per log the witness log holds, the position of its latest entry: one indexed query per appliance (its
    checkpoints enter in the order of their sizes), and one for the cloud's evidence log."""
    heads = {}
    for appliance in Appliance.select(Appliance.id, Appliance.log_origin).iterator():
        latest = (
            WitnessEntry.select(WitnessEntry.seq)
            .join(CloudCheckpoint, on=(WitnessEntry.checkpoint == CloudCheckpoint.id))
            .where(CloudCheckpoint.appliance == appliance.id)
            .order_by(CloudCheckpoint.size.desc())
            .first()
        )
        if latest is not None:
            heads[appliance.log_origin] = latest.seq
    own = WitnessEntry.select(WitnessEntry.seq).where(WitnessEntry.evidence.is_null(False))
    if (latest := own.order_by(WitnessEntry.evidence.desc()).first()) is not None:
        heads[EVIDENCE_ORIGIN] = latest.seq
    return heads


def heads_at(sizes: Sequence[int]) -> dict[int, dict[str, int]]:
    """The per-log heads as of each witness log size in ``sizes``: one pass over the entries."""
    origins = {a.id: a.log_origin for a in Appliance.select(Appliance.id, Appliance.log_origin)}
    wanted = sorted(set(sizes))
    if not wanted:
        return {}
    query = (
        WitnessEntry.select(WitnessEntry.seq, WitnessEntry.evidence, CloudCheckpoint.appliance)
        .join(CloudCheckpoint, pw.JOIN.LEFT_OUTER, on=(WitnessEntry.checkpoint == CloudCheckpoint.id))
        .where(WitnessEntry.seq < wanted[-1])
        .order_by(WitnessEntry.seq)
        .tuples()
    )
    heads: dict[str, int] = {}
    out: dict[int, dict[str, int]] = {}
    pending = iter(wanted)
    size = next(pending)
    for seq, evidence, appliance in query.iterator():
        while seq >= size:
            out[size] = dict(heads)
            size = next(pending)
        heads[EVIDENCE_ORIGIN if evidence is not None else origins[appliance]] = seq
    out[size] = dict(heads)
    for rest in pending:
        out[rest] = dict(heads)
    return out


def leaves(size: int) -> Sequence[bytes]:
    """The witness log's first ``size`` leaves, for proofs."""
    query = WitnessEntry.select(WitnessEntry.leaf).where(WitnessEntry.seq < size).order_by(WitnessEntry.seq)
    return [bytes(row.leaf) for row in query.iterator()]


def witness_log(settings: CloudSettings, key: SigningKey) -> WitnessLog:
    """The witness log as configured: stamped by every timestamp authority of ``[tsa]``, if any. An unreadable
    root certificate or an unusable URL is a ``ConfigError`` naming it."""
    return WitnessLog(key, SystemClock(), stampers=configured_clients(settings))
