"""Reading a ZK terminal's attendance log, with pyzk as the transport.

pyzk (pinned 0.9) frames the conversation; this layer fixes what it gets wrong: no ``ping``
subprocess, short timeouts, the log parsed in linear time with bad records reported instead of
aborting the download, the terminal always re-enabled and the session always closed, the
clock offset measured at every read, and pyzk's errors mapped to ours with their cause.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from zk import ZK
from zk.exception import ZKError, ZKErrorResponse

from firmware_bridge.errors import TerminalAuthFailed, TerminalError, TerminalProtocolError, TerminalUnreachable
from firmware_bridge.types import Download, RawPunch, RejectedRecord
from firmware_bridge.zk import wire
from firmware_bridge.zk.records import AttRecord, parse_attendance, record_size

log = logging.getLogger(__name__)


class ZKTerminal:
    """One terminal. Construction does no I/O; every ``download`` is a fresh session."""

    def __init__(
        self,
        host: str,
        port: int = 4370,
        *,
        tz: tzinfo,
        comm_key: int = 0,
        timeout: float = 5.0,
        encoding: str = "utf-8",
        udp: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        client_factory: Callable[..., Any] = ZK,
    ) -> None:
        self.host, self.port = host, port
        self.tz = tz
        self._comm_key = comm_key
        self._timeout = timeout
        self._encoding = encoding
        self._udp = udp
        self._now = now
        self._client_factory = client_factory

    def __repr__(self) -> str:
        return f"ZKTerminal({self.host}:{self.port})"

    def download(self, since_index: int = 0, *, known_count: int | None = None) -> Download:
        """Read the log, returning the punches at positions >= ``since_index``.

        The protocol has no "records since" request, so reading means transferring the whole log:
        with ``known_count`` (the records already stored), the log is transferred only when the
        terminal's record count differs from it, and the terminal stays enabled otherwise.
        """
        conn = self._connect()
        disabled = False
        try:
            serial = conn.get_serialnumber()
            offset_ms = self._measure_offset(conn)
            conn.read_sizes()
            count, capacity = conn.records, conn.rec_av
            if count == 0 or count == known_count:
                return Download(serial, count, 0, (), (), offset_ms, capacity)
            conn.disable_device()  # no punches land mid-read; re-enabled in finally, always
            disabled = True
            conn.read_sizes()  # the count may have grown since the first look
            count, capacity = conn.records, conn.rec_av
            data, _size = conn.read_with_buffer(wire.CMD_ATTLOG_RRQ)
            total = struct.unpack_from("<I", data)[0]
            size = record_size(total, count)
            uid_map = {u.uid: u.user_id for u in conn.get_users()} if size == 8 else None
            start = min(max(since_index, 0), count)
            body = data[4 + start * size : 4 + total]
            punches, rejected = [], []
            for item in parse_attendance(body, size, uid_to_user=uid_map, start_index=start):
                if isinstance(item, AttRecord):
                    punches.append(self._to_punch(serial, item))
                else:
                    log.debug("%s: record %d is not a punch: %s", serial, item.index, item.reason)
                    rejected.append(RejectedRecord(serial, item.index, item.raw, item.reason))
            return Download(serial, count, size, tuple(punches), tuple(rejected), offset_ms, capacity)
        except (ZKError, OSError, struct.error, ValueError) as err:
            raise self._translate(err) from err
        finally:
            self._close(conn, reenable=disabled)

    def _connect(self) -> Any:
        conn = self._client_factory(
            self.host,
            port=self.port,
            timeout=self._timeout,
            password=self._comm_key,
            ommit_ping=True,
            force_udp=self._udp,
            encoding=self._encoding,
        )
        try:
            conn.connect()
        except (ZKError, OSError, struct.error) as err:
            raise self._translate(err) from err
        return conn

    def _measure_offset(self, conn: Any) -> int:
        before = self._now()
        device = conn.get_time()
        after = self._now()
        ours = before + (after - before) / 2
        return round((device.replace(tzinfo=self.tz) - ours).total_seconds() * 1000)

    def _to_punch(self, serial: str, rec: AttRecord) -> RawPunch:
        return RawPunch(
            terminal_sn=serial,
            user_id=rec.user_id,
            uid=rec.uid,
            device_time=rec.time,
            at_utc=rec.time.replace(tzinfo=self.tz).astimezone(UTC),
            verify=rec.verify,
            state=rec.state,
            workcode=rec.workcode,
            index=rec.index,
            raw=rec.raw,
        )

    def _close(self, conn: Any, *, reenable: bool) -> None:
        try:
            if reenable:
                conn.enable_device()
            conn.disconnect()
        except (ZKError, OSError, struct.error) as err:
            log.warning("%s: closing the session failed: %s", self, err)

    def _translate(self, err: Exception) -> TerminalError:
        where = f"{self.host}:{self.port}"
        if isinstance(err, ZKErrorResponse) and "Unauthenticated" in str(err):
            return TerminalAuthFailed(f"{where}: the terminal refused the comm key; check [terminal].comm_key")
        if "packet invalid" in str(err):  # pyzk: the answer was not a ZK frame
            return TerminalProtocolError(
                f"{where}: the device answered, but not in the ZK protocol; "
                "is this a ZK terminal, and is the port right?"
            )
        if isinstance(err, ZKError | OSError) and not isinstance(err, ZKErrorResponse):
            return TerminalUnreachable(f"{where}: no answer ({err}); check the cable, IP address and port")
        return TerminalProtocolError(f"{where}: unexpected answer ({err}); is this a ZK terminal?")
