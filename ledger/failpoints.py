"""Named places where a fault test kills this very process, as a power cut would.

``PUNCHPROOF_FAILPOINTS="sync.after_puback=3,ingest.before_ack=1"`` makes the third pass through
``hit("sync.after_puback")`` end the process with SIGKILL: no cleanup, no flush, nothing saved
that was not already saved. Unset (always, in production), ``hit`` is one dictionary lookup.
Both sides' fault tests use it, so it lives with the shared format rather than twice.
"""

from __future__ import annotations

import os
import signal

ENV = "PUNCHPROOF_FAILPOINTS"


def _parse(spec: str) -> dict[str, int]:
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("=")
        points[name] = int(count or 1)
    return points


_remaining = _parse(os.environ.get(ENV, ""))


def armed() -> bool:
    return bool(_remaining)


def hit(name: str) -> None:
    """Count a pass through ``name``; the pass the environment names kills the process."""
    if name not in _remaining:
        return
    _remaining[name] -= 1
    if _remaining[name] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
