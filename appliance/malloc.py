"""glibc's allocator, told what a long-running process on a Pi with 1 GB needs.

CPython hands every object bigger than 512 bytes (a SQLite page, a rendered board, a row's dict)
to ``malloc``. A pass of the evaluator or a board render frees megabytes at once, but glibc keeps
freed memory in its arenas, so a process's resident size stays at its highest point forever.
``trim()`` after such a burst gives the free pages back to the kernel (``malloc_trim``: since glibc
2.8 it also releases whole free pages inside an arena, not only its top). Without glibc (musl)
both calls do nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable

M_ARENA_MAX = -8  # glibc's mallopt parameter


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(count: int = 2) -> bool:
    """Cap glibc's per-thread malloc arenas before the threads start (MALLOC_ARENA_MAX, set from inside).

    With glibc's default of eight arenas per core, each busy thread's garbage stays in an arena of
    its own, and resident memory grows by tens of MB.
    """
    libc = _libc()
    return bool(libc.mallopt(M_ARENA_MAX, count)) if libc is not None else False


def trim() -> bool:
    """Give the allocator's free pages back to the kernel; True if any were released.

    Costs a walk over the free lists (a few ms for a heap of tens of MB): call it after a burst of
    work, not per request.
    """
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class Trimmer:
    """``trim()`` at most once every ``every_s``, for callers that run often (each web request).

    Thread-safe without a lock: two threads racing past the check both trim, which is harmless.
    """

    def __init__(self, every_s: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._monotonic = monotonic
        self._last = float("-inf")
        self.trims = 0

    def maybe(self) -> bool:
        """Trim if ``every_s`` has passed since the last trim; True if this call trimmed."""
        now = self._monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        self.trims += 1
        trim()
        return True
