"""ATTLOG bodies of the ADMS push protocol: one punch per line, each line parsed on its own.

A line is tab-separated and positional: ``PIN, time, status, verify, workcode, reserved...``
(``1001\\t2026-03-02 07:58:03\\t0\\t1\\t0\\t0\\t0``); the time is the terminal's wall clock, or on
some firmware a Unix time. A line that cannot be a punch (an impossible date, a missing PIN,
bytes that are not text in the terminal's encoding) is returned as a ``RejectedRecord`` with
its bytes and the reason: it never stops the rest of the batch.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

from firmware_bridge.types import STATE_UNKNOWN, RawPunch, RejectedRecord

VERIFY_UNKNOWN = 255  # the line did not say how the worker was verified
MAX_PIN_BYTES = 24  # the terminal's user id field; anything longer is not a PIN

_TIME = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})")
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
            rejected.append(RejectedRecord(serial, index, raw, str(err)))
    return punches, rejected


def parse_line(raw: bytes, *, index: int, serial: str, tz: tzinfo, encoding: str) -> RawPunch:
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
    if len(pin.encode(encoding)) > MAX_PIN_BYTES or not pin.isprintable():
        raise ValueError(f"PIN {pin!r} is not a terminal user id")
    device_time = _device_time(fields[1], tz)
    state = _int_field(fields, 2, "status", STATE_UNKNOWN)
    verify = _int_field(fields, 3, "verify", VERIFY_UNKNOWN)
    workcode = int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else 0  # text work codes stay in raw
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
    match = _TIME.fullmatch(field)
    if match:
        try:
            return datetime(*(int(g) for g in match.groups()))
        except ValueError as err:
            raise ValueError(f"impossible time {field!r}: {err}") from err
    if field.isdigit() and len(field) >= 9:  # some firmware sends Unix time (UTC by definition)
        return datetime.fromtimestamp(int(field), UTC).astimezone(tz).replace(tzinfo=None)
    raise ValueError(f"time {field!r} is neither YYYY-MM-DD hh:mm:ss nor a Unix time")


def _int_field(fields: list[str], position: int, name: str, missing: int) -> int:
    if len(fields) <= position or fields[position] == "":
        return missing
    try:
        return int(fields[position])
    except ValueError as err:
        raise ValueError(f"{name} {fields[position]!r} is not a number") from err


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
