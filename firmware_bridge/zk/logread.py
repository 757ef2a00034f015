"""Reading the attendance log over our own session, chunk by chunk, parsed in one pass.

``ZKTerminal.download()`` and ``punchproof bridge dump`` both use it. The transfer is ours rather
than pyzk's ``read_with_buffer``: it is faster (see bench/zk_download.py), a progress callback
sees every chunk arrive, and a connection that ends mid-transfer is an error rather than a hang.
The terminal is disabled only for the transfer and re-enabled in ``finally``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from firmware_bridge.errors import TerminalError, TerminalProtocolError
from firmware_bridge.types import Download, RawPunch, RejectedRecord
from firmware_bridge.zk import wire
from firmware_bridge.zk.clock import ClockPolicy
from firmware_bridge.zk.records import AttRecord, parse_attendance, parse_users, record_size
from firmware_bridge.zk.session import ZKSession

log = logging.getLogger(__name__)

SIZES = struct.Struct("<20i")


def read_log(
    session: ZKSession,
    *,
    tz: tzinfo,
    encoding: str = "utf-8",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int, int], None] | None = None,
    since_index: int = 0,
    known_count: int | None = None,
    clock_policy: ClockPolicy | None = None,
) -> Download:
    """The punches at positions >= ``since_index``, over an open ``session`` (the caller closes it).

    With ``known_count`` (the records already stored) the log is transferred only when the
    terminal's count differs, and the terminal is not disabled otherwise.
    """
    serial = session.option("~SerialNumber")
    before = now()
    device = wire.decode_time(session.device_time())
    after = now()
    offset_ms = round((device.replace(tzinfo=tz) - (before + (after - before) / 2)).total_seconds() * 1000)
    alarm = clock_policy.alarm(offset_ms) if clock_policy is not None else None
    if alarm is not None:
        log.warning("%s (%s): %s", session.where, serial, alarm)
    _users, count, left = _sizes(session)
    if count == 0 or count == known_count:
        return Download(serial, count, 0, (), (), offset_ms, left, alarm)
    session.request(wire.CMD_DISABLEDEVICE)  # no punches land mid-read
    try:
        users, count, left = _sizes(session)  # the count may have grown since the first look
        data = session.read_buffer(wire.CMD_ATTLOG_RRQ, progress=progress) if count else b"\0\0\0\0"
        total = struct.unpack_from("<I", data)[0]
        size = record_size(total, count)
        uid_map = None
        if size == 8:
            user_data = session.read_buffer(wire.CMD_USERTEMP_RRQ, wire.FCT_USER)
            uid_map = {u.uid: u.user_id for u in parse_users(user_data[4:], users, encoding)}
    except ValueError as err:
        raise TerminalProtocolError(f"{session.where}: {err}") from err
    finally:
        try:
            session.request(wire.CMD_ENABLEDEVICE)
        except TerminalError as err:
            log.error("%s: could not re-enable the terminal: %s", session.where, err)
    punches: list[RawPunch] = []
    rejected: list[RejectedRecord] = []
    start = min(max(since_index, 0), count)
    body = data[4 + start * size : 4 + total]
    for item in parse_attendance(body, size, uid_to_user=uid_map, start_index=start):
        if isinstance(item, AttRecord):
            punches.append(to_punch(serial, item, tz))
        else:
            rejected.append(RejectedRecord(serial, item.index, item.raw, item.reason))
    return Download(serial, count, size, tuple(punches), tuple(rejected), offset_ms, left, alarm)


def to_punch(serial: str, rec: AttRecord, tz: tzinfo) -> RawPunch:
    """A parsed record as a punch: the terminal's reading kept, UTC derived once, here."""
    return RawPunch(
        terminal_sn=serial,
        user_id=rec.user_id,
        uid=rec.uid,
        device_time=rec.time,
        at_utc=rec.time.replace(tzinfo=tz).astimezone(UTC),
        verify=rec.verify,
        state=rec.state,
        workcode=rec.workcode,
        index=rec.index,
        raw=rec.raw,
    )


def _sizes(session: ZKSession) -> tuple[int, int, int]:
    """Users, records and records left, from CMD_GET_FREE_SIZES."""
    reply = session.request(wire.CMD_GET_FREE_SIZES)
    if reply.command != wire.CMD_ACK_OK or len(reply.payload) < SIZES.size:
        raise TerminalProtocolError(f"{session.where}: unexpected answer to GET_FREE_SIZES ({reply.command})")
    fields = SIZES.unpack_from(reply.payload)
    return fields[4], fields[8], fields[19]
