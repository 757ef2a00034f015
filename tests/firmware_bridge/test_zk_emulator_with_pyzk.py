"""The emulator as a real client sees it: pyzk 0.9, unchanged, over TCP."""

from datetime import timedelta

import pytest
from zk import ZK
from zk.exception import ZKErrorResponse


def client(emulator, **kwargs):
    host, port = emulator.address
    return ZK(host, port=port, timeout=5, ommit_ping=True, encoding="gbk", **kwargs)


@pytest.mark.parametrize("udp", [False, True])
def test_pyzk_reads_users_with_gbk_names_and_options(zk_terminal, udp):
    conn = client(zk_terminal, force_udp=udp).connect()
    try:
        assert conn.get_serialnumber() == "TEST-ZK-01"
        assert conn.get_firmware_version().startswith("Ver")
        assert [(u.user_id, u.name) for u in conn.get_users()] == [("1001", "张三"), ("1002", "李四")]
    finally:
        conn.disconnect()


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("count", [3, 5000])  # the direct answer, then the chunked transfer
def test_pyzk_downloads_attendance_direct_and_chunked(zk_terminal, terminal_state, count, udp):
    for i in range(count):
        terminal_state.punch("1001" if i % 2 else "1002", state=i % 2)
    conn = client(zk_terminal, force_udp=udp).connect()
    try:
        records = conn.get_attendance()
    finally:
        conn.disconnect()
    assert len(records) == count
    assert [(r.user_id, r.punch) for r in records[:2]] == [("1002", 0), ("1001", 1)]


@pytest.mark.parametrize("udp", [False, True])
def test_comm_key_is_checked(zk_terminal, terminal_state, udp):
    terminal_state.comm_key = 8080
    client(zk_terminal, password=8080, force_udp=udp).connect().disconnect()
    with pytest.raises(ZKErrorResponse, match="Unauthenticated"):
        client(zk_terminal, password=1, force_udp=udp).connect()


def test_clock_reads_with_its_offset(zk_terminal, terminal_state):
    terminal_state.clock_offset = timedelta(hours=3)
    expected = terminal_state.device_now()
    conn = client(zk_terminal).connect()
    try:
        assert abs((conn.get_time() - expected).total_seconds()) <= 2
    finally:
        conn.disconnect()
