"""Emulated serial readers: a card reader printing lines, an R30x module answering commands.

Both sit on an endpoint (``endpoints.PtyEndpoint`` or ``SocketEndpoint``), so the readers under
test open a real tty or a real ``socket://`` URL through pyserial, unchanged. Faults are
injected on purpose: garbage bytes, a reply with a bad checksum, the device unplugged.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import struct
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from firmware_bridge.readers import r30x

log = logging.getLogger(__name__)


class Endpoint(Protocol):
    url: str

    def plug(self) -> Endpoint: ...
    def unplug(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def read(self, timeout: float) -> bytes: ...


class CardReaderEmulator:
    """Prints card reads as a reader does. ``line_end`` and the formatting follow the model."""

    def __init__(self, endpoint: Endpoint, *, line_end: bytes = b"\r\n") -> None:
        self.endpoint = endpoint
        self.line_end = line_end

    def present_decimal(self, card: int) -> None:
        self.endpoint.write(f"{card:010d}".encode() + self.line_end)

    def present_wiegand26_hex(self, facility: int, card: int) -> None:
        self.endpoint.write(f"{facility:02X}{card:04X}".encode() + self.line_end)

    def present_wiegand26_bits(self, facility: int, card: int, *, break_parity: bool = False) -> None:
        data = f"{facility:08b}{card:016b}"
        first = str(data[:12].count("1") % 2)  # even parity over P + first 12 bits
        last = str(1 - data[12:].count("1") % 2)  # odd parity over last 12 bits + P
        if break_parity:
            first = "1" if first == "0" else "0"
        self.endpoint.write((first + data + last).encode() + self.line_end)

    def write_raw(self, data: bytes) -> None:
        self.endpoint.write(data)


class R30xEmulator:
    """An R30x module: a library of enrolled fingers (page -> finger) and a sensor a test can
    put a finger on. Answers GenImg, Img2Tz, Search, VfyPwd, ReadSysPara, TemplateCount."""

    def __init__(
        self, endpoint: Endpoint, *, password: int = 0, address: int = r30x.DEFAULT_ADDRESS, capacity: int = 163
    ) -> None:
        self.endpoint = endpoint
        self.password = password
        self.address = address
        self.capacity = capacity
        self.library: dict[int, str] = {}
        self.finger: str | None = None
        self.commands: list[int] = []
        self.replies: list[tuple[int, int]] = []  # (instruction, confirmation code) answered
        self.corrupt_replies = 0  # the next n replies go out with a wrong checksum
        self.noise = b""  # sent before the next reply
        self._image: str | None = None
        self._buffer: str | None = None
        self._deframer = r30x.Deframer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def enroll(self, page: int, finger: str) -> None:
        with self.lock:
            self.library[page] = finger

    def place(self, finger: str) -> None:
        with self.lock:
            self.finger = finger

    def lift(self) -> None:
        with self.lock:
            self.finger = None

    def start(self) -> R30xEmulator:
        self._thread = threading.Thread(target=self._run, name="r30x-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.endpoint.read(0.05)
            if not data:
                continue
            for item in self._deframer.feed(data):
                if isinstance(item, r30x.R30xChecksumError):
                    self._send(r30x.ack(0x01, address=self.address))  # packet receive error
                elif item.pid == r30x.PID_COMMAND and item.address == self.address and item.payload:
                    self._send(self.answer(item.payload[0], item.payload[1:]))

    def answer(self, instruction: int, params: bytes) -> r30x.Packet:
        with self.lock:
            self.commands.append(instruction)
            code, data = self._answer(instruction, params)
            self.replies.append((instruction, code))
            return r30x.ack(code, data, address=self.address)

    def _answer(self, instruction: int, params: bytes) -> tuple[int, bytes]:
        if instruction == r30x.VFY_PWD:
            return (0x00 if params == struct.pack(">I", self.password) else 0x13), b""
        if instruction == r30x.READ_SYS_PARA:
            return 0x00, struct.pack(">HHHHIHH", 0, 9, self.capacity, 3, self.address, 2, 6)
        if instruction == r30x.TEMPLATE_COUNT:
            return 0x00, struct.pack(">H", len(self.library))
        if instruction == r30x.GEN_IMG:
            self._image = self.finger
            return (0x00 if self.finger else r30x.NO_FINGER), b""
        if instruction == r30x.IMG2TZ:
            if self._image is None:
                return 0x15, b""  # no valid image in the buffer
            self._buffer = self._image
            return 0x00, b""
        if instruction == r30x.SEARCH:
            _buffer, start, count = struct.unpack(">BHH", params[:5])
            for page in range(start, start + count):
                if self.library.get(page) == self._buffer and self._buffer is not None:
                    return 0x00, struct.pack(">HH", page, 100)
            return r30x.NOT_FOUND, b"\x00\x00\x00\x00"
        return 0x01, b""

    def _send(self, packet: r30x.Packet) -> None:
        frame = bytearray(packet.encode())
        with self.lock:
            noise, self.noise = self.noise, b""
            if self.corrupt_replies:
                self.corrupt_replies -= 1
                frame[-1] ^= 0x5A
        self.endpoint.write(noise + bytes(frame))


def main(argv: list[str] | None = None) -> int:
    """``punchproof emulate serial``: a card reader or an R30x module on a pty or a TCP port."""
    from firmware_bridge.readers.endpoints import PtyEndpoint, SocketEndpoint

    parser = argparse.ArgumentParser(prog="punchproof emulate serial", description="an emulated serial reader")
    parser.add_argument("kind", choices=("card", "r30x"))
    parser.add_argument("--listen", metavar="HOST:PORT", help="serve as socket://HOST:PORT (default: a pty)")
    parser.add_argument("--link", type=Path, help="the pty's symlink (default: in a temporary directory)")
    parser.add_argument("--every", type=float, default=5.0, metavar="SECONDS", help="a card read / a finger this often")
    parser.add_argument("--cards", type=int, default=30, help="cards 10001.. (card) or pages 0.. (r30x) in use")
    args = parser.parse_args(argv)
    if args.listen:
        host, _, port = args.listen.rpartition(":")
        endpoint: PtyEndpoint | SocketEndpoint = SocketEndpoint(host or "127.0.0.1", int(port)).plug()
    else:
        endpoint = PtyEndpoint(args.link or Path(tempfile.mkdtemp()) / f"tty{args.kind.upper()}").plug()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    rng = random.Random(args.kind)  # noqa: S311 - demo data
    print(f"emulated {args.kind} reader at {endpoint.url}", flush=True)
    if args.kind == "card":
        reader = CardReaderEmulator(endpoint)
        while not stopping.wait(args.every):
            reader.present_decimal(10001 + rng.randrange(args.cards))
    else:
        module = R30xEmulator(endpoint).start()
        for page in range(args.cards):
            module.enroll(page, f"finger-{page}")
        while not stopping.wait(args.every):
            module.place(f"finger-{rng.randrange(args.cards)}")
            stopping.wait(1.0)
            module.lift()
        module.stop()
    endpoint.unplug()
    return 0
