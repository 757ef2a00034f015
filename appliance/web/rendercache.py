"""The board's rows rendered once per version, filters and language in a worker, however many ask.

When the version moves, every open board fetches its rows at once (a room of screens, a shift
change): without this each fetch would lay out its page of rows again. The first
request renders, the others asking for the same key wait for it and get the same text; at most
``concurrent`` renders run at a time, which bounds a worker's memory. Entries belong to an epoch
(the board's version): a render for a new version drops every other version's, so a worker keeps
only current pages and nothing stale past the next pass or punch. A board page is kept as its UTF-8 markup and
references to its rows' texts (``board.Spliced``), which the worker keeps once for the day (``dayrows``): a page
with any Chinese in it is a ``str`` of two bytes a character, so bytes are about half the size, and each
response sends them as they are instead of encoding the text again.

The same cache keeps what a board's pages share at one version (``appliance.web.board``: the day's rows that the
filters let through, the counts), worked out by the first page asked for. ``RowFragments`` keeps each of
yesterday's open shifts rendered until it changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RenderCache(Generic[T]):
    def __init__(self, size: int = 8, concurrent: int = 2) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._epoch: Hashable = None
        self._inflight: dict[Hashable, threading.Lock] = {}
        self._renders = threading.BoundedSemaphore(concurrent)
        self.rendered = 0

    def kept(self) -> list[T]:
        """What is kept now, oldest first."""
        with self._lock:
            return list(self._entries.values())

    def get(self, key: Hashable, render: Callable[[], T], epoch: Hashable = None) -> T:
        with self._lock:
            if epoch != self._epoch:
                self._entries.clear()
                self._epoch = epoch
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            flight = self._inflight.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            with self._renders:
                body = render()
            with self._lock:
                self.rendered += 1
                if epoch == self._epoch:
                    self._entries[key] = body
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
                self._inflight.pop(key, None)
        return body


class RowFragments:
    """Rows of a long table rendered once each and kept until they change (the board's 5,000).

    A pass of the evaluator changes a few rows of the board, and every board fetching its pages again rendered
    all of them. Here each row's text is kept under its key (a worker's shift, in a language) with the hash of
    what it showed (a row is a tuple of what the template shows: Python's 64-bit hash of it, keyed per process,
    cost a tenth of a cryptographic digest of its text, and two contents of one row hashing alike is a chance of
    one in 2^64 per change); a page renders only the rows whose content changed since, and joins the texts. At
    most ``limit`` rows are kept (past it the whole store starts again); each as UTF-8 bytes."""

    def __init__(self, limit: int = 12_000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._kept: dict[Hashable, tuple[int, bytes]] = {}
        self.rendered = 0

    def texts(
        self,
        rows: Sequence[Hashable],
        key: Callable[[Any], Hashable],
        render: Callable[[Sequence[Any]], list[bytes]],
    ) -> list[bytes]:
        """Each row's text, in order; ``render`` is given the rows not kept as they are now, and returns theirs."""
        keys = [key(row) for row in rows]
        digests = [hash(row) for row in rows]
        with self._lock:
            found = [self._kept.get(k) for k in keys]
        stale = [
            n for n, (kept, digest) in enumerate(zip(found, digests, strict=True)) if kept is None or kept[0] != digest
        ]
        texts = [kept[1] if kept is not None else b"" for kept in found]
        if stale:
            fresh = render([rows[n] for n in stale])
            if len(fresh) != len(stale):
                raise RuntimeError(f"rendered {len(fresh)} rows for {len(stale)}")
            with self._lock:
                if len(self._kept) + len(stale) > self._limit:
                    self._kept.clear()
                for n, text in zip(stale, fresh, strict=True):
                    self._kept[keys[n]] = (digests[n], text)
                    texts[n] = text
                self.rendered += len(stale)
        return texts


class Throttled(Generic[T]):
    """One text per key that follows a version moving many times a second (the board's status part, with every
    punch at a shift change): rendered again at once when its ``token`` changed (what must show without delay: a
    terminal gone offline), else when the version moved and the text kept is at least ``every_s`` old, so at most
    once per ``every_s``; meanwhile the text kept is served with the version it shows, which the page compares
    with the version it was told of (it fetches again a moment later when they differ)."""

    def __init__(self, every_s: float, monotonic: Callable[[], float]) -> None:
        self._every = every_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._kept: dict[Hashable, tuple[str, str, float, T]] = {}
        self.rendered = 0

    def get(self, key: Hashable, version: str, token: str, render: Callable[[], T]) -> tuple[str, T]:
        """(the version the text shows, the text)."""
        now = self._monotonic()
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[1] == token and (kept[0] == version or now - kept[2] < self._every):
            return kept[0], kept[3]
        text = render()
        with self._lock:
            self._kept[key] = (version, token, now, text)
            self.rendered += 1
        return version, text
