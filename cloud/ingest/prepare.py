"""Parsing batches ahead of storing them, on every core.

Storing a range needs the log's state (its head, its tree), so ranges of one log are stored one
after the other. Most of the work does not: decoding the message, parsing each record as
canonical JSON, checking its schema, position and link to the record before it, hashing it. That
part runs in a pool of processes, several batches ahead of the store, so that a backlog of a
million records is verified at the speed of all cores (``bench/cloud_backlog.py``). Only ranges
that end at a signed checkpoint are parsed ahead; the rest are verified signature by signature,
before parsing, as before.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from cloud.rows import copy_text, log_row, punch_row
from ledger import LedgerError, topics
from ledger.messages import Batch
from ledger.verify import parse_range

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checkpointed batch, parsed: what the store needs of it, in a form that crosses back from the
    parsing process cheaply (tuples and bytes, or for PostgreSQL the COPY text, no dict per record).
    Nothing in it is acted upon before ``ledger.verify.verify_parsed`` has checked the checkpoint's
    signature and root against it."""

    log: str
    first: int
    checkpoint: str
    first_prev: str  # the first record's link, checked against the stored head
    kids: list[str]  # each record's key id
    leaves: list[bytes]  # each record's leaf hash
    records: list[tuple[Any, ...]] | str  # cloud.rows.LOG_COLUMNS, or those rows as COPY text
    punches: list[tuple[Any, ...]] | str  # cloud.rows.PUNCH_COLUMNS, likewise
    punch_count: int

    @property
    def last(self) -> int:
        return self.first + len(self.leaves) - 1


def prepare(payload: bytes, *, copy: bool = False) -> Prepared | None:
    """Decode and parse a checkpointed batch; with ``copy``, its rows as PostgreSQL COPY text. None if
    it is not checkpointed, holds a key rotation, or is malformed: the store step then does all the
    work itself, and answers with the reason."""
    try:
        batch = Batch.decode(payload)
        if not batch.checkpoint:
            return None
        parsed = parse_range(batch)
        if any(fields["type"] == "keyrot" for fields, _ in parsed):
            return None
        intern = sys.intern  # one object per distinct key id and type: pickled once per batch
        records, punches = [], []
        for (fields, leaf), record in zip(parsed, batch.records, strict=True):
            fields["kid"], fields["type"] = intern(fields["kid"]), intern(fields["type"])
            records.append(log_row(fields, record, leaf))
            if fields["type"] == "punch":
                punches.append(punch_row(fields))
        kids = [fields["kid"] for fields, _ in parsed]
        leaves = [leaf for _, leaf in parsed]
        return Prepared(
            batch.log,
            batch.first,
            batch.checkpoint,
            parsed[0][0]["prev"],
            kids,
            leaves,
            copy_text(records) if copy else records,
            copy_text(punches) if copy else punches,
            len(punches),
        )
    except LedgerError:
        return None


def default_processes() -> int:
    return max(1, min(4, os.cpu_count() or 1))


PR_SET_PDEATHSIG = 1


def _parsed(future: Future[Prepared | None] | None) -> bool:
    """A batch whose parse has finished (a message that is not a batch has no future)."""
    return future is not None and future.done()


def _die_with_parent() -> None:
    """In each pool process: end when the ingest worker ends, however it ends. A worker killed with
    SIGKILL (a power-cut test, the OOM killer) would otherwise leave its parsers running forever."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: systemd's control group still ends them
        return
    if os.getppid() == 1:  # the worker died before the line above ran
        os._exit(0)


class AheadParser:
    """A pool that parses up to ``lookahead`` batches ahead of the one being stored."""

    def __init__(self, processes: int, *, lookahead: int = 16, copy: bool = False) -> None:
        self._processes = processes
        self._lookahead = lookahead
        self._copy = copy  # rows as PostgreSQL COPY text (prepare's ``copy``)
        self._pool: ProcessPoolExecutor | None = None
        self._pending: set[Future[Prepared | None]] = set()  # submitted, not yet taken
        self._broken: set[Future[Prepared | None]] = set()

    def start(self) -> AheadParser:
        # spawn, not fork: the ingest worker has threads (MQTT), and a forked child could inherit a held lock
        self._pool = ProcessPoolExecutor(
            self._processes, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
        )
        return self

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def ordered(self, take: Callable[[bool], tuple[str, bytes] | None]) -> Iterator[tuple[str, bytes, Prepared | None]]:
        """Yield messages in the order ``take`` gives them, each with its parsed batch.

        ``take(block)`` returns the next message, or None: when ``block`` is false and none is
        waiting, or when ``block`` is true and the stream has ended. A lone message is yielded at
        once; while one is stored, the pool parses those queued behind it.
        """
        for run in self.runs(take, limit=1):
            yield run[0]

    def runs(
        self, take: Callable[[bool], tuple[str, bytes] | None], *, limit: int
    ) -> Iterator[list[tuple[str, bytes, Prepared | None]]]:
        """Like ``ordered``, in runs: the next message and, if it is a batch, up to ``limit`` - 1 batches
        behind it that are already parsed. The store commits a run in one transaction: a backlog pays
        one commit (one fsync) per run instead of one per batch. A run never waits for a batch to be
        parsed, so a lone punch is not held back."""
        assert self._pool is not None, "start() first"
        window: deque[tuple[str, bytes, Future[Prepared | None] | None]] = deque()
        while True:
            if not window:
                item = take(True)
                if item is None:
                    return
                window.append(self._submit(*item))
            self._fill(window, take)
            run = [self._pop(window)]
            while len(run) < limit and run[0][2] is not None and window and _parsed(window[0][2]):
                run.append(self._pop(window))
                self._fill(window, take)
            yield run

    def _fill(self, window: deque[tuple[str, bytes, Future[Prepared | None] | None]], take) -> None:  # type: ignore[no-untyped-def]
        while len(window) < self._lookahead:
            item = take(False)
            if item is None:
                return
            window.append(self._submit(*item))

    def _pop(
        self, window: deque[tuple[str, bytes, Future[Prepared | None] | None]]
    ) -> tuple[str, bytes, Prepared | None]:
        topic, payload, future = window.popleft()
        self._pending.discard(future)  # type: ignore[arg-type]
        return topic, payload, self._result(future)

    def _result(self, future: Future[Prepared | None] | None) -> Prepared | None:
        """The parsed batch; None (the store step then parses it itself) if a pool process died under it."""
        if future is None:
            return None
        try:
            return future.result()
        except BrokenProcessPool:
            if future in self._broken:  # submitted to a pool already replaced
                return None
            self._restart()
            return None

    def _submit(self, topic: str, payload: bytes) -> tuple[str, bytes, Future[Prepared | None] | None]:
        assert self._pool is not None
        is_batch = topic.startswith(topics.PREFIX + "/") and topic.endswith("/up/batch")
        if not is_batch:
            return topic, payload, None
        try:
            future = self._pool.submit(prepare, payload, copy=self._copy)
        except BrokenProcessPool:
            self._restart()
            return topic, payload, None
        self._pending.add(future)
        return topic, payload, future

    def _restart(self) -> None:
        log.error("a batch-parsing process died; starting a new pool (meanwhile the worker parses batches itself)")
        assert self._pool is not None
        self._broken = set(self._pending)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.start()
