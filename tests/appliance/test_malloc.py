"""appliance.malloc: freed memory goes back to the kernel, and the web's trimmer keeps to its pace."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from appliance import malloc

# A child process fills its heap with 1 KiB blocks (each one a malloc of its own), keeps one block
# in 64 so that the heap cannot shrink from its top, frees the rest, and reports its resident size
# after the free and after trim(). Only trim() can give back the free pages between the keepers.
CHILD = textwrap.dedent(
    """
    import gc, os, sys
    from appliance import malloc

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    blocks = [bytes(1024) for _ in range(200_000)]  # about 200 MiB of malloc'd blocks
    keep = blocks[::64]
    del blocks
    gc.collect()
    freed = rss()
    trimmed = malloc.trim()
    print(freed, rss(), trimmed)
    """
)


def _glibc() -> bool:
    return malloc._libc() is not None


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_trim_gives_free_pages_inside_the_heap_back_to_the_kernel():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    freed, trimmed, released = int(out[0]), int(out[1]), out[2] == "True"
    assert released
    assert freed - trimmed > 100 * 2**20, (freed, trimmed)  # most of the 200 MiB, not a rounding


@pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's")
def test_limit_arenas_is_accepted_by_glibc():
    assert malloc.limit_arenas(2) is True


def test_the_trimmer_trims_at_most_once_per_period():
    now = [100.0]
    trimmer = malloc.Trimmer(2.0, monotonic=lambda: now[0])
    assert trimmer.maybe() is True  # the first request trims
    assert trimmer.maybe() is False
    now[0] += 1.9
    assert trimmer.maybe() is False
    now[0] += 0.2
    assert trimmer.maybe() is True
    assert trimmer.trims == 2
