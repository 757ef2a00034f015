"""ATTLOG bodies of the ADMS push protocol: one punch per line, each line parsed on its own.

A line is tab-separated and positional: ``PIN, time, status, verify, workcode, reserved...``
(``1001\\t2026-03-02 07:58:03\\t0\\t1\\t0\\t0\\t0``); the time is the terminal's wall clock, or on
some firmware a Unix time. A line that cannot be a punch (an impossible date, a missing PIN,
bytes that are not text in the terminal's encoding) is returned as a ``RejectedRecord`` with
its bytes and the reason: it never stops the rest of the batch.

Every field is bounded, because whatever a line says is signed, stored and sent to head office:
a time on the terminal's clock between 2000 and 2099 (its real-time clock keeps a two-digit
year, and the ZK time encoding counts from 2000: year 0001 or 5138 is a corrupt record, not a
punch), status and verify 0-255, a work code 0-2³²-1 (the ZK record's fields), a PIN of letters
and digits only (``-5`` and ``10 01`` are not badges), a line of at most ``MAX_LINE_BYTES``. A
rejected line longer than that keeps its first ``MAX_LINE_BYTES`` bytes, with its length and
SHA-256 in the reason: one record must fit in one uplink message.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

from firmware_bridge.types import STATE_UNKNOWN, RawPunch, RejectedRecord

VERIFY_UNKNOWN = 255  # the line did not say how the worker was verified
MAX_PIN_BYTES = 24  # the terminal's user id field; anything longer is not a PIN
MAX_LINE_BYTES = 512  # a real ATTLOG line is under 100 bytes
MAX_SMALL = 255  # status and verify: one byte in the terminal's record
MAX_WORKCODE = 2**32 - 1  # four bytes in the terminal's record
EARLIEST = datetime(2000, 1, 1)  # on the terminal's clock; see the module docstring
LATEST = datetime(2100, 1, 1)  # exclusive

_TIME = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})[ T]([0-9]{1,2}):([0-9]{2}):([0-9]{2})")
_DIGITS = re.compile(r"[0-9]+")
_PERCENT_ENCODED = re.compile(rb"%(?:09|0[dD]|0[aA])")

PunchKey = tuple[str, str, str, int, int, int]


def body_bytes(raw: bytes, content_type: str) -> bytes:
    """The body as the terminal meant it.

    Terminals send raw text even when they label it ``application/x-www-form-urlencoded``; a
    body that really was percent-encoded on the way (by a proxy, or some firmware) has its tabs
    and line ends as ``%09``/``%0D%0A`` and no raw tab, and is decoded here.
    """
    if "x-www-form-urlencoded" in content_type and b"\t" not in raw and _PERCENT_ENCODED.search(raw):
        return urllib.parse.unquote_to_bytes(raw.replace(b"+", b" "))
    return raw


def split_lines(body: bytes) -> list[bytes]:
    """Lines without their CR/LF; blank lines dropped (terminals end a batch with CRLF)."""
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]


def parse_attlog(
    lines: Iterable[bytes], *, serial: str, tz: tzinfo, encoding: str
) -> tuple[list[RawPunch], list[RejectedRecord]]:
    """Each line becomes a punch or a rejected record; ``index`` is the line's place in the batch."""
    punches: list[RawPunch] = []
    rejected: list[RejectedRecord] = []
    for index, raw in enumerate(lines):
        try:
            punches.append(parse_line(raw, index=index, serial=serial, tz=tz, encoding=encoding))
        except ValueError as err:  # UnicodeDecodeError is a ValueError too
            rejected.append(_rejected(serial, index, raw, str(err)))
    return punches, rejected


