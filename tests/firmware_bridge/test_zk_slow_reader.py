"""A client that stops reading is held under TCP flow control, as a real terminal holds it (issue #23.6).

A Pi reading a big log slowly, or pyzk reading 100,000 records, may pause with megabytes outstanding;
a terminal then waits in its socket buffers. The emulator used to drop such a client: its 0.2 s
socket timeout bounded every send. A raw socket is the client here, so nothing of our reader is
between the test and the wire; it asks for the whole log in one read, which is more than the socket
buffers hold when the client's receive buffer is small.
"""

import logging
import os
import socket
import struct
import subprocess
import sys
import time
from datetime import date, datetime

import pytest
from zk import ZK

from firmware_bridge.cli import demo_log, demo_roster
from firmware_bridge.zk import wire
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from firmware_bridge.zk.records import parse_attendance
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until

RECORDS = 100_000  # 4 MB of 40-byte records: more than a 4 MB send buffer and a 64 KB receive buffer hold
NOTICE = "is not reading"
TCP_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "07": "CLOSE"}


@pytest.fixture(scope="module")
def big_log() -> tuple[list, list]:
    state = TerminalState(serial="SLOW-01", tz=PLANT_TZ)
    users = [state.add_user(user_id, name) for user_id, name in demo_roster(30)]
    return users, demo_log(users, RECORDS, date(2026, 3, 1), "SLOW-01")


@pytest.fixture
def slow_terminal(big_log) -> TerminalState:
    users, punches = big_log
    state = TerminalState(serial="SLOW-01", tz=PLANT_TZ)
    state.users = list(users)
    state.load_log(punches)
    return state


@pytest.fixture
def notices(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="firmware_bridge.zk.emulator")
    return caplog


class PausingClient:
    """A raw ZK client with a small receive buffer: asks for the whole log, then reads it when told."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connect: the window
        self.sock.settimeout(5)
        self.sock.connect(address)
        self.ports = self.sock.getsockname()[1], self.sock.getpeername()[1]
        self.deframer = wire.TcpDeframer()
        self.reply_id = 0

    def request(self, command: int, payload: bytes = b"") -> None:
        self.reply_id += 1
        self.sock.sendall(wire.tcp_frame(wire.packet(command, 0, self.reply_id, payload)))

    def packets(self, count: int) -> list[wire.Packet]:
        """Read until ``count`` packets arrived; fewer if the terminal ended the connection."""
        got: list[wire.Packet] = []
        while len(got) < count:
            data = self.sock.recv(1 << 20)
            if not data:
                break
            got += self.deframer.feed(data)
        return got

    def ask_for_the_whole_log(self) -> int:
        self.request(wire.CMD_CONNECT)
        (ack,) = self.packets(1)
        assert ack.command == wire.CMD_ACK_OK
        self.request(wire.CMD_PREPARE_BUFFER, struct.pack("<bhii", 1, wire.CMD_ATTLOG_RRQ, 0, 0))
        (ready,) = self.packets(1)
        size = struct.unpack_from("<I", ready.payload, 1)[0]
        self.request(wire.CMD_READ_BUFFER, struct.pack("<ii", 0, size))  # all of it in one answer
        return size

    def emulator_side(self) -> str | None:
        """The TCP state of the emulator's end of this connection, as the kernel shows it (Linux)."""
        mine, peer = ("%04X" % port for port in self.ports)  # noqa: UP031 - /proc/net/tcp's hex ports
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(":" + peer) and fields[2].endswith(":" + mine):
                    return TCP_STATES.get(fields[3], fields[3])
        return None

    def close(self) -> None:
        self.sock.close()


def test_a_client_that_pauses_reading_gets_every_record(slow_terminal, notices):
    with ZKEmulator(slow_terminal, port=0, udp=False) as emulator:
        client = PausingClient(emulator.address)
        try:
            size = client.ask_for_the_whole_log()
            # The client reads nothing until the emulator says it waits for it (after 0.5 s, more than twice
            # the old limit), or until the emulator has let the connection go, as the old one did after 0.2 s.
            wait_until(
                lambda: NOTICE in notices.text or client.emulator_side() != "ESTABLISHED",
                10,
                "the emulator to wait for the paused client (or drop it)",
            )
            assert client.emulator_side() == "ESTABLISHED", "the emulator dropped a client that paused reading"
            prepare, data, done = client.packets(3)
        finally:
            client.close()
    assert (prepare.command, data.command, done.command) == (wire.CMD_PREPARE_DATA, wire.CMD_DATA, wire.CMD_ACK_OK)
    assert len(data.payload) == size
    records = list(parse_attendance(data.payload[4:], 40))
    assert len(records) == RECORDS
    expected = slow_terminal.punches
    assert [(r.user_id, r.time) for r in records[:: RECORDS // 100]] == [
        (p.user_id, p.time) for p in expected[:: RECORDS // 100]
    ]
    assert (records[-1].user_id, records[-1].time) == (expected[-1].user_id, expected[-1].time)


def test_stop_ends_a_connection_whose_client_does_not_read(slow_terminal, notices):
    emulator = ZKEmulator(slow_terminal, port=0, udp=False).start()
    client = PausingClient(emulator.address)
    try:
        client.ask_for_the_whole_log()
        wait_until(lambda: NOTICE in notices.text, 10, "the emulator to wait for the paused client")
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 1.5  # POLL_S to notice, not the 60 s a client is given
        wait_until(lambda: client.emulator_side() in (None, "CLOSE"), 5, "the emulator's end to be reset")
        with pytest.raises(ConnectionResetError):
            client.packets(3)
    finally:
        client.close()
        emulator.stop()


def test_a_client_that_reads_nothing_for_the_send_timeout_is_given_up(slow_terminal, notices):
    with ZKEmulator(slow_terminal, port=0, udp=False, send_idle_s=0.3) as emulator:
        client = PausingClient(emulator.address)
        try:
            client.ask_for_the_whole_log()
            wait_until(lambda: "giving it up" in notices.text, 10, "the emulator to give the client up")
            with pytest.raises(ConnectionResetError):
                client.packets(3)
        finally:
            client.close()
        assert NOTICE not in notices.text  # given up at 0.3 s, before the 0.5 s notice


def test_emulate_zk_preloads_records_that_pyzk_reads(tmp_path):
    out = tmp_path / "emulator.out"
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "punchproof", "emulate", "zk", "--port", "0", "--records", "5000"],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        line = wait_until(
            lambda: next((x for x in out.read_text().splitlines() if "记录 / records" in x), None), 10, "the banner"
        )
        assert line.endswith("工人 / workers 30  记录 / records 5000"), line
        port = int(line.split()[5].rsplit(":", 1)[1])
        conn = ZK("127.0.0.1", port=port, timeout=10, ommit_ping=True, encoding="gbk").connect()
        try:
            records = conn.get_attendance()
            users = {u.user_id for u in conn.get_users()}
        finally:
            conn.disconnect()
    finally:
        process.terminate()
        assert process.wait(10) == 0, out.read_text()
    assert len(records) == 5000
    assert {r.user_id for r in records} == users == {badge for badge, _name in demo_roster(30)}
    times = [r.timestamp for r in records]
    assert times == sorted(times) and times[-1].date() < datetime.now(PLANT_TZ).date()  # up to yesterday
    assert {r.timestamp.date() for r in records[-60:]} == {times[-1].date()}  # 30 workers in and out a day
