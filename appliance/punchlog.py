"""Appending to the signed log: one writer, gapless seq, each record chained and signed.

Records and the rows derived from them are committed in one transaction, so a crash leaves
either both or neither. Several records share one commit (one fsync) when they arrive together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from appliance.clock import Clock, to_ms
from appliance.store import LogRecord
from ledger import GENESIS_PREV, SigningKey, make_record


@dataclass(frozen=True)
class Entry:
    type: str
    body: dict[str, Any]
    derive: Callable[[int, int], None] | None = field(default=None, compare=False)  # (seq, t_wall_ms)


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

    def start(self) -> None:
        last = LogRecord.select().order_by(LogRecord.seq.desc()).first()
        if last is not None:
            self._head_seq, self._head_leaf = last.seq, bytes(last.leaf)

    @property
    def head_seq(self) -> int:
        return self._head_seq

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
        with self._lock:
            seq, prev = self._head_seq, self._head_leaf
            seqs = []
            with self._db.atomic("IMMEDIATE"):
                for entry in entries:
                    seq += 1
                    now_ms = to_ms(self._clock.now())
                    record = make_record(
                        key=self._key,
                        log=self.origin,
                        seq=seq,
                        type=entry.type,
                        prev=prev,
                        t_wall_ms=now_ms,
                        t_boot_ns=self._clock.boot_ns(),
                        boot_id=self._boot_id,
                        **entry.body,
                    )
                    prev = record.leaf
                    LogRecord.insert(
                        seq=seq, type=entry.type, data=record.data, sig=record.sig, leaf=prev, t_wall_ms=now_ms
                    ).execute()
                    if entry.derive is not None:
                        entry.derive(seq, now_ms)
                    seqs.append(seq)
                if then is not None:
                    then()
            self._head_seq, self._head_leaf = seq, prev  # committed: only now does the head move
        if seqs and self._on_commit is not None:
            self._on_commit(seq)
        return seqs
