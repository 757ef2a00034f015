"""``punchproof bridge probe|dump`` run as real subprocesses against the emulator and a web server."""

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest


def bridge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "punchproof", "bridge", *args], capture_output=True, text=True, timeout=timeout
    )


def test_probe_shows_identity_capacity_and_clock(zk_terminal, terminal_state):
    terminal_state.clock_offset = timedelta(hours=3)
    terminal_state.record_capacity = 1000
    for _ in range(10):
        terminal_state.punch("1001")
    host, port = zk_terminal.address
    result = bridge("probe", host, "--port", str(port), "--udp")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "TEST-ZK-01" in out and "ZEM560_TFT" in out and "Ver 6.60" in out
    assert "记录 / records" in out and "1000 (990 left" in out
    offset = float(re.search(r"clock offset\s+([+-][\d.]+) s", out).group(1))
    assert abs(offset - 10800) <= 2 and "警告 / warning" in out  # the terminal's clock ticks in whole seconds


def test_dump_writes_json_lines_with_progress(zk_terminal, terminal_state, tmp_path):
    for minute in range(5000):
        terminal_state.punch("1002", state=255, when=datetime(2026, 3, 2, 8, 0) + timedelta(minutes=minute))
    host, port = zk_terminal.address
    out = tmp_path / "log.jsonl"
    result = bridge("dump", host, "--port", str(port), "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5000 and lines[0]["user_id"] == "1002" and lines[0]["state"] == 255
    assert lines[-1]["index"] == 4999 and lines[0]["device_time"] == "2026-03-02T08:00:00"
    assert "100%" in result.stderr and "5000 条记录 / records" in result.stderr
    assert terminal_state.enabled


def test_unreachable_host_is_one_clear_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = bridge("probe", "127.0.0.1", "--port", str(port), "--timeout", "1")
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("错误 / error:") and "no answer" in line


@pytest.mark.parametrize("command", ["probe", "dump"])
def test_wrong_comm_key_is_one_clear_line(zk_terminal, terminal_state, command, tmp_path):
    terminal_state.comm_key = 4242
    host, port = zk_terminal.address
    extra = ["-o", str(tmp_path / "x")] if command == "dump" else []
    result = bridge(command, host, "--port", str(port), "--comm-key", "1", *extra)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "comm key" in line


@pytest.mark.parametrize("command", ["probe", "dump"])
def test_a_web_server_is_reported_as_not_a_zk_terminal(command, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        extra = ["-o", str(tmp_path / "x")] if command == "dump" else []
        result = bridge(command, "127.0.0.1", "--port", str(server.server_address[1]), "--timeout", "1", *extra)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "is this a ZK terminal" in line
    assert not (tmp_path / "x").exists()
