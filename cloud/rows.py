"""The rows a verified record becomes in the cloud's tables, built from its parsed fields.

Built in the parsing processes for a backlog (``cloud.prepare``) and in the worker for the rest
(``cloud.verifier``): without the appliance and the time of receipt, which the insert adds to every
row of a range (``cloud.store.bulk_insert``'s ``constants``).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger import Malformed, SignedRecord
from ledger.record import employee_of

LOG_COLUMNS = ("seq", "type", "data", "sig", "leaf", "t_wall_ms", "employee")
PUNCH_COLUMNS = ("seq", "employee", "terminal", "terminal_sn", "device_time", "at_utc_ms", "state", "verify")
LEAF = LOG_COLUMNS.index("leaf")


def log_row(fields: dict[str, Any], record: SignedRecord, leaf: bytes) -> tuple[Any, ...]:
    return (fields["seq"], fields["type"], record.data, record.sig, leaf, fields["t_wall_ms"], employee_of(fields))


def punch_row(fields: dict[str, Any]) -> tuple[Any, ...]:
    """A punch's row: the terminal's local time as it read it, and that instant in UTC (ms)."""
    term = fields["term"]
    try:
        at = datetime.fromisoformat(term["t"]).replace(tzinfo=_zone(term["tz"]))
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise Malformed(f"seq {fields['seq']}: unknown time zone {term['tz']!r}") from err
    return (
        fields["seq"],
        fields["emp"],
        str(term.get("name", "")),
        term["sn"],
        term["t"],
        int(at.timestamp() * 1000),
        term["state"],
        term["verify"],
    )


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
