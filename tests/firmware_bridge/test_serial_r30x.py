"""The R30x EF01 protocol: golden frames, checksums, garbage; the reader against the emulated module."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from firmware_bridge.readers import r30x
from firmware_bridge.readers.emulators import R30xEmulator
from firmware_bridge.readers.endpoints import PtyEndpoint, SocketEndpoint
from firmware_bridge.readers.fingerprint import FingerprintReader
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

# Worked frames from DEVICES.md §4.1
GEN_IMG = "ef 01 ff ff ff ff 01 00 03 01 00 05"
IMG2TZ = "ef 01 ff ff ff ff 01 00 04 02 01 00 08"
SEARCH = "ef 01 ff ff ff ff 01 00 08 04 01 00 00 00 a3 00 b1"
VFY_PWD = "ef 01 ff ff ff ff 01 00 07 13 00 00 00 00 00 1b"
FOUND_5 = "ef 01 ff ff ff ff 07 00 07 00 00 05 00 64 00 77"
NOT_FOUND = "ef 01 ff ff ff ff 07 00 07 09 00 00 00 00 00 17"


def test_commands_encode_to_the_golden_frames():
    assert r30x.command(r30x.GEN_IMG).encode() == bytes.fromhex(GEN_IMG)
    assert r30x.command(r30x.IMG2TZ, b"\x01").encode() == bytes.fromhex(IMG2TZ)
    assert r30x.search(1, 0, 163).encode() == bytes.fromhex(SEARCH)
    assert r30x.command(r30x.VFY_PWD, b"\x00\x00\x00\x00").encode() == bytes.fromhex(VFY_PWD)
    assert r30x.ack(0x00, b"\x00\x05\x00\x64").encode() == bytes.fromhex(FOUND_5)
    assert r30x.ack(0x09, b"\x00\x00\x00\x00").encode() == bytes.fromhex(NOT_FOUND)


def test_golden_replies_decode_and_garbage_between_packets_is_skipped():
    deframer = r30x.Deframer()
    stream = b"\x00\xff\xef" + bytes.fromhex(FOUND_5) + b"noise\xef\x01" + bytes.fromhex(NOT_FOUND)
    found, missing = [item for i in range(0, len(stream), 5) for item in deframer.feed(stream[i : i + 5])]
    assert (found.pid, found.code, found.payload[1:]) == (r30x.PID_ACK, 0x00, b"\x00\x05\x00\x64")
    assert missing.code == r30x.NOT_FOUND
    assert deframer.skipped == 3 + 7


def test_a_packet_with_a_bad_checksum_is_discarded_with_a_clear_error_and_the_next_one_reads():
    bad = bytearray.fromhex(FOUND_5)
    bad[-1] ^= 0x01
    error, good = r30x.Deframer().feed(bytes(bad) + bytes.fromhex(NOT_FOUND))
    assert isinstance(error, r30x.R30xChecksumError) and "checksum 0x0076, expected 0x0077" in str(error)
    assert isinstance(good, r30x.Packet) and good.code == r30x.NOT_FOUND


class Punches:
    def __init__(self) -> None:
        self.punches: list = []
        self.rejected: list = []
        self.status: list = []


@pytest.fixture(params=["socket", "pty"])
def endpoint(request, tmp_path) -> Iterator[SocketEndpoint | PtyEndpoint]:
    ep = SocketEndpoint().plug() if request.param == "socket" else PtyEndpoint(tmp_path / "ttyFINGER").plug()
    yield ep
    ep.unplug()


@pytest.fixture
def module(endpoint) -> Iterator[R30xEmulator]:
    emulator = R30xEmulator(endpoint, password=0x1234).start()
    emulator.enroll(5, "zhang-right-index")
    emulator.enroll(6, "li-left-thumb")
    emulator.enroll(7, "visitor")
    yield emulator
    emulator.stop()


@pytest.fixture
def reader(endpoint, module, clock) -> Iterator[tuple[FingerprintReader, Punches]]:
    seen = Punches()
    r = FingerprintReader(
        "kiosk-fp-1",
        endpoint.url,
        pages={5: "E005", 6: "E006"},
        tz=PLANT_TZ,
        clock=clock,
        password=0x1234,
        on_punch=seen.punches.append,
        on_rejected=seen.rejected.append,
        on_status=lambda up, why: seen.status.append((up, why)),
    ).start()
    wait_until(lambda: answered(module, 0, (r30x.GEN_IMG, r30x.NO_FINGER)), 5, "the reader to poll the sensor")
    yield r, seen
    r.stop()


def answered(module: R30xEmulator, after: int, reply: tuple[int, int]) -> bool:
    with module.lock:
        return reply in module.replies[after:]


def lift(module: R30xEmulator) -> None:
    """Take the finger off, and wait until the reader has seen the empty sensor."""
    mark = len(module.replies)
    module.lift()
    wait_until(lambda: answered(module, mark, (r30x.GEN_IMG, r30x.NO_FINGER)), 5, "the lift to be seen")


def touch(module: R30xEmulator, finger: str) -> None:
    mark = len(module.replies)
    module.place(finger)
    wait_until(lambda: any(i == r30x.SEARCH for i, _ in module.replies[mark:]), 5, "a search")
    lift(module)


def test_a_finger_on_the_module_is_one_punch_for_the_mapped_employee_at_the_appliances_time(reader, module, clock):
    r, seen = reader
    module.place("zhang-right-index")
    punch = wait_until(lambda: seen.punches and seen.punches[0], 5, "a punch")
    assert (punch.terminal_sn, punch.user_id, punch.uid, punch.verify, punch.state) == ("kiosk-fp-1", "E005", 5, 1, 255)
    assert punch.time_source == "appliance", "the module has no clock: the time is ours, and the punch says so"
    assert punch.device_time == datetime(2026, 3, 2, 8, 0) and punch.at_utc == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    assert punch.raw == bytes.fromhex(FOUND_5)
    polls = len(module.commands)
    wait_until(lambda: len(module.commands) > polls + 5, 5, "the reader to keep polling")
    assert len(seen.punches) == 1, "a finger resting on the sensor is one punch"
    lift(module)
    clock.advance(minutes=5)
    touch(module, "li-left-thumb")
    wait_until(lambda: len(seen.punches) == 2, 5, "the second punch")
    assert seen.punches[1].user_id == "E006" and seen.punches[1].device_time == datetime(2026, 3, 2, 8, 5)


def test_unenrolled_fingers_and_unmapped_pages_are_reported(reader, module):
    r, seen = reader
    touch(module, "stranger")
    wait_until(lambda: len(seen.rejected) == 1, 5, "a rejection")
    assert "not identified" in seen.rejected[0].reason and seen.rejected[0].raw == bytes.fromhex(NOT_FOUND)
    touch(module, "visitor")
    wait_until(lambda: len(seen.rejected) == 2, 5, "a rejection")
    assert "page 7 is not mapped to anyone" in seen.rejected[1].reason
    assert seen.punches == []


def test_bad_checksums_and_garbage_are_reported_and_the_reader_carries_on(reader, module):
    r, seen = reader
    with module.lock:
        module.corrupt_replies = 2
        module.noise = b"\x00\xef\x01\x13garbage"
    wait_until(lambda: r.bad_replies == 2, 5, "the bad replies to be seen")
    module.place("zhang-right-index")
    wait_until(lambda: seen.punches, 5, "a punch after the bad packets")
    assert [p.user_id for p in seen.punches] == ["E005"]
    assert r.loop.opens == 1, "a few bad packets are not a reason to reopen the port"


def test_a_module_that_only_sends_bad_packets_is_reported_unavailable(reader, module):
    r, seen = reader
    with module.lock:
        module.corrupt_replies = 10**6
    wait_until(lambda: r.loop.available is False, 5, "the reader to give up on the port")
    assert "checksum" in r.loop.last_error
    with module.lock:
        module.corrupt_replies = 0
    wait_until(lambda: r.loop.available, 10, "the reader to reopen the port")


def test_unplugged_module_is_a_clear_error_and_the_reader_reconnects(reader, module, endpoint):
    r, seen = reader
    endpoint.unplug()
    wait_until(lambda: r.loop.available is False, 5, "the loss to be noticed")
    assert seen.status[-1][0] is False
    assert "lost" in seen.status[-1][1] or "cannot open" in seen.status[-1][1]
    wait_until(lambda: "cannot open serial port" in r.loop.last_error, 5, "reopening to fail")
    endpoint.replug()
    wait_until(lambda: r.loop.available, 10, "the reader to reconnect")
    assert r.loop.opens == 2
    module.place("li-left-thumb")
    wait_until(lambda: seen.punches, 5, "a punch after reconnecting")
    assert seen.punches[0].user_id == "E006"


def test_a_wrong_password_keeps_the_reader_unavailable_with_the_reason(endpoint, module, clock):
    seen = Punches()
    r = FingerprintReader(
        "kiosk-fp-2",
        endpoint.url,
        pages={},
        tz=PLANT_TZ,
        clock=clock,
        password=1,
        on_punch=seen.punches.append,
        on_rejected=seen.rejected.append,
    ).start()
    try:
        wait_until(lambda: r.loop.available is False and "password" in r.loop.last_error, 5, "the refusal")
    finally:
        r.stop()


def test_construction_does_no_io(clock):
    FingerprintReader(
        "x", "/nonexistent/tty", pages={}, tz=PLANT_TZ, clock=FrozenClock(), on_punch=print, on_rejected=print
    )
