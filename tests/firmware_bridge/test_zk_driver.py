"""Our driver against the emulator: linear parse, bad records skipped, clock offset, clear errors."""

import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

from firmware_bridge.errors import TerminalAuthFailed, TerminalProtocolError, TerminalUnreachable
from firmware_bridge.zk import wire
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.records import encode_attendance_40
from tests.conftest import PLANT_TZ


def driver(emulator, **kwargs):
    host, port = emulator.address
    return ZKTerminal(host, port, tz=PLANT_TZ, timeout=2, encoding="gbk", **kwargs)


def test_download_keeps_user_id_state_and_terminal_time(zk_terminal, terminal_state):
    terminal_state.punch("1002", state=255, verify=15, when=datetime(2026, 3, 2, 7, 58, 3))
    download = driver(zk_terminal).download()
    (punch,) = download.punches
    assert (punch.user_id, punch.uid, punch.state, punch.verify) == ("1002", 2, 255, 15)
    assert punch.device_time == datetime(2026, 3, 2, 7, 58, 3)
    assert punch.at_utc == datetime(2026, 3, 1, 23, 58, 3, tzinfo=UTC)
    assert download.record_count == 1 and download.record_size == 40 and download.terminal_sn == "TEST-ZK-01"
    assert terminal_state.enabled, "the terminal must be re-enabled after a read"


def test_download_from_index_returns_only_newer_records(zk_terminal, terminal_state):
    for _ in range(10):
        terminal_state.punch("1001")
    download = driver(zk_terminal).download(since_index=7)
    assert [p.index for p in download.punches] == [7, 8, 9]


def test_an_impossible_date_is_reported_and_the_rest_still_arrives(zk_terminal, terminal_state):
    terminal_state.punch("1001", when=datetime(2026, 2, 27, 8, 0))
    bad = bytearray(encode_attendance_40(1, "1001", datetime(2026, 2, 28, 8, 0), 1, 0))
    bad[27:31] = (wire.encode_time(datetime(2026, 2, 28, 8, 0)) + 2 * 86400).to_bytes(4, "little")  # 30 Feb
    terminal_state.store_raw(bytes(bad))
    terminal_state.punch("1002", when=datetime(2026, 3, 1, 8, 0))
    download = driver(zk_terminal).download()
    assert [p.user_id for p in download.punches] == ["1001", "1002"]
    (rejected,) = download.rejected
    assert rejected.index == 1 and rejected.raw == bytes(bad)


def test_clock_offset_is_measured(zk_terminal, terminal_state):
    terminal_state.clock_offset = timedelta(hours=3)
    offset = driver(zk_terminal).download().clock_offset_ms
    assert abs(offset - 3 * 3600 * 1000) < 2000


def test_wrong_comm_key_is_a_clear_error(zk_terminal, terminal_state):
    terminal_state.comm_key = 4242
    with pytest.raises(TerminalAuthFailed, match="comm key"):
        driver(zk_terminal, comm_key=1).download()
    assert driver(zk_terminal, comm_key=4242).download().record_count == 0


def test_unreachable_terminal_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(TerminalUnreachable, match="no answer"):
        ZKTerminal("127.0.0.1", port, tz=PLANT_TZ, timeout=1).download()


def test_a_device_that_is_not_a_zk_terminal_is_reported():
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()

    def web_server():  # answers anything with an HTTP error, like a printer or a camera would
        with server:
            while True:
                conn, _ = server.accept()
                with conn:
                    if conn.recv(1024):
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        return

    threading.Thread(target=web_server, daemon=True).start()
    with pytest.raises(TerminalProtocolError, match="not in the ZK protocol"):
        ZKTerminal(host, port, tz=PLANT_TZ, timeout=2).download()


def test_download_over_udp_direct_and_chunked(zk_terminal, terminal_state):
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 0))
    assert [p.user_id for p in driver(zk_terminal, udp=True).download().punches] == ["1001"]
    for minute in range(3000):  # 120 kB: chunked, 16 kB per request, 1 kB per datagram
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 0) + timedelta(minutes=minute))
    download = driver(zk_terminal, udp=True).download(since_index=1)
    assert len(download.punches) == 3000 and download.punches[-1].index == 3000
    assert terminal_state.enabled
