"""Group commit: punches arriving one by one share a transaction (one fsync) per short window.

At shift change thousands of workers punch within minutes; an fsync per punch would wear the
SD card and fall behind. Each submitted entry waits at most ``window_s`` for companions, then all
are signed and committed together; the caller's future resolves with the seq once it is durable.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from appliance.capture import storage
from appliance.capture.punchlog import Entry, LogWriter
from appliance.clock import Clock

log = logging.getLogger(__name__)


class GroupCommitter:
    def __init__(
        self,
        writer: LogWriter,
        clock: Clock,
        *,
        window_s: float = 0.05,
        max_batch: int = 512,
        state_dir: object = "the state directory",
    ) -> None:
        self._writer = writer
        self._state_dir = state_dir  # named in the disk-full alarm
        self._clock = clock
        self._window = window_s
        self._max = max_batch
        self._queue: queue.SimpleQueue[tuple[Entry, Future[int]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def submit(self, entry: Entry) -> Future[int]:
        future: Future[int] = Future()
        self._queue.put((entry, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = self._clock.monotonic() + self._window
            while len(batch) < self._max:
                remaining = deadline - self._clock.monotonic()
                try:
                    item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Entry, Future[int]]]) -> None:
        try:
            seqs = self._writer.append([entry for entry, _ in batch])
        except Exception as err:  # every waiting caller learns it, and the punches stay on the terminal
            if storage.is_disk_full(err):
                storage.EPISODE.failed(log, len(batch), self._state_dir)
            else:
                log.exception("committing %d entries failed", len(batch))
            for _, future in batch:
                future.set_exception(err)
            return
        storage.EPISODE.succeeded(log)
        self.commits += 1
        for (_, future), seq in zip(batch, seqs, strict=True):
            future.set_result(seq)
