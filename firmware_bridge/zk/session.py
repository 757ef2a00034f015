"""A ZK protocol conversation spoken directly, for what pyzk cannot do: live events.

pyzk reads one ``recv`` per reply and assumes one frame per read, which loses the second of two
events that arrive in one TCP segment. This session frames the stream itself (``TcpDeframer``),
verifies every reply's checksum, keeps events that arrive between replies, and acknowledges
events one by one. Over UDP each datagram is one packet.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections import deque
from collections.abc import Callable

from firmware_bridge.errors import TerminalAuthFailed, TerminalProtocolError, TerminalUnreachable
from firmware_bridge.zk import wire

log = logging.getLogger(__name__)

UDP_MAX = 65535
TCP_CHUNK = 0xFFC0  # bytes per 1504 request, as the SDK and pyzk ask
UDP_CHUNK = 16 * 1024


class ZKSession:
    """One connection to one terminal. The constructor does no I/O; ``open()`` connects."""

    def __init__(self, host: str, port: int = 4370, *, timeout: float = 5.0, comm_key: int = 0, udp: bool = False):
        self.host, self.port = host, port
        self.udp = udp
        self._timeout = timeout
        self._comm_key = comm_key
        self._sock: socket.socket | None = None
        self._deframer = wire.TcpDeframer()
        self._reply_id = 0
        self.session_id = 0
        self.events: deque[wire.Packet] = deque()  # events that arrived while we waited for a reply
        self.tolerated_checksums = 0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}{'/udp' if self.udp else ''}"

    def open(self) -> None:
        """Connect and authenticate with the comm key; raises a TerminalError subclass."""
        try:
            if self.udp:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sock.settimeout(self._timeout)
                self._sock.connect((self.host, self.port))
            else:
                self._sock = socket.create_connection((self.host, self.port), timeout=self._timeout)
        except OSError as err:
            self.close_socket()
            raise TerminalUnreachable(f"{self.where}: no answer ({err}); check the cable, IP address and port") from err
        try:
            reply = self.request(wire.CMD_CONNECT)
        except TerminalUnreachable as err:
            self.close_socket()
            if self.udp:
                raise
            raise TerminalProtocolError(
                f"{self.where}: the port accepts connections but gave no ZK answer within {self._timeout:g} s; "
                "is this a ZK terminal, and is the port right?"
            ) from err
        self.session_id = reply.session_id
        if reply.command == wire.CMD_ACK_UNAUTH:
            reply = self.request(wire.CMD_AUTH, wire.make_commkey(self._comm_key, self.session_id))
        if reply.command == wire.CMD_ACK_UNAUTH:
            self.close_socket()
            raise TerminalAuthFailed(f"{self.where}: the terminal refused the comm key; check [terminal].comm_key")
        if reply.command != wire.CMD_ACK_OK:
            self.close_socket()
            raise TerminalProtocolError(f"{self.where}: connect answered with code {reply.command}")

    def send(self, command: int, payload: bytes = b"", *, reply_id: int | None = None) -> int:
        """Send one packet without waiting; returns the reply number it carried."""
        if reply_id is None:
            reply_id = self._reply_id
            self._reply_id = (self._reply_id + 1) & 0xFFFF
        body = wire.packet(command, self.session_id, reply_id, payload)
        try:
            self._socket().sendall(body if self.udp else wire.tcp_frame(body))
        except OSError as err:
            raise TerminalUnreachable(f"{self.where}: the connection dropped ({err})") from err
        return reply_id

    def request(self, command: int, payload: bytes = b"") -> wire.Packet:
        """Send a command and return its reply; events that arrive meanwhile go to ``events``."""
        reply_id = self.send(command, payload)
        while True:
            for packet in self.receive():
                if packet.command == wire.CMD_REG_EVENT:
                    self.events.append(packet)
                elif packet.reply_id == reply_id:
                    return packet
                else:
                    log.debug("%s: ignoring a stray reply %d (#%d)", self.where, packet.command, packet.reply_id)

    def receive(self, timeout: float | None = None) -> list[wire.Packet]:
        """The packets of the next read: possibly several (coalesced), possibly none (timeout)."""
        sock = self._socket()
        sock.settimeout(self._timeout if timeout is None else timeout)
        try:
            data = sock.recv(UDP_MAX if self.udp else 65536)
        except TimeoutError:
            if timeout is None:
                raise TerminalUnreachable(f"{self.where}: no answer within {self._timeout} s") from None
            return []
        except OSError as err:
            raise TerminalUnreachable(f"{self.where}: the connection dropped ({err})") from err
        if not data:
            raise TerminalUnreachable(f"{self.where}: the terminal closed the connection")
        try:
            packets = [wire.parse_packet(data)] if self.udp else self._deframer.feed(data)
        except ValueError as err:
            raise TerminalProtocolError(
                f"{self.where}: the device answered, but not in the ZK protocol ({err}); is this a ZK terminal?"
            ) from err
        for packet in packets:
            self._check(packet)
        return packets

    def ack_event(self) -> None:
        """Acknowledge one event, as real terminals expect: ACK_OK, our session, reply number 0."""
        self.send(wire.CMD_ACK_OK, reply_id=0)

    def option(self, key: str) -> str:
        reply = self.request(wire.CMD_OPTIONS_RRQ, key.encode() + b"\x00")
        if reply.command != wire.CMD_ACK_OK:
            raise TerminalProtocolError(f"{self.where}: the terminal does not know option {key!r}")
        return reply.payload.split(b"\x00", 1)[0].partition(b"=")[2].decode("ascii", errors="replace")

    def device_time(self) -> int:
        reply = self.request(wire.CMD_GET_TIME)
        if reply.command != wire.CMD_ACK_OK or len(reply.payload) < 4:
            raise TerminalProtocolError(f"{self.where}: unexpected answer to GET_TIME ({reply.command})")
        return int(struct.unpack_from("<I", reply.payload)[0])

    def read_buffer(self, inner: int, fct: int = 0, *, progress: Callable[[int, int], None] | None = None) -> bytes:
        """A buffered read (1503, then 1504 chunks): the dataset with its u32 length prefix.

        Our own transfer, so the caller sees progress chunk by chunk and a connection that ends
        mid-transfer is an error, never a hang (pyzk 0.9 spins on an orderly close here).
        """
        parts: list[bytes] = []
        self.read_buffer_into(parts.append, inner, fct, progress=progress)
        return b"".join(parts)

    def read_buffer_into(
        self,
        write: Callable[[bytes], object],
        inner: int,
        fct: int = 0,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """``read_buffer``, each chunk handed to ``write`` as it arrives (a file, for a log of a million
        records: it is never in memory whole); returns the bytes written."""
        reply = self.request(wire.CMD_PREPARE_BUFFER, struct.pack("<bhii", 1, inner, fct, 0))
        if reply.command == wire.CMD_DATA:  # small datasets come at once
            if progress is not None:
                progress(len(reply.payload), len(reply.payload))
            write(reply.payload)
            return len(reply.payload)
        if reply.command != wire.CMD_ACK_OK or len(reply.payload) < 5:
            raise TerminalProtocolError(f"{self.where}: buffered read refused ({reply.command})")
        size = struct.unpack_from("<I", reply.payload, 1)[0]
        chunk_max = UDP_CHUNK if self.udp else TCP_CHUNK
        received = 0
        for start in range(0, size, chunk_max):
            want = min(chunk_max, size - start)
            got = self._read_chunk(start, want, write)
            if got != want:
                raise TerminalProtocolError(f"{self.where}: chunk at {start} brought {got} of {want} bytes")
            received += got
            if progress is not None:
                progress(received, size)
        self.request(wire.CMD_FREE_DATA)
        return received

    def _read_chunk(self, start: int, want: int, write: Callable[[bytes], object]) -> int:
        reply_id = self.send(wire.CMD_READ_BUFFER, struct.pack("<ii", start, want))
        got = 0
        while True:
            for packet in self.receive():
                if packet.command == wire.CMD_REG_EVENT:
                    self.events.append(packet)
                elif packet.reply_id != reply_id or packet.command == wire.CMD_PREPARE_DATA:
                    continue
                elif packet.command == wire.CMD_DATA:
                    write(packet.payload)
                    got += len(packet.payload)
                elif packet.command == wire.CMD_ACK_OK:
                    return got
                else:
                    raise TerminalProtocolError(f"{self.where}: chunk at {start} answered with {packet.command}")

    def close(self) -> None:
        """Say goodbye (CMD_EXIT) if still possible, then close the socket. Never raises."""
        if self._sock is None:
            return
        try:
            self.request(wire.CMD_EXIT)
        except (TerminalUnreachable, TerminalProtocolError) as err:
            log.debug("%s: EXIT not acknowledged: %s", self.where, err)
        self.close_socket()

    def close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise TerminalUnreachable(f"{self.where}: not connected")
        return self._sock

    def _check(self, packet: wire.Packet) -> None:
        if packet.checksum_ok:
            return
        spec = wire.checksum(wire.HEADER.pack(packet.command, 0, packet.session_id, packet.reply_id) + packet.payload)
        if packet.checksum == (spec - 1) & 0xFFFF:  # clones that copy the SDK's off-by-one
            self.tolerated_checksums += 1
            return
        raise TerminalProtocolError(
            f"{self.where}: a packet with a wrong checksum ({packet.checksum:#06x}, expected {spec:#06x})"
        )
