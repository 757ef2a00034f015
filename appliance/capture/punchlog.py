"""Appending to the signed log: one writer, gapless seq, each record chained and signed, and
signed checkpoints of the Merkle tree over it.

Records and the rows derived from them are committed in one transaction, so a crash leaves
either both or neither. Several records share one commit (one fsync) when they arrive together.
A checkpoint (C2SP signed note over the RFC 9162 root) is made every ``CHECKPOINT_EVERY``
records, and on demand (each minute's seal, each sync, shutdown).

Failpoints (``ledger.failpoints``) name each step, so that a test can kill the process at any of
them: ``log.signed`` (signed, nothing written), ``log.records_inserted``,
``log.checkpoints_inserted`` (inside the transaction), ``log.before_commit``, ``log.committed``
(committed, the head not yet moved), ``log.checkpoint_inserted`` and ``log.checkpoint_committed``
(an on-demand checkpoint's own transaction).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from appliance.clock import Clock, to_ms
from appliance.store import Checkpoint, LogRecord
from ledger import GENESIS_PREV, SigningKey, failpoints, make_record, note, parse
from ledger.merkle import CompactRange

CHECKPOINT_EVERY = 256
INSERT_CHUNK = 200  # rows per INSERT statement, below SQLite's variable limit
INSERT_RECORD = "INSERT INTO log_record (seq, type, data, sig, leaf, t_wall_ms) VALUES (?, ?, ?, ?, ?, ?)"


class KeyMismatch(RuntimeError):
    """The key file is not the key the log is signed with."""


@dataclass(frozen=True)
class Entry:
    type: str
    body: dict[str, Any]
    # the row stored with the record, in the same transaction: (seq, t_wall_ms) -> (model, row)
    derive: Callable[[int, int], tuple[type[pw.Model], dict[str, Any]]] | None = field(default=None, compare=False)
    rotate_to: SigningKey | None = field(default=None, compare=False)  # keyrot: the key that signs from now on


class LogWriter:
    def __init__(
        self,
        db: pw.Database,
        key: SigningKey,
        origin: str,
        clock: Clock,
        boot_id: str,
        *,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._on_commit = on_commit
        self._key = key
        self.origin = origin
        self._clock = clock
        self._boot_id = boot_id
        self._lock = threading.Lock()
        self._head_seq = -1
        self._head_leaf = GENESIS_PREV
        self._tree = CompactRange()
        self._checkpoint_size = 0
        self._anchor = ""

    @property
    def kid(self) -> str:
        return self._key.kid

    def start(self, pending: SigningKey | None = None) -> None:
        """Load the head, and the tree from the last checkpoint plus the records after it.

        Then make sure the key matches the log: the log's current key is the first record's, or
        the one its latest rotation handed over to. ``pending`` is a key a rotation was started
        with (``rotate-key``); if the log already records the hand-over to it (the appliance
        stopped between the rotation record and the key file's replacement), it is adopted.
        """
        last = Checkpoint.select().order_by(Checkpoint.size.desc()).first()
        if last is not None:
            hashes = [base64.b64decode(h) for h in json.loads(last.compact)]
            self._tree, self._checkpoint_size = CompactRange(last.size, hashes), last.size
        query = LogRecord.select(LogRecord.seq, LogRecord.leaf).where(LogRecord.seq >= self._tree.size)
        for row in query.order_by(LogRecord.seq).iterator():
            if row.seq != self._tree.size:
                raise RuntimeError(f"the log has a gap before seq {row.seq}; the database is damaged")
            self._tree.append(bytes(row.leaf))
            self._head_seq, self._head_leaf = row.seq, bytes(row.leaf)
        if self._tree.size and self._head_seq < 0:
            row = LogRecord.get(LogRecord.seq == self._tree.size - 1)
            self._head_seq, self._head_leaf = row.seq, bytes(row.leaf)
        current = self._log_kid()
        if current is None or current == self._key.kid:
            return
        if pending is not None and current == pending.kid:
            if self._checkpoint_size < self._tree.size:
                self._checkpoint()  # the rotation record's checkpoint is the old key's to sign
            self._key = pending
            return
        raise KeyMismatch(
            f"the signing key file holds key {self._key.kid}, but the log is signed with {current}: "
            "restore this appliance's own key file (from its backup) instead of making a new one"
        )

    def _log_kid(self) -> str | None:
        """The key that signs the log's next record, as the log itself says."""
        rotation = LogRecord.select(LogRecord.data).where(LogRecord.type == "keyrot").order_by(LogRecord.seq.desc())
        row = rotation.first()
        if row is not None:
            return str(parse(bytes(row.data))["new_kid"])
        first = LogRecord.select(LogRecord.data).order_by(LogRecord.seq).first()
        return str(parse(bytes(first.data))["kid"]) if first is not None else None

    @property
    def head_seq(self) -> int:
        return self._head_seq

    def set_anchor(self, anchor: str) -> None:
        """The hash of the latest cloud cosignature: later records prove they were made after it."""
        self._anchor = anchor

    def append(self, entries: Sequence[Entry], *, then: Callable[[], None] | None = None) -> list[int]:
        """Sign and commit ``entries`` in order, and ``then`` in the same transaction; return their seqs.

        The writer owns the transaction: it takes SQLite's write lock up front (so writers from
        several terminal threads queue instead of failing on a stale snapshot) and moves its head
        only after the commit, so a failure anywhere leaves no gap and no dangling link.
        """
        if not entries and then is None:
            return []
        if self._db.in_transaction():
            raise RuntimeError("LogWriter.append must own its transaction; pass further writes as then=")
        rotate_to = entries[-1].rotate_to if entries else None
        if any(entry.rotate_to is not None for entry in entries[:-1]):
            raise ValueError("a key rotation must be the last entry appended")
        with self._lock:
            seq, prev = self._head_seq, self._head_leaf
            tree = CompactRange(self._tree.size, self._tree.hashes)
            seqs, records, derived = [], [], defaultdict(list)
            checkpoints, checkpoint_size = [], self._checkpoint_size
            common: dict[str, Any] = {"boot_id": self._boot_id, "clk": self._clock.sync_status()}
            if self._anchor:
                common["anchor"] = self._anchor
            for entry in entries:  # sign before taking the database's write lock: the transaction stays short
                seq += 1
                now_ms = to_ms(self._clock.now())
                record = make_record(
                    key=self._key,
                    log=self.origin,
                    seq=seq,
                    type=entry.type,
                    prev=prev,
                    t_wall_ms=now_ms,
                    t_boot_us=self._clock.boot_ns() // 1000,  # µs: ns would pass 2^53 after 104 days up
                    rotate_to=entry.rotate_to,
                    **common,
                    **entry.body,
                )
                prev = record.leaf
                tree.append(prev)
                records.append((seq, entry.type, record.data, record.sig, prev, now_ms))
                if tree.size - checkpoint_size >= CHECKPOINT_EVERY and entry.rotate_to is None:
                    # a big append (a terminal's backlog) still gets a checkpoint every CHECKPOINT_EVERY
                    # records, so that sync batches end at checkpoints and the cloud checks roots
                    checkpoints.append(self._checkpoint_row(tree, now_ms))
                    checkpoint_size = tree.size
                if entry.derive is not None:
                    model, row = entry.derive(seq, now_ms)
                    derived[model].append(row)
                seqs.append(seq)
            failpoints.hit("log.signed")
            with self._db.atomic("IMMEDIATE"):
                self._db.cursor().executemany(INSERT_RECORD, records)
                failpoints.hit("log.records_inserted")
                if checkpoints:
                    Checkpoint.insert_many(checkpoints).execute()
                    failpoints.hit("log.checkpoints_inserted")
                for model, rows in derived.items():
                    for chunk in range(0, len(rows), INSERT_CHUNK):
                        model.insert_many(rows[chunk : chunk + INSERT_CHUNK]).execute()
                if then is not None:
                    then()
                failpoints.hit("log.before_commit")
            failpoints.hit("log.committed")
            # committed: only now do the head and the tree move
            self._head_seq, self._head_leaf, self._tree = seq, prev, tree
            self._checkpoint_size = checkpoint_size
            if self._tree.size - self._checkpoint_size >= CHECKPOINT_EVERY or rotate_to is not None:
                self._checkpoint()
            if rotate_to is not None:
                self._key = rotate_to
        if seqs and self._on_commit is not None:
            self._on_commit(seq)
        return seqs

    def rotate(self, new_key: SigningKey, reason: str) -> int:
        """Hand the log over to ``new_key``: a keyrot record signed by the old key with the new key's
        consent, and a checkpoint by the old key right after it. Returns the record's seq."""
        return self.append([Entry("keyrot", {"reason": reason}, rotate_to=new_key)])[0]

    def checkpoint(self) -> int:
        """Sign a checkpoint of everything appended so far (if anything is new); return its size."""
        with self._lock:
            if self._tree.size > self._checkpoint_size:
                self._checkpoint()
            return self._checkpoint_size

    def _checkpoint_row(self, tree: CompactRange, now_ms: int) -> dict[str, Any]:
        tree_root = tree.root()
        checkpoint = note.Checkpoint(self.origin, tree.size, tree_root)
        return {
            "size": tree.size,
            "root": tree_root,
            "note": note.render(checkpoint, [note.sign(checkpoint, self._key)]),
            "compact": json.dumps([base64.b64encode(h).decode() for h in tree.hashes]),
            "created_ms": now_ms,
        }

    def _checkpoint(self) -> None:
        row = self._checkpoint_row(self._tree, to_ms(self._clock.now()))
        with self._db.atomic("IMMEDIATE"):
            Checkpoint.insert(**row).execute()
            failpoints.hit("log.checkpoint_inserted")
        failpoints.hit("log.checkpoint_committed")
        self._checkpoint_size = self._tree.size
