"""Live capture against the emulator: coalesced events, bursts, drops with catch-up, clean stop."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from firmware_bridge.types import INDEX_LIVE
from firmware_bridge.zk.driver import ZKTerminal
from firmware_bridge.zk.emulator import ZKEmulator
from firmware_bridge.zk.live import Backoff, LiveCapture, LivePunch
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until

FAST = Backoff(initial_s=0.02, max_s=0.2)


class Received:
    def __init__(self) -> None:
        self.punches: list[LivePunch] = []
        self.connects: list[str] = []
        self.disconnects: list[str] = []
        self.rejected: list = []

    def users(self) -> list[str]:
        return [p.punch.user_id for p in self.punches]


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def capture(zk_terminal, received) -> Iterator[LiveCapture]:
    live = make_capture(zk_terminal, received)
    live.start()
    wait_until(lambda: zk_terminal.live_sessions == 1, message="the capture registered for events")
    yield live
    live.stop()


def make_capture(emulator: ZKEmulator, received: Received, **kwargs) -> LiveCapture:
    host, port = emulator.address
    return LiveCapture(
        host,
        port,
        tz=PLANT_TZ,
        sink=received.punches.append,
        on_connect=received.connects.append,
        on_disconnect=received.disconnects.append,
        on_rejected=received.rejected.append,
        timeout=2,
        backoff=FAST,
        **kwargs,
    )


def test_a_live_punch_keeps_what_the_terminal_said(capture, terminal_state, received):
    terminal_state.punch("1002", state=255, verify=15, when=datetime(2026, 3, 2, 7, 58, 3))
    (live,) = wait_until(lambda: received.punches, message="the live punch")
    punch = live.punch
    assert (punch.terminal_sn, punch.user_id, punch.state, punch.verify, punch.index) == (
        "TEST-ZK-01",
        "1002",
        255,
        15,
        INDEX_LIVE,
    )
    assert punch.device_time == datetime(2026, 3, 2, 7, 58, 3)
    assert punch.at_utc == datetime(2026, 3, 1, 23, 58, 3, tzinfo=UTC)
    assert len(punch.raw) == 32 and live.clock_offset_ms is not None and abs(live.clock_offset_ms) < 2000
    assert received.connects == ["TEST-ZK-01"]


def test_two_events_in_one_segment_both_arrive_and_are_acknowledged(capture, terminal_state, received):
    when = datetime(2026, 3, 2, 7, 59)
    terminal_state.punch_together([("1001", 0, 1, when, 0), ("1002", 0, 15, when, 0)])
    wait_until(lambda: len(received.punches) == 2, message="both punches")
    assert received.users() == ["1001", "1002"]
    wait_until(lambda: terminal_state.events_acked == 2, message="one ACK per event")


def test_a_burst_of_fifty_arrives_exactly_once_in_order(capture, terminal_state, received):
    badges = [str(2000 + i) for i in range(50)]
    for i, badge in enumerate(badges):  # a queue at the turnstile: 50 punches within a second
        terminal_state.punch(badge, when=datetime(2026, 3, 2, 7, 59, i % 60))
    wait_until(lambda: len(received.punches) >= 50, message="all 50 punches")
    wait_until(lambda: terminal_state.events_acked == 50, message="50 ACKs")
    assert received.users() == badges
    assert terminal_state.events_sent == 50


def test_36_byte_events_carry_the_work_code(zk_terminal, terminal_state, received):
    terminal_state.live_event_size = 36
    live = make_capture(zk_terminal, received)
    live.start()
    try:
        wait_until(lambda: zk_terminal.live_sessions == 1)
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0), workcode=7)
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 8, 1))
        wait_until(lambda: len(received.punches) == 2)
    finally:
        live.stop()
    assert [(p.punch.workcode, len(p.punch.raw)) for p in received.punches] == [(7, 36), (0, 36)]


def test_an_impossible_date_in_an_event_is_reported_and_skipped(capture, terminal_state, received):
    raw = bytearray(32)
    raw[:4] = b"1001"
    raw[26:32] = bytes([26, 2, 30, 8, 0, 0])  # 30 February 2026
    terminal_state.announce_raw_event(bytes(raw))
    terminal_state.punch("1002", when=datetime(2026, 3, 1, 8, 0))
    wait_until(lambda: received.punches, message="the good punch after the bad event")
    assert received.users() == ["1002"]
    (rejected,) = received.rejected
    assert rejected.raw == bytes(raw) and rejected.index == INDEX_LIVE and "day" in rejected.reason
    wait_until(lambda: terminal_state.events_acked == 2, message="the bad event acknowledged too")


def test_a_dropped_link_reconnects_and_catch_up_by_index_covers_the_gap(terminal_state, received):
    emulator = ZKEmulator(terminal_state, port=0).start()
    host, port = emulator.address
    live = make_capture(emulator, received)
    live.start()
    try:
        wait_until(lambda: emulator.live_sessions == 1)
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50))
        wait_until(lambda: len(received.punches) == 1)
        stored_count = len(terminal_state.punches)  # what the appliance has stored: its cursor

        emulator.stop()  # the link goes down mid-stream; the terminal keeps recording
        wait_until(lambda: received.disconnects, message="the capture noticed the drop and said so")
        assert not live.connected.is_set()
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 51))
        terminal_state.punch("1001", state=1, when=datetime(2026, 3, 2, 7, 52))
        emulator = ZKEmulator(terminal_state, host, port).start()

        wait_until(lambda: len(received.connects) == 2, message="the capture reconnected")
        terminal_state.punch("1002", state=1, when=datetime(2026, 3, 2, 7, 53))  # live again
        wait_until(lambda: len(received.punches) == 2)
        catch_up = ZKTerminal(host, port, tz=PLANT_TZ, timeout=2).download(since_index=stored_count)
    finally:
        live.stop()
        emulator.stop()
    assert live.failures == 0 and live.available is True
    assert received.disconnects == ["TEST-ZK-01"] * 2  # the drop (once, though reconnecting failed), and the stop
    union = {p.punch.key: p.punch for p in received.punches} | {p.key: p for p in catch_up.punches}
    assert sorted(p.device_time.minute for p in union.values()) == [50, 51, 52, 53]  # nothing lost, none twice
    assert [p.index for p in catch_up.punches] == [1, 2, 3]


def test_stop_unregisters_and_says_goodbye(zk_terminal, received):
    live = make_capture(zk_terminal, received)
    live.start()
    wait_until(lambda: zk_terminal.live_sessions == 1)
    live.stop()
    assert zk_terminal.live_sessions == 0
    assert not live.connected.is_set()


def test_a_wrong_comm_key_keeps_retrying_without_crashing(zk_terminal, terminal_state, received):
    terminal_state.comm_key = 4242
    live = make_capture(zk_terminal, received, comm_key=1)
    live.start()
    try:
        wait_until(lambda: live.failures >= 2, message="retries with backoff")
        assert live.available is False and not received.connects and not received.disconnects
        terminal_state.comm_key = 1  # the terminal's key is corrected: capture recovers by itself
        wait_until(lambda: received.connects, message="recovery")
    finally:
        live.stop()


def test_live_capture_over_udp(zk_terminal, terminal_state, received):
    live = make_capture(zk_terminal, received, udp=True)
    live.start()
    try:
        wait_until(lambda: zk_terminal.live_sessions == 1)
        when = datetime(2026, 3, 2, 7, 59)
        terminal_state.punch_together([("1001", 0, 1, when, 0), ("1002", 0, 1, when, 0)])
        wait_until(lambda: len(received.punches) == 2)
        wait_until(lambda: terminal_state.events_acked == 2)
    finally:
        live.stop()
    assert received.users() == ["1001", "1002"]
