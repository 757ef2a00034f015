"""The senders' writes on SQLite: one writer at a time (``one_writer``), and several senders' short writes committed
together (``together``).

On SQLite every commit waits for the disk (``synchronous = full``: the WAL is synced), and only one connection
writes at a time, so sixteen sender threads each committing their own claim, notice and result queue up behind one
sync each: some 5 ms apiece, three or four per message, and the provider's 100 ms became the smaller part of a send.
``together`` keeps each write exactly as durable — the caller returns only once its write is committed, and a
message is still claimed (committed) before it is sent — but the writes handed in while another commit was under
way share the next one. PostgreSQL syncs its concurrent commits together itself: there each write is its own
transaction on its own thread's connection, as before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import peewee as pw

from cloud.store import database, write_transaction

T = TypeVar("T")
_WRITER = threading.RLock()


@contextmanager
def one_writer() -> Iterator[None]:
    """On SQLite, the threads of this process that write take turns here, waiting as long as it takes, rather than in
    SQLite's busy handler, which favours no one and gives up after busy_timeout: with several senders at once, one
    could wait out the timeout and fail a send that went out. (PostgreSQL locks rows: nothing to do.)"""
    if isinstance(database.obj, pw.SqliteDatabase):
        with _WRITER:
            yield
    else:
        yield


class _Write(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


_waiting: deque[_Write[object]] = deque()
_waiting_lock = threading.Lock()


def together(fn: Callable[[], T]) -> T:
    """Run ``fn`` (a few statements, no waiting on anything but the database) in a write transaction, and return its
    result once that is committed; what it raises is raised here, its statements undone. On SQLite the thread that
    gets the writer's turn commits, in one transaction, every write handed in by then, each in a savepoint of its
    own (one that raises is undone alone). Inside a transaction of the caller's, ``fn`` is simply part of it."""
    if not isinstance(database.obj, pw.SqliteDatabase):
        with write_transaction():
            return fn()
    if database.in_transaction():  # the caller commits: nothing of another thread may ride on its transaction
        with one_writer(), database.atomic():
            return fn()
    write = _Write(fn)
    with _waiting_lock:
        _waiting.append(write)  # type: ignore[arg-type]
    with _WRITER:
        if not write.done:  # else an earlier turn committed it
            with _waiting_lock:
                batch = list(_waiting)
                _waiting.clear()
            _commit(batch)
    if write.error is not None:
        raise write.error
    return write.result  # type: ignore[return-value]


def _commit(batch: list[_Write[object]]) -> None:
    if len(batch) == 1:  # alone: its own transaction, undone whole if it raises
        [write] = batch
        try:
            with write_transaction():
                write.result = write.fn()
        except Exception as err:  # noqa: BLE001 - raised in the thread that handed the write in
            write.error = err
        finally:
            write.done = True
        return
    try:
        with write_transaction():
            for write in batch:
                try:
                    with database.atomic():  # a savepoint
                        write.result = write.fn()
                except Exception as err:  # noqa: BLE001 - raised in the thread that handed the write in
                    write.error = err
    except BaseException as err:  # the commit failed: nothing of the batch is stored
        for write in batch:
            if write.error is None:
                write.error, write.result = err, None
        raise
    finally:
        for write in batch:
            write.done = True
