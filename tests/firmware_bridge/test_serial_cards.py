"""Card and Wiegand line readers: formats, the card table, repeats, garbage, an unplugged port."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from firmware_bridge.readers.card_reader import CardReader
from firmware_bridge.readers.cards import card_format
from firmware_bridge.readers.emulators import CardReaderEmulator
from firmware_bridge.readers.endpoints import PtyEndpoint, SocketEndpoint
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until


@pytest.mark.parametrize(
    ("fmt", "line", "card"),
    [
        ("decimal", b"0012345678\r\n", "12345678"),
        ("hex", b"00BC614E\r", "12345678"),
        ("wiegand26-hex", b"7B3039\r", "123,12345"),  # facility 0x7B, card 0x3039
        ("wiegand26-bits", b"00111101100110000001110011\r\n", "123,12345"),
        ("facility-card", b"123,12345\n", "123,12345"),
        ("decimal", b"\x020012345678\x03", "12345678"),  # STX/ETX framing
        ("regex:ID:(?P<card>[0-9]+);", b"ID:0042;\r\n", "42"),
    ],
)
def test_formats_give_one_canonical_card_id(fmt, line, card):
    assert card_format(fmt).parse(line) == card


@pytest.mark.parametrize(
    ("fmt", "line", "reason"),
    [
        ("decimal", b"12AB\r\n", "not a card number in the decimal format"),
        ("wiegand26-bits", b"10111101100110000001110011", "parity error"),
        ("decimal", b"\xff\xfe12", "not ASCII"),
    ],
)
def test_lines_that_are_not_card_numbers_say_why(fmt, line, reason):
    with pytest.raises(ValueError, match=reason):
        card_format(fmt).parse(line)


def test_a_bad_format_is_a_configuration_error():
    with pytest.raises(ValueError, match="unknown card format"):
        card_format("octal")
    with pytest.raises(ValueError, match="card"):
        card_format("regex:(?P<number>\\d+)")


class Seen:
    def __init__(self) -> None:
        self.punches: list = []
        self.rejected: list = []
        self.status: list = []


def make_reader(url: str, clock, fmt: str = "decimal") -> tuple[CardReader, Seen]:
    seen = Seen()
    reader = CardReader(
        "gate-card-1",
        url,
        cards={"0012345678": "E001", "123,12345": "E002", "87654321": "E003"},
        card_format=card_format(fmt),
        tz=PLANT_TZ,
        clock=clock,
        on_punch=seen.punches.append,
        on_rejected=seen.rejected.append,
        on_status=lambda up, why: seen.status.append((up, why)),
    )
    return reader, seen


def test_feed_maps_cards_drops_held_cards_and_reports_unknown_and_garbage(clock):
    reader, seen = make_reader("unused", clock)
    reader.feed(b"00123")
    reader.feed(b"45678\r\n0012345678\r\n")  # split across reads; then repeated while held
    clock.advance(seconds=5)
    reader.feed(b"0012345678\r\n0099999999\r\n\x00\x13\xfa#!\r\n" + b"\xaa" * 100)
    reader.feed(b"87654321\r\n")
    assert [p.user_id for p in seen.punches] == ["E001", "E001", "E003"]
    first = seen.punches[0]
    assert (first.terminal_sn, first.verify, first.state, first.uid, first.raw) == (
        "gate-card-1",
        4,
        255,
        0,
        b"0012345678",
    )
    assert first.time_source == "appliance" and first.device_time == datetime(2026, 3, 2, 8, 0)
    assert first.at_utc == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    reasons = [r.reason for r in seen.rejected]
    assert "unknown card 99999999" in reasons[0]
    assert "not a card read" in reasons[1] and "not a card read" in reasons[2]
    assert seen.rejected[2].raw == b"\xaa" * 100, "a flood without a line end is dropped as one rejection"


@pytest.fixture(params=["pty", "socket"])
def endpoint(request, tmp_path) -> Iterator[PtyEndpoint | SocketEndpoint]:
    ep = PtyEndpoint(tmp_path / "ttyCARD").plug() if request.param == "pty" else SocketEndpoint().plug()
    yield ep
    ep.unplug()


def opened(reader: CardReader, endpoint) -> bool:
    return bool(reader.loop.available) and (not isinstance(endpoint, SocketEndpoint) or endpoint.connected)


def test_reads_over_a_real_port_with_garbage_then_unplugged_and_back(endpoint, clock):
    reader, seen = make_reader(endpoint.url, clock, "wiegand26-hex")
    device = CardReaderEmulator(endpoint, line_end=b"\r")
    reader.start()
    try:
        wait_until(lambda: opened(reader, endpoint), 5, "the port to open")
        device.write_raw(b"\x00\xff\x17garbage\r")
        device.present_wiegand26_hex(123, 12345)
        wait_until(lambda: seen.punches, 5, "a punch")
        assert seen.punches[0].user_id == "E002" and seen.punches[0].raw == b"7B3039"
        assert len(seen.rejected) == 1 and "not a card read" in seen.rejected[0].reason

        endpoint.unplug()
        wait_until(lambda: reader.loop.available is False, 5, "the unplug to be noticed")
        wait_until(lambda: "cannot open serial port" in reader.loop.last_error, 5, "reopening to fail clearly")
        assert seen.status[-1][0] is False
        endpoint.replug()
        wait_until(lambda: opened(reader, endpoint) and reader.loop.opens == 2, 10, "the reader to reconnect")
        clock.advance(seconds=10)
        device.present_wiegand26_hex(123, 12345)
        wait_until(lambda: len(seen.punches) == 2, 5, "a punch after reconnecting")
        assert seen.status[-1] == (True, "")
    finally:
        reader.stop()


def test_construction_does_no_io(clock):
    make_reader("/nonexistent/ttyUSB9", clock)


def test_wiegand26_bits_from_the_emulator_with_and_without_parity(tmp_path, clock):
    endpoint = PtyEndpoint(tmp_path / "ttyW26").plug()
    reader, seen = make_reader(endpoint.url, clock, "wiegand26-bits")
    device = CardReaderEmulator(endpoint)
    reader.start()
    try:
        wait_until(lambda: reader.loop.available, 5, "the port to open")
        device.present_wiegand26_bits(123, 12345, break_parity=True)
        device.present_wiegand26_bits(123, 12345)
        wait_until(lambda: seen.punches, 5, "a punch")
        assert [p.user_id for p in seen.punches] == ["E002"]
        assert "parity error" in seen.rejected[0].reason
    finally:
        reader.stop()
        endpoint.unplug()


def test_the_emulator_entry_point_serves_a_card_reader_on_a_tcp_port(clock):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from firmware_bridge.readers.emulators import main; sys.exit(main(sys.argv[1:]))",
        ]
        + ["card", "--listen", "127.0.0.1:0", "--every", "0.05", "--cards", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().split(" at ")[1].strip()
        assert url.startswith("socket://127.0.0.1:")
        reader, seen = make_reader(url, clock)
        reader.start()
        try:
            wait_until(lambda: seen.rejected, 10, "a read from the emulator process")
            assert "unknown card 10001" in seen.rejected[0].reason
        finally:
            reader.stop()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
