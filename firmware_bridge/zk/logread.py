"""Reading the attendance log over our own session, chunk by chunk, parsed in one pass.

``ZKTerminal.download()`` and ``punchproof bridge dump`` both use it. The transfer is ours rather
than pyzk's ``read_with_buffer``: it is faster (see bench/zk_download.py), a progress callback
sees every chunk arrive, and a connection that ends mid-transfer is an error rather than a hang.
The terminal is disabled only for the transfer and re-enabled in ``finally``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import struct
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO

from firmware_bridge.errors import TerminalError, TerminalProtocolError
from firmware_bridge.types import Download, RawPunch, RejectedRecord
from firmware_bridge.zk import wire
from firmware_bridge.zk.clock import ClockPolicy
from firmware_bridge.zk.records import AttRecord, parse_attendance, parse_users, record_size
from firmware_bridge.zk.session import ZKSession

log = logging.getLogger(__name__)

SIZES = struct.Struct("<20i")


PART_RECORDS = 5000  # records parsed and handed on at a time: what is in memory at once, whatever the log's size


def read_log(session: ZKSession, **options: Any) -> Download:
    """The punches at positions >= ``since_index``, over an open ``session`` (the caller closes it), in one
    ``Download`` held in memory; ``options`` as ``spool_log``'s."""
    with spool_log(session, spool=io.BytesIO(), **options) as spooled:
        return spooled.whole()


def spool_log(
    session: ZKSession,
    *,
    tz: tzinfo,
    encoding: str = "utf-8",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int, int], None] | None = None,
    since_index: int = 0,
    known_count: int | None = None,
    clock_policy: ClockPolicy | None = None,
    spool: BinaryIO | None = None,
    spool_dir: str | Path | None = None,
) -> SpooledLog:
    """Transfer the log into ``spool`` (by default an unnamed temporary file in ``spool_dir``, gone when closed
    or when the process dies), chunk by chunk as it arrives; the records are parsed later, a part at a time
    (``SpooledLog.parts``), after the terminal is enabled again. A terminal holding a million records (40 MB)
    then costs the reader a part's worth of memory, not the whole log parsed at once."""
    serial = session.option("~SerialNumber")
    before = now()
    device = wire.decode_time(session.device_time())
    after = now()
    offset_ms = round((device.replace(tzinfo=tz) - (before + (after - before) / 2)).total_seconds() * 1000)
    alarm = clock_policy.alarm(offset_ms) if clock_policy is not None else None
    if alarm is not None:
        log.warning("%s (%s): %s", session.where, serial, alarm)
    _users, count, left = _sizes(session)
    header = Download(serial, count, 0, (), (), offset_ms, left, alarm)
    if count == 0 or count == known_count:
        return SpooledLog(header, tz=tz, since_index=since_index)
    file = spool if spool is not None else tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 (SpooledLog closes it)
    try:
        session.request(wire.CMD_DISABLEDEVICE)  # no punches land mid-read
        try:
            users, count, left = _sizes(session)  # the count may have grown since the first look
            if count:
                session.read_buffer_into(file.write, wire.CMD_ATTLOG_RRQ, progress=progress)
            else:
                file.write(b"\0\0\0\0")
            file.seek(0)
            prefix = file.read(4)
            total = struct.unpack_from("<I", prefix)[0] if len(prefix) == 4 else 0
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
    except BaseException:
        file.close()
        raise
    read = Download(serial, count, size, (), (), offset_ms, left, alarm)
    records = total // size if size else 0
    return SpooledLog(read, tz=tz, since_index=since_index, file=file, records=records, uids=uid_map)


class SpooledLog:
    """One transfer of a terminal's log, in a file, parsed a part at a time. Close it (or use ``with``)."""

    def __init__(
        self,
        read: Download,
        *,
        tz: tzinfo,
        since_index: int,
        file: BinaryIO | None = None,
        records: int = 0,
        uids: dict[int, str] | None = None,
    ) -> None:
        self.read = read  # serial, count, record size, clock: what every part says; no records
        self._tz = tz
        self._file = file
        self._records = records
        self._uids = uids
        self._start = min(max(since_index, 0), records)

    def __enter__(self) -> SpooledLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def parts(self, per: int = PART_RECORDS, *, behind: int = 0) -> Iterator[Download]:
        """The punches at positions >= the read's ``since_index``, ``per`` records at a time, in log order;
        each part also holds the ``behind`` records before its first (``since_index`` at the least).

        A part's ``record_count`` is the position it reads up to, the last part's the terminal's count, so
        that each part can be stored as if the log ended there. At least one part, even when nothing was
        transferred (the count unchanged)."""
        if per <= 0:
            raise ValueError("per must be positive")
        if self._file is None or self._start >= self._records:
            yield self.read
            return
        for first in range(self._start, self._records, per):
            lo, end = max(self._start, first - behind), min(first + per, self._records)
            yield self._part(lo, end)

    def whole(self) -> Download:
        """Every punch at or past ``since_index``, in one ``Download``."""
        if self._file is None or self._start >= self._records:
            return self.read
        return self._part(self._start, self._records)

    def _part(self, lo: int, end: int) -> Download:
        size, serial = self.read.record_size, self.read.terminal_sn
        assert self._file is not None
        self._file.seek(4 + lo * size)
        body = self._file.read((end - lo) * size)
        punches: list[RawPunch] = []
        rejected: list[RejectedRecord] = []
        for item in parse_attendance(body, size, uid_to_user=self._uids, start_index=lo):
            if isinstance(item, AttRecord):
                punches.append(to_punch(serial, item, self._tz))
            else:
                rejected.append(RejectedRecord(serial, item.index, item.raw, item.reason))
        count = self.read.record_count if end >= self._records else end
        return dataclasses.replace(self.read, record_count=count, punches=tuple(punches), rejected=tuple(rejected))


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
