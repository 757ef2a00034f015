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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from appliance.clock import Clock, to_ms
from appliance.store import Checkpoint, LogRecord
from ledger import GENESIS_PREV, SigningKey, failpoints, make_record, note, parse
from ledger.merkle import CompactRange
from ledger.ownertags import TagKeys, appliance_owner, late_tag_bodies, new_key, new_key_body
from ledger.record import FORMAT_VERSION, b64, unb64

CHECKPOINT_EVERY = 256
INSERT_RECORD = "INSERT INTO log_record (seq, type, data, sig, leaf, t_wall_ms) VALUES (?, ?, ?, ?, ?, ?)"
# each worker's owner-tag key in this log (also in the log itself: the record that gave it); read at start
TAG_KEY_TABLE = (
    "CREATE TABLE IF NOT EXISTS log_tag_key (owner TEXT PRIMARY KEY, seq INTEGER NOT NULL, key BLOB NOT NULL)"
)
INSERT_TAG_KEY = "INSERT INTO log_tag_key (owner, seq, key) VALUES (?, ?, ?)"


def _insert_rows(db: pw.Database, model: type[pw.Model], rows: list[dict[str, Any]]) -> None:
    """The rows derived from the records, one prepared statement per model and set of columns: built by
    peewee (``insert_many``), the SQL text cost about as much CPU as signing the records, in the
    process that takes every punch at a shift change. Each value goes through its field's ``db_value``
    as peewee's own insert would, and errors are peewee's (``IntegrityError``...)."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shapes[tuple(row)].append(row)
    fields = model._meta.fields
    for names, same in shapes.items():
        columns = [fields[name] for name in names]
        sql = (
            f'INSERT INTO "{model._meta.table_name}" ({", ".join(f.column_name for f in columns)}) '
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        values = [tuple(f.db_value(row[f.name]) for f in columns) for row in same]
        with pw.__exception_wrapper__:
            db.cursor().executemany(sql, values)


class KeyMismatch(RuntimeError):
    """The key file is not the key the log is signed with."""


@dataclass(frozen=True)
class Entry:
    type: str
    body: dict[str, Any]
    # the row stored with the record, in the same transaction: (seq, t_wall_ms) -> (model, row)
    derive: Callable[[int, int], tuple[type[pw.Model], dict[str, Any]]] | None = field(default=None, compare=False)
    rotate_to: SigningKey | None = field(default=None, compare=False)  # keyrot: the key that signs from now on
    version: int = FORMAT_VERSION  # 1 only for the ``format`` record that switches an older log to version 2


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
        self._tags = TagKeys(appliance_owner)  # each worker's tag key in this log (owner tags, FORMAT.md)

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
        if current is not None and current != self._key.kid:
            if pending is None or current != pending.kid:
                raise KeyMismatch(
                    f"the signing key file holds key {self._key.kid}, but the log is signed with {current}: "
                    "restore this appliance's own key file (from its backup) instead of making a new one"
                )
            if self._checkpoint_size < self._tree.size:
                self._checkpoint()  # the rotation record's checkpoint is the old key's to sign
            self._key = pending
        self._learn_tag_keys()
        if self._head_seq >= 0 and parse(bytes(LogRecord.get(LogRecord.seq == self._head_seq).data))["v"] < 2:
            self._switch_to_v2()

    def _learn_tag_keys(self) -> None:
        """Each worker's tag key in this log, kept beside the log (``log_tag_key``, written in the transaction of
        the record that gave it: the worker's first in the log, or a ``tagkey`` record of the switch), so that a
        start reads a row per worker rather than the whole log."""
        self._db.execute_sql(TAG_KEY_TABLE)
        for owner, key in self._db.execute_sql("SELECT owner, key FROM log_tag_key"):
            self._tags.add(owner, bytes(key))

    def _switch_to_v2(self) -> None:
        """A log made by software before owner tags: a ``format`` record (version 1) says every later record is
        version 2; a ``tagkey`` record for each worker whose records it holds; and ``tagindex`` records giving, for
        every seq up to the switch, its owner's tag computed now (fixed only from when they are stamped: the
        report says so). One append, so a crash leaves the log either switched or not."""
        switch = self._head_seq + 1
        owners: list[tuple[int, dict[str, Any]]] = []
        query = LogRecord.select(LogRecord.seq, LogRecord.data).where(LogRecord.seq < switch).order_by(LogRecord.seq)
        for row in query.iterator():
            fields = parse(bytes(row.data))
            emp = appliance_owner(fields)
            owners.append((row.seq, {"emp": emp} if emp else {}))
        owners.append((switch, {}))  # the format record itself: nobody's
        keys = self._tags.copy()
        tagkeys = []
        for _seq, body in owners:
            emp = body.get("emp")
            if emp and emp not in keys:
                key = new_key()
                keys.add(emp, key)
                tagkeys.append(Entry("tagkey", new_key_body(body, key)))
        index = [Entry("tagindex", body) for body in late_tag_bodies(self.origin, owners, keys)]
        self.append([Entry("format", {"to": 2}, version=1), *tagkeys, *index])

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
            keys, new_keys = self._tags.copy(), []
            for entry in entries:  # sign before taking the database's write lock: the transaction stays short
                seq += 1
                now_ms = to_ms(self._clock.now())
                owner = appliance_owner(entry.body)
                given = self._tag_key_of(entry, keys)
                extra = given[2] if given else {}
                if given and given[3]:
                    new_keys.append((given[0], seq, given[1]))
                record = make_record(
                    key=self._key,
                    log=self.origin,
                    seq=seq,
                    type=entry.type,
                    prev=prev,
                    t_wall_ms=now_ms,
                    t_boot_us=self._clock.boot_ns() // 1000,  # µs: ns would pass 2^53 after 104 days up
                    rotate_to=entry.rotate_to,
                    version=entry.version,
                    **({"tag": keys.tag(self.origin, seq, owner)} if entry.version >= 2 else {}),
                    **common,
                    **entry.body,
                    **extra,
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
                if new_keys:
                    self._db.cursor().executemany(INSERT_TAG_KEY, new_keys)
                failpoints.hit("log.records_inserted")
                if checkpoints:
                    Checkpoint.insert_many(checkpoints).execute()
                    failpoints.hit("log.checkpoints_inserted")
                for model, rows in derived.items():
                    _insert_rows(self._db, model, rows)
                if then is not None:
                    then()
                failpoints.hit("log.before_commit")
            failpoints.hit("log.committed")
            # committed: only now do the head and the tree move
            self._head_seq, self._head_leaf, self._tree = seq, prev, tree
            self._checkpoint_size = checkpoint_size
            self._tags = keys
            if self._tree.size - self._checkpoint_size >= CHECKPOINT_EVERY or rotate_to is not None:
                self._checkpoint()
            if rotate_to is not None:
                self._key = rotate_to
        if seqs and self._on_commit is not None:
            self._on_commit(seq)
        return seqs

    @staticmethod
    def _tag_key_of(entry: Entry, keys: TagKeys) -> tuple[str, bytes, dict[str, str], bool] | None:
        """What a record adds for owner tags: a worker's first record in this log carries the worker's new tag key
        (its ``tagkey`` field); a ``tagkey`` record (an older log's switch) gives its own, and one asked for a
        worker who has a key by then (``give_tag_keys`` racing the worker's first punch) states that key again.
        Returns (owner, key, fields to add, whether the key is new) and adds a new key to ``keys``; None when the
        record gives no key."""
        owner = appliance_owner(entry.body)
        if owner is None or entry.version < 2:
            return None
        if "tagkey" in entry.body:
            key = unb64(entry.body["tagkey"], what="tagkey")
            keys.add(owner, key)
            return owner, key, {}, True
        if owner in keys:
            if entry.type == "tagkey":
                return owner, keys.key(owner), {"tagkey": b64(keys.key(owner))}, False
            return None
        key = new_key()
        keys.add(owner, key)
        return owner, key, {"tagkey": b64(key)}, True

    def give_tag_keys(self, owners: Iterable[str]) -> int:
        """A ``tagkey`` record for each of ``owners`` (the roster's workers) this log has given no key yet: a bundle
        for a worker who never punched at this appliance still proves that none of the worker's records here was
        withheld (without the key, a verifier cannot rule it out). Returns how many were written."""
        missing = [owner for owner in dict.fromkeys(owners) if owner and owner not in self._tags]
        if not missing:
            return 0
        return len(self.append([Entry("tagkey", {"emp": owner}) for owner in missing]))

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
