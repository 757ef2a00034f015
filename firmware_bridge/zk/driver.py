"""Reading a ZK terminal's attendance log, with pyzk as the transport.

pyzk (pinned 0.9) frames the conversation; this layer fixes what it gets wrong: no ``ping``
subprocess, short timeouts, the log parsed in linear time with bad records reported instead of
aborting the download, the terminal always re-enabled and the session always closed (over a
fresh connection if the first one died), the clock offset measured at every contact, and
pyzk's errors mapped to ours with their cause.

The attendance download itself runs over our own session (``logread``): pyzk 0.9's
``read_with_buffer`` is slower and, if a terminal closes the connection in an orderly way (FIN)
mid-transfer, spins forever. The short calls (probe, users, clock, clear) still use pyzk.

Enrolment: ``directory()`` reads the terminal's counts, users and fingerprint templates over our
own session (``directory``); ``write_changes()`` adds, renames and removes users and writes and
removes templates through pyzk (``userwrite``, which says what it works around), with the terminal
disabled for the batch and re-enabled whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from zk import ZK
from zk.exception import ZKError, ZKErrorResponse

from firmware_bridge.errors import (
    TerminalAuthFailed,
    TerminalError,
    TerminalLogChanged,
    TerminalProtocolError,
    TerminalUnreachable,
)
from firmware_bridge.types import Download, LogCleared, TerminalInfo
from firmware_bridge.zk import userwrite, wire
from firmware_bridge.zk.clock import ClockCorrection, ClockPolicy, measure_offset_ms
from firmware_bridge.zk.directory import DirectoryReader
from firmware_bridge.zk.logread import SpooledLog, spool_log
from firmware_bridge.zk.records import UserRecord, parse_users
from firmware_bridge.zk.session import ZKSession

PYZK_ERRORS = (ZKError, OSError, struct.error, ValueError)
DEFAULT_CLOCK_POLICY = ClockPolicy()  # alarm above 60 s, never correct

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
        clock_policy: ClockPolicy = DEFAULT_CLOCK_POLICY,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        client_factory: Callable[..., Any] = ZK,
    ) -> None:
        self.host, self.port = host, port
        self.tz = tz
        self._comm_key = comm_key
        self._timeout = timeout
        self._encoding = encoding
        self._udp = udp
        self._clock_policy = clock_policy
        self._now = now
        self._client_factory = client_factory

    def __repr__(self) -> str:
        return f"ZKTerminal({self.host}:{self.port})"

    def download(self, since_index: int = 0, *, known_count: int | None = None) -> Download:
        """Read the log, returning the punches at positions >= ``since_index``.

        The protocol has no "records since" request, so reading means transferring the whole log:
        with ``known_count`` (the records already stored), the log is transferred only when the
        terminal's record count differs from it, and the terminal stays enabled otherwise. The
        transfer is our own session's (``logread``): pyzk's is slower and hangs on a FIN mid-read.
        The whole result is in memory: the daemon reads a part at a time (``download_spooled``).
        """
        with self.download_spooled(since_index, known_count=known_count) as spooled:
            return spooled.whole()

    def download_spooled(
        self, since_index: int = 0, *, known_count: int | None = None, spool_dir: str | Path | None = None
    ) -> SpooledLog:
        """``download``, the log kept in an unnamed file in ``spool_dir`` and parsed a part at a time
        (``SpooledLog.parts``), so that reading a terminal that holds a million records needs a part's memory.
        The session is closed when this returns; close the ``SpooledLog`` when done with it."""
        session = ZKSession(self.host, self.port, timeout=self._timeout, comm_key=self._comm_key, udp=self._udp)
        session.open()
        try:
            return spool_log(
                session,
                tz=self.tz,
                encoding=self._encoding,
                now=self._now,
                since_index=since_index,
                known_count=known_count,
                clock_policy=self._clock_policy,
                spool_dir=spool_dir,
            )
        except TerminalUnreachable:
            self._reenable_fresh()
            raise
        finally:
            session.close()

    def probe(self) -> TerminalInfo:
        """Who the terminal is, how full its log is, and how far off its clock is. Read-only."""
        conn = self._connect()
        try:
            serial = conn.get_serialnumber()
            offset_ms, device = measure_offset_ms(conn, self.tz, self._now)
            conn.read_sizes()
            return TerminalInfo(
                terminal_sn=serial,
                platform=conn.get_platform(),
                firmware=conn.get_firmware_version(),
                device_name=conn.get_device_name(),
                users=conn.users,
                records=conn.records,
                record_capacity=conn.rec_cap,
                records_left=conn.rec_av,
                clock_offset_ms=offset_ms,
                terminal_time=device,
                clock_alarm=self._clock_policy.alarm(offset_ms),
            )
        except PYZK_ERRORS as err:
            raise self._translate(err) from err
        finally:
            self._close(conn, reenable=False)

    def users(self) -> list[UserRecord]:
        """The enrolled users, names decoded with the configured encoding (GBK/GB18030 on Chinese firmware)."""
        conn = self._connect()
        try:
            conn.read_sizes()
            count = conn.users
            data, _size = conn.read_with_buffer(wire.CMD_USERTEMP_RRQ, wire.FCT_USER)
            total = struct.unpack_from("<I", data)[0] if len(data) >= 4 else 0
            return parse_users(data[4 : 4 + total], count, self._encoding)
        except PYZK_ERRORS as err:
            raise self._translate(err) from err
        finally:
            self._close(conn, reenable=False)

    @contextlib.contextmanager
    def directory(self) -> Iterator[DirectoryReader]:
        """One session for reading counts, users and templates (``DirectoryReader``), closed at the end."""
        session = ZKSession(self.host, self.port, timeout=self._timeout, comm_key=self._comm_key, udp=self._udp)
        session.open()
        try:
            yield DirectoryReader(session, self._encoding)
        finally:
            session.close()

    def write_changes(self, changes: Sequence[userwrite.Change], *, layout: int) -> list[userwrite.Outcome]:
        """Make the user and template changes, in order, the terminal disabled meanwhile (no one punches
        half-way through a user's write); one outcome per change. Raises only if the terminal cannot be
        reached at all; a connection lost half-way ends the batch with the rest marked not done."""
        if not changes:
            return []
        conn = self._connect()
        disabled = False
        try:
            conn.disable_device()
            disabled = True
            outcomes = userwrite.apply(conn, changes, layout=layout, encoding=self._encoding)
        except PYZK_ERRORS as err:  # disabling, or the refresh after the batch
            raise self._translate(err) from err
        finally:
            self._close(conn, reenable=disabled)
        done = sum(o.done for o in outcomes)
        log.info("%s: %d of %d user/template change(s) made", self, done, len(outcomes))
        return outcomes

    def correct_clock(self, policy: ClockPolicy | None = None) -> ClockCorrection | None:
        """Set the terminal's clock to ours, only if ``policy`` says so; return what was changed.

        Never called implicitly: a correction rewrites the time base of every later punch, so the
        caller records (and signs) the returned ``ClockCorrection``.
        """
        policy = policy or self._clock_policy
        conn = self._connect()
        try:
            serial = conn.get_serialnumber()
            old_offset, old_time = measure_offset_ms(conn, self.tz, self._now)
            if not policy.should_correct(old_offset):
                return None
            at = self._now()
            new_time = at.astimezone(self.tz).replace(tzinfo=None, microsecond=0)
            conn.set_time(new_time)
            new_offset, _ = measure_offset_ms(conn, self.tz, self._now)
            log.warning("%s (%s): clock set from %s to %s (%+d ms off)", self, serial, old_time, new_time, old_offset)
            return ClockCorrection(serial, old_offset, old_time, new_time, new_offset, at.astimezone(UTC))
        except PYZK_ERRORS as err:
            raise self._translate(err) from err
        finally:
            self._close(conn, reenable=False)

    def clear_log(self, acknowledged_count: int) -> LogCleared:
        """Clear the terminal's log, only if it holds exactly the ``acknowledged_count`` records
        the caller has stored, signed and had acknowledged by the cloud.

        The terminal is disabled while the count is checked and the log cleared, so no punch can
        land in between; if the count differs, nothing is cleared (``TerminalLogChanged``).
        """
        conn = self._connect()
        disabled = False
        try:
            serial = conn.get_serialnumber()
            conn.disable_device()
            disabled = True
            conn.read_sizes()
            if conn.records != acknowledged_count:
                raise TerminalLogChanged(
                    f"{self.host}:{self.port} ({serial}): 终端有 {conn.records} 条记录，"
                    f"已确认 {acknowledged_count} 条，未清除 / the terminal holds {conn.records} records "
                    f"but {acknowledged_count} are acknowledged; not cleared"
                )
            conn.clear_attendance()
            conn.refresh_data()
            conn.read_sizes()
            if conn.records != 0:
                raise TerminalProtocolError(f"{self.host}:{self.port}: still {conn.records} records after clearing")
            log.info("%s (%s): log of %d acknowledged records cleared", self, serial, acknowledged_count)
            return LogCleared(serial, acknowledged_count, self._now().astimezone(UTC))
        except PYZK_ERRORS as err:
            raise self._translate(err) from err
        finally:
            self._close(conn, reenable=disabled)

    def _connect(self) -> Any:
        with userwrite.PYZK_ENCODING:  # pyzk's constructor sets a class attribute every connection shares
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
            if "timed out" in str(err) and not self._udp and self._port_open():
                raise TerminalProtocolError(
                    f"{self.host}:{self.port}: the port accepts connections but gave no ZK answer within "
                    f"{self._timeout:g} s; is this a ZK terminal, and is the port right?"
                ) from err
            raise self._translate(err) from err
        return conn

    def _port_open(self) -> bool:
        """Only on the error path: tells "nothing there" from "something that is not a terminal"."""
        try:
            socket.create_connection((self.host, self.port), timeout=self._timeout).close()
        except OSError:
            return False
        return True

    def _close(self, conn: Any, *, reenable: bool) -> None:
        try:
            if reenable:
                conn.enable_device()
            conn.disconnect()
        except (ZKError, OSError, struct.error) as err:
            log.warning("%s: closing the session failed: %s", self, err)
            if reenable:
                self._reenable_fresh()

    def _reenable_fresh(self) -> None:
        """The session died with the terminal disabled: enable it over a new connection."""
        try:
            conn = self._connect()
        except TerminalError as err:
            log.error("%s: the terminal may be left disabled; it could not be re-enabled: %s", self, err)
            return
        try:
            conn.enable_device()
            conn.disconnect()
            log.info("%s: re-enabled over a fresh connection", self)
        except (ZKError, OSError, struct.error) as err:
            log.error("%s: the terminal may be left disabled; it could not be re-enabled: %s", self, err)

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
