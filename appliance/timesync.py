"""Is this machine's clock synchronised, and how far off may it be? Read from the kernel.

``adjtimex(2)`` with no mode bits changes nothing and needs no privilege: chrony, ntpd and
systemd-timesyncd all steer the kernel clock through it, so its status is theirs.
"""

from __future__ import annotations

import ctypes
import ctypes.util

STA_UNSYNC = 0x0040
TIME_ERROR = 5


class _Timex(ctypes.Structure):
    _fields_ = [  # noqa: RUF012 - ctypes wants a class attribute
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


_libc = None


def kernel_clock_status() -> dict[str, int | str]:
    """``{"sync": 1|0, "src": "kernel", "err_us": maximum error in µs}`` for the ``clk`` field of records."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    timex = _Timex()
    state = _libc.adjtimex(ctypes.byref(timex))
    if state < 0:
        return {"sync": 0, "src": "unknown", "err_us": -1}
    synced = state != TIME_ERROR and not timex.status & STA_UNSYNC
    return {"sync": int(synced), "src": "kernel", "err_us": int(timex.maxerror)}
