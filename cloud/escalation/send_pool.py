"""The escalation runner's sender threads: steps are handed to ``size`` threads, each sending one at a time with its
own database connection (peewee's connections are per thread), closed when the pool is. With a size of 1 a step is
sent on the calling thread, as before there were threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from cloud.store import database

T = TypeVar("T")


class SendPool:
    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._work: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> SendPool:
        if self.size > 1:
            self._threads = [
                threading.Thread(target=self._run, name=f"escalation-sender-{n}", daemon=True) for n in range(self.size)
            ]
            for thread in self._threads:
                thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        """Waits for the steps in hand: a step given to a sender is sent (or fails) before the tick ends."""
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        if not self._threads:
            _call(fn, args, future)
        else:
            self._work.put((fn, args, future))
        return future

    def _run(self) -> None:
        try:
            while (item := self._work.get()) is not None:
                fn, args, future = item
                _call(fn, args, future)
        finally:
            database.close()  # this thread's connection


def _call(fn: Callable[..., T], args: tuple[Any, ...], future: Future[T]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args))
    except BaseException as err:  # noqa: BLE001 - handed to the runner's thread, which decides
        future.set_exception(err)
