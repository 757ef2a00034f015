"""A whole-log read over our own session, chunk by chunk, for ``punchproof bridge dump``.

Same result as ``ZKTerminal.download()`` (a ``Download``), but the transfer is ours, so a
progress callback sees every chunk arrive. The terminal is disabled only for the transfer
and re-enabled in ``finally``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from firmware_bridge.errors import TerminalError, TerminalProtocolError
from firmware_bridge.types import Download, RawPunch, RejectedRecord
from firmware_bridge.zk import wire
from firmware_bridge.zk.driver import to_punch
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
) -> Download:
    """Read every record of the log over an open ``session`` (the caller closes it)."""
    serial = session.option("~SerialNumber")
    before = now()
    device = wire.decode_time(session.device_time())
    after = now()
    offset_ms = round((device.replace(tzinfo=tz) - (before + (after - before) / 2)).total_seconds() * 1000)
    session.request(wire.CMD_DISABLEDEVICE)
    try:
        users, count, left = _sizes(session)
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
    for item in parse_attendance(data[4 : 4 + total], size, uid_to_user=uid_map):
        if isinstance(item, AttRecord):
            punches.append(to_punch(serial, item, tz))
        else:
            rejected.append(RejectedRecord(serial, item.index, item.raw, item.reason))
    return Download(serial, count, size, tuple(punches), tuple(rejected), offset_ms, left)


def _sizes(session: ZKSession) -> tuple[int, int, int]:
    """Users, records and records left, from CMD_GET_FREE_SIZES."""
    reply = session.request(wire.CMD_GET_FREE_SIZES)
    if reply.command != wire.CMD_ACK_OK or len(reply.payload) < SIZES.size:
        raise TerminalProtocolError(f"{session.where}: unexpected answer to GET_FREE_SIZES ({reply.command})")
    fields = SIZES.unpack_from(reply.payload)
    return fields[4], fields[8], fields[19]
