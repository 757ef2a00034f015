"""The terminals table says why a terminal's own record count and the punches stored from it differ (issue #23.7).

A plant manager compares the terminal's screen (记录数) with the board: two identical presses in one
second are one punch, a record that cannot be a punch is an incident, a log cleared starts a new
count. The counts are kept per log with the cursor (``terminal_log_count``); the first tests drive
the real worker and driver against the ZK emulator, the last the real daemon and the board over HTTP.
"""

import os
import subprocess
import sys
from datetime import datetime

import pytest

from appliance.store import TerminalLogCount
from appliance.web.board import count_gap
from firmware_bridge.zk import wire
from firmware_bridge.zk.records import encode_attendance_40
from ledger import SigningKey
from punchproof.broker import free_port
from tests.appliance.test_log_replaced import make_worker, punch_a_day
from tests.harness.http import WebClient
from tests.harness.system import cli
from tests.harness.wait import wait_until


@pytest.fixture
def worker(db, key, clock, zk_terminal):
    return make_worker(db, key, clock, zk_terminal)


def bad_record() -> bytes:
    """A record dated 30 February: not a punch, kept as an incident."""
    bad = bytearray(encode_attendance_40(1, "1001", datetime(2026, 2, 28, 8, 0), 1, 0))
    bad[27:31] = (wire.encode_time(datetime(2026, 2, 28, 8, 0)) + 2 * 86400).to_bytes(4, "little")
    return bytes(bad)


def counts(log_no: int | None = None) -> tuple[int, ...]:
    """(log, terminal's count, records read, punches, duplicates, bad records, read before counting)."""
    query = TerminalLogCount.select().where(TerminalLogCount.terminal == "gate-1")
    row = (
        query.where(TerminalLogCount.log_no == log_no).get()
        if log_no
        else query.order_by(-TerminalLogCount.log_no).get()
    )
    return row.log_no, row.terminal_count, row.records_read, row.punches, row.duplicates, row.bad_records, row.uncounted


def test_each_record_is_counted_once_as_a_punch_a_repeated_press_or_a_bad_record(worker, terminal_state):
    punch_a_day(terminal_state, 2, 40)
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))  # pressed twice in one second:
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 8, 0))  # two records, one punch
    terminal_state.store_raw(bad_record())
    assert worker.poll_once() == 41
    assert counts() == (1, 43, 43, 41, 1, 1, 0)
    assert [worker.poll_once() for _ in range(3)] == [0, 0, 0]
    assert counts() == (1, 43, 43, 41, 1, 1, 0), "an unchanged log is not counted again"
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 9, 0))
    assert worker.poll_once() == 1
    terminal_state.punch("1002", when=datetime(2026, 3, 2, 9, 0))  # its twin, read at the next poll
    assert worker.poll_once() == 0
    assert counts() == (1, 45, 45, 42, 2, 1, 0)
    assert count_gap(TerminalLogCount.get()) == [("count_dup", 2), ("count_bad", 1)]


def test_a_log_cleared_at_the_terminal_is_counted_anew(worker, terminal_state):
    punch_a_day(terminal_state, 2, 40)
    assert worker.poll_once() == 40
    terminal_state.clear_log()  # at the terminal's menu
    punch_a_day(terminal_state, 3, 10)
    assert worker.poll_once() == 10
    assert counts(1) == (1, 40, 40, 40, 0, 0, 0)
    assert counts() == (2, 10, 10, 10, 0, 0, 0)
    assert TerminalLogCount.get(log_no=2).cause == "replaced"
    assert count_gap(TerminalLogCount.get(log_no=2)) == []


def test_records_read_before_counting_began_are_said_so(worker, terminal_state):
    """A database from before the counts: the log's first records were read by an older version."""
    punch_a_day(terminal_state, 2, 40)
    assert worker.poll_once() == 40
    TerminalLogCount.delete().execute()  # as migration 5 leaves it: the table, empty
    punch_a_day(terminal_state, 3, 3)
    assert worker.poll_once() == 3
    assert counts() == (1, 43, 43, 3, 0, 0, 40)
    assert count_gap(TerminalLogCount.get()) == [("count_uncounted", 40)]


@pytest.fixture
def plant(tmp_path, zk_terminal):
    """The appliance as installed (``appliance init``), its daemon and its pages as real processes."""
    conf = tmp_path / "appliance.toml"
    (tmp_path / "cloud.pub").write_text(SigningKey.generate().verify_key.pem())
    host, port = zk_terminal.address
    cli(
        *("appliance", "init", "-o", conf, "--plant", "p1", "--appliance", "pi-01", "--state-dir", tmp_path / "state"),
        *("--mqtt-port", free_port(), "--terminal", f"gate-1={host}:{port}", "--poll-seconds", "0.3"),
        *("--identity", tmp_path / "identity.json", "--cloud-key", tmp_path / "cloud.pub"),
    )
    conf.write_text(conf.read_text() + "live_poll_seconds = 0.3\n")  # read the log soon after a live punch too
    cli("appliance", "create-user", "-c", conf, "boss", "--password-stdin", stdin="battery staple 2\n")
    web_port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = [(tmp_path / f"{name}.log").open("wb") for name in ("daemon", "web")]
    processes = [
        subprocess.Popen([sys.executable, "-m", "punchproof", *args], stdout=out, stderr=subprocess.STDOUT, env=env)
        for args, out in (
            (("appliance", "run", "-c", str(conf)), logs[0]),
            (("appliance", "web", "-c", str(conf), "--bind", f"127.0.0.1:{web_port}", "--threads", "4"), logs[1]),
        )
    ]
    yield WebClient(f"http://127.0.0.1:{web_port}")
    for process in processes:
        process.terminate()
    for process, out in zip(processes, logs, strict=True):
        process.wait(timeout=30)
        out.close()


def test_the_board_explains_a_double_press_and_a_bad_record_with_the_daemon_polling(plant, terminal_state):
    web = plant
    wait_until(lambda: web.get("/login")[0] == 200, timeout=20, message="the pages to serve")
    assert web.login("boss", "battery staple 2")[0] == 200
    wait_until(lambda: 'data-terminal-count="0"' in web.get("/")[1], timeout=20, message="the daemon's first read")
    now = terminal_state.device_now()
    terminal_state.punch("1002", when=now)
    terminal_state.punch("1001", when=now)  # pressed twice in the same second
    terminal_state.punch("1001", when=now)
    terminal_state.store_raw(bad_record())
    page = wait_until(
        lambda: 'data-terminal-count="4"' in (p := web.get("/")[1]) and p, timeout=20, message="the four records"
    )
    assert 'data-punches="2"' in page and "4 / 2" in page
    assert "含 1 条同一秒重复按压（合并为一条）、1 条无效记录（已记为异常）" in page
    english = web.get("/?lang=en")[1]
    assert "includes 1 repeated press(es) in the same second (stored as one punch)" in english
    assert "1 invalid record(s) (kept as incidents)" in english
    terminal_state.clear_log()  # at the terminal's menu: its screen now counts from 0
    terminal_state.punch("1002", when=now)
    page = wait_until(
        lambda: 'data-terminal-count="1"' in (p := web.get("/?lang=zh")[1]) and p, timeout=20, message="the cleared log"
    )
    assert "1 / 1" in page and "起的记录（考勤机记录曾被清除或更换）" in page and "同一秒" not in page
