"""Who a terminal knows: its counts, its users and their fingerprint templates, read over our own session.

Reads go over ``ZKSession`` (as the attendance log does) rather than pyzk: pyzk 0.9's buffered read
spins forever when a terminal closes the connection mid-transfer, its user parser slices the buffer
once per user, and its template parser loops forever on an entry that says it is empty. The cheap
question comes first (``counts``: one GET_FREE_SIZES), so that a caller asking every poll whether
anything changed costs the terminal one short exchange.

Templates are biometric data: ``FingerTemplate`` never shows its bytes in a repr, and nothing here
logs them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware_bridge.errors import TerminalProtocolError
from firmware_bridge.zk import wire
from firmware_bridge.zk.records import NAME_BYTES, FingerTemplate, UserRecord, fit_name, parse_templates, parse_users
from firmware_bridge.zk.records import user_layout as layout_of
from firmware_bridge.zk.session import ZKSession

SIZES = struct.Struct("<20i")


@dataclass(frozen=True, slots=True)
class Counts:
    """What GET_FREE_SIZES says about the terminal's users and fingers."""

    serial: str
    users: int
    fingers: int
    algorithm: str  # the ZKFinger version (~ZKFPVersion, e.g. "10"): templates of another version do not match


@dataclass(frozen=True, slots=True)
class UserTable:
    """The terminal's users, and how it stores them (what a write must match)."""

    users: tuple[UserRecord, ...]
    layout: int  # bytes per user entry: 72 (colour terminals) or 28 (older black-and-white ones)
    encoding: str

    def shown(self, name: str) -> str:
        """``name`` as this terminal will show it once written: what a comparison must use."""
        return fit_name(name, self.encoding, NAME_BYTES[self.layout])

    def numeric_only(self) -> bool:
        """The 28-byte layout keeps badge numbers as a u32: a badge like "A-17" cannot be written there."""
        return self.layout == 28


class DirectoryReader:
    """Reads over an open session; ``ZKTerminal.directory()`` opens and closes it."""

    def __init__(self, session: ZKSession, encoding: str) -> None:
        self._session = session
        self._encoding = encoding

    def counts(self) -> Counts:
        serial = self._session.option("~SerialNumber")
        reply = self._session.request(wire.CMD_GET_FREE_SIZES)
        if reply.command != wire.CMD_ACK_OK or len(reply.payload) < SIZES.size:
            raise TerminalProtocolError(f"{self._session.where}: unexpected answer to GET_FREE_SIZES ({reply.command})")
        fields = SIZES.unpack_from(reply.payload)
        try:
            algorithm = self._session.option("~ZKFPVersion")
        except TerminalProtocolError:  # firmware that does not say
            algorithm = ""
        return Counts(serial, users=fields[4], fingers=fields[6], algorithm=algorithm)

    def users(self, count: int) -> UserTable:
        """Every user; ``count`` is what ``counts()`` said (the dataset alone does not tell the layout)."""
        data = self._session.read_buffer(wire.CMD_USERTEMP_RRQ, wire.FCT_USER)
        try:
            body = _body(data)
            layout = layout_of(len(body), count)
            return UserTable(tuple(parse_users(body, count, self._encoding)), layout, self._encoding)
        except (ValueError, struct.error) as err:
            raise TerminalProtocolError(f"{self._session.where}: {err}") from err

    def templates(self) -> tuple[FingerTemplate, ...]:
        """Every fingerprint template (a buffered read of CMD_DB_RRQ with FCT_FINGERTMP)."""
        data = self._session.read_buffer(wire.CMD_DB_RRQ, wire.FCT_FINGERTMP)
        try:
            return tuple(parse_templates(_body(data)))
        except ValueError as err:
            raise TerminalProtocolError(f"{self._session.where}: {err}") from err


def _body(data: bytes) -> bytes:
    """A dataset without its u32 length prefix; ValueError if it is shorter than the prefix says."""
    total = struct.unpack_from("<I", data)[0] if len(data) >= 4 else 0
    if len(data) - 4 < total:
        raise ValueError(f"a dataset announced {total} bytes and brought {max(len(data) - 4, 0)}")
    return data[4 : 4 + total]
