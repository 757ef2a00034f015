"""The board's rows rendered once per version, filters and language in a worker, however many ask.

When the version moves, every open board fetches its rows at once (a room of screens, a shift
change): without this each fetch would read and render the day's 5,000 rows again. The first
request renders, the others asking for the same key wait for it and get the same text; at most
``concurrent`` renders run at a time, which bounds a worker's memory. Entries belong to an epoch
(the board's version): a render for a new version drops every other version's, so a worker keeps
only current text (a 5,000-row board is megabytes) and nothing stale past the next pass or punch.
Entries are the response's UTF-8 bytes: a page with any Chinese in it is a ``str`` of two bytes a
character, mostly ASCII markup, so bytes are about half the size, and each response sends them as
they are instead of encoding the text again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RenderCache:
    def __init__(self, size: int = 8, concurrent: int = 2) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._epoch: Hashable = None
        self._inflight: dict[Hashable, threading.Lock] = {}
        self._renders = threading.BoundedSemaphore(concurrent)
        self.rendered = 0

    def get(self, key: Hashable, render: Callable[[], bytes], epoch: Hashable = None) -> bytes:
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