def parse_line(raw: bytes, *, index: int, serial: str, tz: tzinfo, encoding: str) -> RawPunch:
    if len(raw) > MAX_LINE_BYTES:
        raise ValueError(f"line of {len(raw)} bytes is longer than any ATTLOG line ({MAX_LINE_BYTES})")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise ValueError(f"line is not {encoding} text: {err.reason} at byte {err.start}") from err
    fields = [f.strip() for f in text.split("\t")]
    if fields and fields[0].upper().startswith("PIN="):
        fields = _keyed_fields(fields)
    if len(fields) < 2:
        raise ValueError("line has fewer than two tab-separated fields (PIN and time)")
    pin = fields[0]
    if not pin:
        raise ValueError("line has no PIN")
    if len(pin.encode(encoding)) > MAX_PIN_BYTES or not all(c.isalpha() or "0" <= c <= "9" for c in pin):
        raise ValueError(f"PIN {_show(pin)} is not a terminal user id (letters and digits, {MAX_PIN_BYTES} bytes)")
    device_time = _device_time(fields[1], tz)
    state = _int_field(fields, 2, "status", STATE_UNKNOWN, MAX_SMALL)
    verify = _int_field(fields, 3, "verify", VERIFY_UNKNOWN, MAX_SMALL)
    workcode = 0  # text work codes stay in raw
    if len(fields) > 4 and _DIGITS.fullmatch(fields[4]):
        workcode = _int_field(fields, 4, "work code", 0, MAX_WORKCODE)
    return RawPunch(
        terminal_sn=serial,
        user_id=pin,
        uid=0,  # push lines carry no device slot
        device_time=device_time,
        at_utc=device_time.replace(tzinfo=tz).astimezone(UTC),
        verify=verify,
        state=state,
        workcode=workcode,
        index=index,
        raw=raw,
    )


def punch_key(p: RawPunch) -> PunchKey:
    """What the terminal said about a punch: the same key the appliance deduplicates on."""
    return (p.terminal_sn, p.user_id, p.device_time.isoformat(), p.verify, p.state, p.workcode)


def _device_time(field: str, tz: tzinfo) -> datetime:
    """The terminal's wall-clock reading, naive; only within ``EARLIEST``..``LATEST``."""
    match = _TIME.fullmatch(field)
    if match:
        try:
            when = datetime(*(int(g) for g in match.groups()))
        except ValueError as err:
            raise ValueError(f"impossible time {field!r}: {err}") from err
    elif _DIGITS.fullmatch(field) and 9 <= len(field) <= 10:  # some firmware sends Unix time (UTC by definition)
        seconds = int(field)
        if not _UNIX_EARLIEST <= seconds < _UNIX_LATEST:
            raise ValueError(f"implausible time {field!r}: a Unix time outside 2000-2099")
        when = datetime.fromtimestamp(seconds, UTC).astimezone(tz).replace(tzinfo=None)
    else:
        raise ValueError(f"time {_show(field)} is neither YYYY-MM-DD hh:mm:ss nor a Unix time")
    if not EARLIEST <= when < LATEST:
        raise ValueError(f"implausible time {field!r}: a terminal's clock reads 2000-2099")
    return when


# A day of margin each side: the zone moves the reading by less than that, and the window check follows.
_UNIX_EARLIEST = int(EARLIEST.replace(tzinfo=UTC).timestamp()) - 86_400
_UNIX_LATEST = int(LATEST.replace(tzinfo=UTC).timestamp()) + 86_400


def _int_field(fields: list[str], position: int, name: str, missing: int, maximum: int) -> int:
    """A field of ASCII digits up to ``maximum`` (``int()`` would take ``-5``, ``1_0``, ``١``, 5000 digits)."""
    if len(fields) <= position or fields[position] == "":
        return missing
    text = fields[position]
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{name} {_show(text)} is not a number")
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        raise ValueError(f"{name} {_show(text)} is out of range (0-{maximum})")
    return int(text)


def _show(value: str, limit: int = 40) -> str:
    """A field in a reason: its repr, cut short (the raw line is kept beside the reason)."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def _rejected(serial: str, index: int, raw: bytes, reason: str) -> RejectedRecord:
    if len(raw) > MAX_LINE_BYTES:
        digest = hashlib.sha256(raw).hexdigest()
        reason += f"; first {MAX_LINE_BYTES} bytes kept, SHA-256 of the whole line {digest}"
        raw = raw[:MAX_LINE_BYTES]
    return RejectedRecord(serial, index, raw, reason)


_KEYED_ORDER = ("PIN", "DATETIME", "STATUS", "VERIFIED", "WORKCODE")


def _keyed_fields(fields: list[str]) -> list[str]:
    """``PIN=1001\\tDateTime=...\\tVerified=1\\tStatus=0`` (an older documented form) to positional."""
    keyed = {}
    for field in fields:
        key, _, value = field.partition("=")
        keyed[key.strip().upper()] = value.strip()
    if "TIME" in keyed and "DATETIME" not in keyed:
        keyed["DATETIME"] = keyed["TIME"]
    if "VERIFY" in keyed and "VERIFIED" not in keyed:
        keyed["VERIFIED"] = keyed["VERIFY"]
    return [keyed.get(key, "") for key in _KEYED_ORDER]
