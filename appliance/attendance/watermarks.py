"""Per-terminal watermarks: up to which instant every punch of a terminal has been read.

A terminal's watermark is the time of its last successful read, expressed on the terminal's own
clock (punches are stamped by that clock): ``last_contact + clock_offset``, less a small slack for
the time between the download and its commit. A terminal never read has none, and an offline
terminal keeps the one of its last read: both hold confirmation back, never turn into absences.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from appliance.roster.store import utc_ms
from appliance.store import TerminalHealth

READ_SLACK = timedelta(seconds=10)


def watermarks(terminals: Iterable[str]) -> dict[str, datetime]:
    names = list(terminals)
    found = {}
    for row in TerminalHealth.select().where(TerminalHealth.name.in_(names)):
        if row.last_contact_ms is None:
            continue
        found[row.name] = utc_ms(row.last_contact_ms + (row.clock_offset_ms or 0)) - READ_SLACK
    return found
