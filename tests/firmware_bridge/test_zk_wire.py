"""Golden vectors from captures of a real ZKTeco F19 (adrobinoga/zk-protocol) and from pyzk 0.9."""

import struct
from datetime import datetime

import pytest

from firmware_bridge.zk import wire
from firmware_bridge.zk.records import parse_attendance, record_size


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("0b00 0000 f38d 0300 5a4b4661636556657273696f6e00", 0x175A),  # client OPTIONS_RRQ "ZKFaceVersion"
        ("d007 0000 f38d 0a00 09", 0x6A29),  # device ACK_OK
        ("0b00 0000 c5c0 0500 7e4f5300", 0xEF58),  # OPTIONS_RRQ "~OS"
        ("f401 0000 0001 0000 64", 0xFCA7),  # realtime EF_FPFTR event
    ],
)
def test_checksum_matches_real_device_traffic(frame, expected):
    assert wire.checksum(bytes.fromhex(frame.replace(" ", ""))) == expected


def test_connect_frame_is_byte_identical_to_pyzk():
    frame = wire.tcp_frame(wire.packet(wire.CMD_CONNECT, 0, 0))
    assert frame.hex(" ") == "50 50 82 7d 08 00 00 00 e8 03 17 fc 00 00 00 00"


def test_real_realtime_attlog_frame_parses():
    frame = bytes.fromhex(
        "5050827D28000000F401AC120100000039393931313133333300000000000000000000000000000001001206191129 05".replace(
            " ", ""
        )
    )
    packets = wire.TcpDeframer().feed(frame)
    assert len(packets) == 1 and packets[0].command == wire.CMD_REG_EVENT and packets[0].checksum_ok
    payload = packets[0].payload
    assert payload[:24].rstrip(b"\x00") == b"999111333"
    assert wire.decode_time_hex(payload[26:32]) == datetime(2018, 6, 25, 17, 41, 5)


def test_deframer_handles_split_and_coalesced_frames():
    frames = wire.tcp_frame(wire.packet(2000, 7, 1)) + wire.tcp_frame(wire.packet(1501, 7, 1, b"x" * 100))
    deframer = wire.TcpDeframer()
    got = deframer.feed(frames[:5]) + deframer.feed(frames[5:30]) + deframer.feed(frames[30:])
    assert [p.command for p in got] == [2000, 1501]
    with pytest.raises(ValueError, match="not a ZK TCP frame"):
        wire.TcpDeframer().feed(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize(
    ("key", "session", "expected"),
    [(0, 0, "617d3279"), (12345, 0x1234, "6de1326b"), (123456, 0x8DF3, "297f3274")],
)
def test_comm_key_vectors(key, session, expected):
    assert wire.make_commkey(key, session).hex() == expected


def test_time_vectors():
    assert wire.encode_time(datetime(2000, 1, 1)) == 0
    assert wire.encode_time(datetime(2024, 3, 1, 7, 0, 0)) == 0x2E4C6F70
    assert wire.decode_time(0x2368B36B) == datetime(2018, 6, 25, 17, 50, 35)
    with pytest.raises(ValueError):
        wire.decode_time(wire.encode_time(datetime(2024, 2, 28)) + 2 * 86400)  # "30 February"


def test_real_40_byte_record_parses():
    raw = bytes.fromhex("0D00" + "393939313131333333".ljust(48, "0") + "01" + "6BB36823" + "00" + "00000000FF000000")
    assert record_size(len(raw), 1) == 40
    (record,) = parse_attendance(raw, 40)
    assert (record.uid, record.user_id, record.verify, record.state) == (13, "999111333", 1, 0)
    assert record.time == datetime(2018, 6, 25, 17, 50, 35)


def test_16_byte_record_and_unknown_sizes():
    raw = struct.pack(
        "<I4sBB2sI", 4242, wire.encode_time(datetime(2026, 3, 2, 8, 1)).to_bytes(4, "little"), 15, 255, b"\0\0", 7
    )
    (record,) = parse_attendance(raw, 16)
    assert (record.user_id, record.verify, record.state, record.workcode) == ("4242", 15, 255, 7)
    with pytest.raises(ValueError, match="unknown record layout"):
        record_size(41, 1)
