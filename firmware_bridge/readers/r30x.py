"""The R30x / ZFM-20 / AS608 fingerprint-module UART protocol ("EF01" packets).

A packet, big-endian: ``EF 01 | address u32 | PID u8 | LEN u16 | payload | SUM u16`` where LEN
counts the payload and the checksum, and SUM is the low 16 bits of PID + both LEN bytes + every
payload byte. PID 01 command, 02 data, 07 acknowledgement, 08 end of data. An
acknowledgement's first payload byte is the confirmation code.

Bytes that do not start a packet are skipped (and counted); a packet whose checksum is wrong
is discarded and reported as ``R30xChecksumError``: a module's answer is never trusted unread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware_bridge.errors import TerminalProtocolError

START = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
HEAD = struct.Struct(">2sIBH")  # start, address, PID, length

PID_COMMAND, PID_DATA, PID_ACK, PID_END = 0x01, 0x02, 0x07, 0x08

GEN_IMG = 0x01  # capture a finger image
IMG2TZ = 0x02  # image -> character file in buffer 1 or 2
SEARCH = 0x04  # buffer, start page, page count -> page, score
READ_SYS_PARA = 0x0F
VFY_PWD = 0x13
TEMPLATE_COUNT = 0x1D

OK = 0x00
NO_FINGER = 0x02
NOT_FOUND = 0x09

CONFIRMATION = {
    0x00: "成功 / OK",
    0x01: "模块收包错误 / packet receive error",
    0x02: "传感器上无手指 / no finger on the sensor",
    0x03: "录入指纹图像失败 / failed to capture the image",
    0x06: "指纹图像太乱 / image too messy to find features",
    0x07: "特征点太少 / too few feature points",
    0x08: "指纹不匹配 / fingers do not match",
    0x09: "指纹库中未找到 / no matching finger in the library",
    0x0A: "特征合并失败 / failed to combine the character files",
    0x0B: "页码超出指纹库范围 / page id beyond the library",
    0x0C: "模板读取错误 / error reading the template",
    0x10: "删除模板失败 / failed to delete the template",
    0x11: "清空指纹库失败 / failed to clear the library",
    0x13: "口令不正确 / wrong password",
    0x15: "缓冲区内无有效原始图 / no valid image in the buffer",
    0x18: "读写 FLASH 出错 / flash read/write error",
    0x1A: "无效寄存器号 / invalid register",
    0x20: "地址码错误 / wrong address",
    0x21: "必须验证口令 / password must be verified first",
}


class R30xChecksumError(TerminalProtocolError):
    """A packet arrived with a checksum that does not match: it was discarded."""


def meaning(code: int) -> str:
    return CONFIRMATION.get(code, f"未知确认码 / unknown confirmation code 0x{code:02x}")


@dataclass(frozen=True, slots=True)
class Packet:
    pid: int
    payload: bytes
    address: int = DEFAULT_ADDRESS

    def encode(self) -> bytes:
        length = len(self.payload) + 2
        return HEAD.pack(START, self.address, self.pid, length) + self.payload + struct.pack(">H", self._sum(length))

    def _sum(self, length: int) -> int:
        return (self.pid + (length >> 8) + (length & 0xFF) + sum(self.payload)) & 0xFFFF

    @property
    def code(self) -> int:
        """The confirmation code of an acknowledgement."""
        return self.payload[0] if self.payload else -1


def command(instruction: int, params: bytes = b"", address: int = DEFAULT_ADDRESS) -> Packet:
    return Packet(PID_COMMAND, bytes([instruction]) + params, address)


def search(buffer: int, start: int, count: int, address: int = DEFAULT_ADDRESS) -> Packet:
    return command(SEARCH, struct.pack(">BHH", buffer, start, count), address)


def ack(code: int, data: bytes = b"", address: int = DEFAULT_ADDRESS) -> Packet:
    return Packet(PID_ACK, bytes([code]) + data, address)


class Deframer:
    """Turns a byte stream into packets; ``feed`` returns packets and errors in arrival order."""

    MAX_LENGTH = 256 + 2  # the largest payload a module sends, plus the checksum

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.skipped = 0  # bytes that were not part of any packet

    def feed(self, data: bytes) -> list[Packet | R30xChecksumError]:
        self._buffer += data
        out: list[Packet | R30xChecksumError] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                keep = 1 if self._buffer.endswith(START[:1]) else 0  # EF may be the start of a packet
                self.skipped += len(self._buffer) - keep
                del self._buffer[: len(self._buffer) - keep]
                return out
            if start:
                self.skipped += start
                del self._buffer[:start]
            if len(self._buffer) < HEAD.size:
                return out
            _start, address, pid, length = HEAD.unpack_from(self._buffer)
            if pid not in (PID_COMMAND, PID_DATA, PID_ACK, PID_END) or not 2 <= length <= self.MAX_LENGTH:
                self.skipped += 1  # EF 01 that is not a header: skip it and look further
                del self._buffer[:1]
                continue
            end = HEAD.size + length
            if len(self._buffer) < end:
                return out
            frame = bytes(self._buffer[:end])
            del self._buffer[:end]
            packet = Packet(pid, frame[HEAD.size : end - 2], address)
            (received,) = struct.unpack_from(">H", frame, end - 2)
            if received != packet._sum(length):
                out.append(
                    R30xChecksumError(
                        f"指纹模块数据包校验和错误，已丢弃 / R30x packet checksum 0x{received:04x}, expected "
                        f"0x{packet._sum(length):04x}; packet discarded: {frame.hex(' ')}"
                    )
                )
            else:
                out.append(packet)
