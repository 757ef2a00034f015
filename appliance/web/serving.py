"""How gunicorn serves the pages: thread workers, so that a page's open event stream costs a thread.

Live updates are Server-Sent Events: each open kiosk or board holds one long response. The
default ``sync`` worker would give each one a whole process; ``gthread`` gives it one thread of a
worker's pool (an idle thread costs some tens of kB resident on a Pi), while kept-alive page
connections wait in the worker's poller without a thread. Each worker keeps ``RESERVED`` threads
out of the streams' reach, so the pages still answer when every stream slot is taken.

Gunicorn loads this module as its config (``-c python:appliance.web.serving``), for the hook
below; the command line (``punchproof appliance web``) sets the rest.
"""

from __future__ import annotations

import signal
from typing import Any

WORKER_CLASS = "gthread"
THREADS = 40  # per worker: 32 streams and 8 for everything else
RESERVED = 8
STREAMS = THREADS - RESERVED


def streams_for(threads: int) -> int:
    """Stream slots per worker for a pool of ``threads``; at least one thread stays for the pages."""
    return max(1, threads - RESERVED) if threads > RESERVED else max(1, threads // 2)


def post_worker_init(worker: Any) -> None:
    """End every live stream when the worker is told to stop, then let gunicorn stop it as usual.

    Without this a stopping worker would wait its whole graceful timeout for streams that never end.
    """
    from appliance.web import live

    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        live.stop_all()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)
