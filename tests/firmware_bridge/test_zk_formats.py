"""Record layouts, encodings, capacity and dropped transfers, through our driver and the emulator."""

from datetime import datetime

import pytest

from firmware_bridge.errors import TerminalUnreachable
from firmware_bridge.zk.driver import ZKTerminal
from tests.conftest import PLANT_TZ


def driver(emulator, **kwargs):
    host, port = emulator.address
    return ZKTerminal(host, port, tz=PLANT_TZ, timeout=2, **kwargs)


@pytest.mark.parametrize("size", [8, 16, 40, 49])
def test_every_record_layout_downloads_with_state_255_kept(zk_terminal, terminal_state, size):
    terminal_state.record_size = size
    for minute in range(40):  # enough to go the chunked way for every size but 8 and 16
        terminal_state.punch("1002", state=255 if minute % 2 else 1, verify=15, when=datetime(2026, 3, 2, 7, minute))
    download = driver(zk_terminal).download()
    assert download.record_size == size and len(download.punches) == 40
    first, second = download.punches[:2]
    assert (first.user_id, first.state, first.verify) == ("1002", 1, 15)  # 8-byte: user_id via the user table
    assert second.state == 255 and second.device_time == datetime(2026, 3, 2, 7, 1)
    assert all(len(p.raw) == size for p in download.punches)


@pytest.mark.parametrize(("encoding", "name"), [("gbk", "张三丰"), ("gb18030", "王𠮷")])  # 𠮷 is not in GBK
def test_user_names_decode_with_the_configured_encoding(zk_terminal, terminal_state, encoding, name):
    terminal_state.encoding = encoding
    terminal_state.add_user("1003", name)
    users = driver(zk_terminal, encoding=encoding).users()
    assert [(u.user_id, u.name) for u in users][-1] == ("1003", name)
    assert [u.name for u in users][:2] == ["张三", "李四"]


def test_capacity_is_reported_from_the_free_sizes(zk_terminal, terminal_state):
    terminal_state.record_capacity = 1000
    for _ in range(30):
        terminal_state.punch("1001")
    assert driver(zk_terminal).download().capacity == 970
    info = driver(zk_terminal).probe()
    assert (info.records, info.record_capacity, info.records_left, info.users) == (30, 1000, 970, 2)
    assert (info.terminal_sn, info.platform) == ("TEST-ZK-01", "ZEM560_TFT") and info.firmware.startswith("Ver")


def test_a_reset_mid_download_is_a_clear_error_and_the_terminal_is_re_enabled(zk_terminal, terminal_state):
    for _ in range(5000):
        terminal_state.punch("1001")
    terminal_state.reset_mid_transfer = True
    with pytest.raises(TerminalUnreachable, match="connection dropped"):
        driver(zk_terminal).download()
    assert terminal_state.enabled, "re-enabled over a fresh connection"
    terminal_state.reset_mid_transfer = False
    assert len(driver(zk_terminal).download().punches) == 5000  # nothing was half-counted
