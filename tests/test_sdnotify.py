"""sd_notify with a real AF_UNIX datagram socket standing in for systemd's, and the real daemons.

systemd reads the same datagrams from the socket it names in NOTIFY_SOCKET; nothing here is mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from punchproof.sdnotify import ServiceNotifier
from tests.harness.system import System


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: a bound datagram socket, read with a deadline."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def messages(self, timeout: float) -> list[str]:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return []

    def wait_for(self, line: str, timeout: float) -> list[list[str]]:
        """Every datagram until one holds ``line``; fails after ``timeout`` seconds."""
        seen: list[list[str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.messages(max(0.01, deadline - time.monotonic()))
            if message:
                seen.append(message)
                if line in message:
                    return seen
        raise AssertionError(f"no {line!r} within {timeout}s; got {seen}")


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    directory = tempfile.mkdtemp(prefix="pp-sd-")  # short: a socket path has at most 107 bytes
    fake = FakeSystemd(os.path.join(directory, "notify"))
    yield fake
    fake.sock.close()
    os.unlink(fake.address)
    os.rmdir(directory)


def test_states_reach_the_socket_in_one_datagram_each(systemd):
    notifier = ServiceNotifier.from_environ({"NOTIFY_SOCKET": systemd.address})
    assert notifier.ready("3 terminals")
    assert systemd.messages(2) == ["READY=1", "STATUS=3 terminals"]
    assert notifier.watchdog()
    assert systemd.messages(2) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert systemd.messages(2) == ["STOPPING=1"]


def test_abstract_socket_addresses_work():
    fake = FakeSystemd(f"@pp-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        assert ServiceNotifier.from_environ({"NOTIFY_SOCKET": fake.address}).ready()
        assert fake.messages(2) == ["READY=1"]
    finally:
        fake.sock.close()


def test_without_systemd_nothing_is_sent_and_nothing_fails():
    notifier = ServiceNotifier.from_environ({})
    assert not notifier.ready() and not notifier.watchdog() and notifier.watchdog_interval_s is None


def test_a_socket_that_went_away_is_reported_not_raised(tmp_path):
    assert not ServiceNotifier(str(tmp_path / "gone")).ready()


def test_watchdog_interval_is_half_the_deadline_and_only_for_its_process():
    mine = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}
    assert ServiceNotifier.from_environ(mine).watchdog_interval_s == 30.0
    assert ServiceNotifier.from_environ({**mine, "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert ServiceNotifier.from_environ({**mine, "WATCHDOG_PID": ""}).watchdog_interval_s == 30.0


def _spawn(system: System, name: str, systemd: FakeSystemd, *args: object) -> subprocess.Popen[bytes]:
    log = (system.root / f"{name}.log").open("ab")
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "400000", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "punchproof", *map(str, args)], stdout=log, stderr=log, env=env)
    system.processes[name] = process
    return process


@contextlib.contextmanager
def _supervised(system: System, name: str, systemd: FakeSystemd, *args: object) -> Iterator[subprocess.Popen[bytes]]:
    """The process under our stand-in systemd; at the end it must say STOPPING=1 on SIGTERM and exit 0."""
    process = _spawn(system, name, systemd, *args)
    try:
        yield process
        process.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1", timeout=10)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        system.processes.clear()


@pytest.mark.e2e
def test_the_appliance_daemon_says_ready_then_feeds_the_watchdog_then_stopping(tmp_path, broker, zk_terminal, systemd):
    system = System(tmp_path, broker.port, zk_terminal.address).configure(register=False)
    with _supervised(system, "appliance", systemd, "appliance", "run", "-c", system.appliance_conf):
        before_ready = systemd.wait_for("READY=1", timeout=30)
        assert all("WATCHDOG=1" not in m for m in before_ready), "no watchdog ping before it is ready"
        boot = system.appliance_rows("SELECT count(*) FROM log_record WHERE type = 'boot'")[0][0]
        assert boot == 1, "READY=1 comes after the boot record is signed and stored"
        systemd.wait_for("WATCHDOG=1", timeout=5)
        systemd.wait_for("WATCHDOG=1", timeout=5)  # again: from the main loop, not once


@pytest.mark.e2e
def test_the_ingest_worker_says_ready_then_feeds_the_watchdog(tmp_path, broker, zk_terminal, systemd):
    system = System(tmp_path, broker.port, zk_terminal.address).configure(register=False)
    with _supervised(system, "ingest", systemd, "cloud", "ingest", "-c", system.cloud_conf):
        seen = systemd.wait_for("READY=1", timeout=30)
        seen += systemd.wait_for("WATCHDOG=1", timeout=5)
        seen += systemd.wait_for("WATCHDOG=1", timeout=5)
        statuses = [line for message in seen for line in message if line.startswith("STATUS=")]
        if "STATUS=ingest-1: connected to the broker" not in statuses:
            systemd.wait_for("STATUS=ingest-1: connected to the broker", timeout=10)


@pytest.mark.e2e
def test_the_escalation_runner_says_ready_after_a_tick_then_feeds_the_watchdog(tmp_path, broker, zk_terminal, systemd):
    system = System(tmp_path, broker.port, zk_terminal.address).configure(register=False)
    with _supervised(system, "escalate", systemd, "cloud", "escalate", "-c", system.cloud_conf, "--interval", "0.3"):
        systemd.wait_for("READY=1", timeout=60)
        systemd.wait_for("WATCHDOG=1", timeout=5)
        systemd.wait_for("WATCHDOG=1", timeout=5)  # again: every tick, not once
