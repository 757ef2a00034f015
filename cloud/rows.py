"""The rows a verified record becomes in the cloud's tables, built from its parsed fields.

Built in the parsing processes for a backlog (``cloud.ingest.prepare``) and in the worker for the rest
(``cloud.ingest.verifier``): without the appliance and the time of receipt, which the insert adds to every
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
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


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


def copy_text(rows: list[tuple[Any, ...]]) -> str:
    """Rows in PostgreSQL's COPY text format, a line each. Built where the rows are built (in the parsing
    processes for a backlog), so the worker, which waits on the database, only sends it."""
    return "".join("\t".join(map(_copy_field, row)) + "\n" for row in rows)


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return "\\\\x" + bytes(value).hex()  # bytea's hex form, its backslash escaped for COPY
    raise TypeError(f"cannot COPY a {type(value).__name__}")
