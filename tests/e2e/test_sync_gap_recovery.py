"""Head office's ingest workers on one shared subscription, restarted or killed: no appliance is left stuck.

With an MQTT v5 shared subscription and no worker subscribed, Mosquitto drops every batch the appliance
publishes (it answers the PUBACK with reason 16, no matching subscribers). Once a worker is subscribed
again, every record must reach head office exactly once within seconds, whatever the appliance's
acknowledgement timeout (set to 30 s here, so that waiting it out fails the test). Likewise when one of
two workers is killed with batches in hand: the other answers ``gap`` for the later batches and the
appliance resends from the cloud's head, at once rather than after a wait per batch.

Real Mosquitto (its debug log shows each batch it received), the real appliance daemon, real
``punchproof cloud ingest`` processes; every wait is on a condition with a timeout.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime, timedelta

import pytest

from firmware_bridge.zk.emulator_state import StoredPunch
from punchproof.broker import Mosquitto
from tests.e2e.test_sync_faults import assert_exactly_once, head
from tests.harness.system import System
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

ACK_TIMEOUT_S = 30  # far longer than the recovery allowed: only a prompt resend passes
RECOVERY_S = 10.0  # worker subscribed (or killed) -> every record stored; the fixed code takes ~2-4 s


@pytest.fixture
def logged_broker(tmp_path):
    """Mosquitto whose log names every PUBLISH it receives: proof that batches reached it with no subscriber."""
    server = Mosquitto(tmp_path / "broker", extra_config="log_type debug\n").start()
    yield server
    server.kill()


def batches_received(broker: Mosquitto) -> int:
    text = broker.log_path.read_text(errors="replace") if broker.log_path.exists() else ""
    return len(re.findall(r"Received PUBLISH from \S+ \([^)]*'[^']*/up/batch'", text))


def shared_system(tmp_path, broker, zk_terminal) -> System:
    system = System(tmp_path, broker.port, zk_terminal.address).configure(ack_timeout_s=ACK_TIMEOUT_S, shared=True)
    text = system.appliance_conf.read_text().replace("[mqtt]\n", "[mqtt]\nbatch_records = 64\n")
    system.appliance_conf.write_text(text)
    return system


def load(terminal_state, count: int) -> None:
    with terminal_state.lock:
        terminal_state.punches.extend(
            StoredPunch(1, "1001", datetime(2026, 3, 1, 0, 0) + timedelta(seconds=i), 1, 0) for i in range(count)
        )


def test_batches_dropped_while_no_worker_is_subscribed_are_all_stored_once_soon_after_one_is(
    tmp_path, logged_broker, zk_terminal, terminal_state
):
    punches = 500  # 8 batches of 64, all in flight at once
    system = shared_system(tmp_path, logged_broker, zk_terminal)
    try:
        load(terminal_state, punches)
        system.start_appliance()
        wait_until(
            lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == punches,
            timeout=60,
            message="the appliance holds every punch",
        )
        wait_until(lambda: batches_received(logged_broker) >= 1, timeout=30, message="a batch at the broker")
        assert system.cloud_rows("SELECT count(*) FROM punch") == [(0,)]

        system.start_ingest("ingest-a", worker_id="a")
        wait_until(lambda: "ingest worker a connected" in system.log("ingest-a"), timeout=60, message="worker up")
        subscribed = time.monotonic()
        assert_exactly_once(system, punches, timeout=RECOVERY_S)
        took = time.monotonic() - subscribed
        print(f"{punches} punches stored once {took:.1f} s after the worker subscribed")
        assert took <= RECOVERY_S
        assert "no head-office ingest worker is subscribed" in system.log("appliance")
    finally:
        system.stop_all()


def test_one_of_two_workers_killed_with_batches_in_hand_the_rest_are_stored_once_within_seconds(
    tmp_path, broker, zk_terminal, terminal_state
):
    punches = 6_000  # ~94 batches of 64: both workers are busy when one is killed
    system = shared_system(tmp_path, broker, zk_terminal)
    try:
        system.start_ingest("ingest-a", worker_id="a")
        system.start_ingest("ingest-b", worker_id="b")
        for name in ("a", "b"):
            wait_until(lambda n=name: f"ingest worker {n} connected" in system.log(f"ingest-{n}"), timeout=60)
        system.start_appliance()
        load(terminal_state, punches)
        wait_until(
            lambda: (system.cloud_rows("SELECT seq FROM log_head") or [(-1,)])[0][0] > punches // 6,
            timeout=120,
            message="the drain under way",
        )
        system.processes["ingest-a"].send_signal(signal.SIGKILL)
        assert system.reap("ingest-a") == -signal.SIGKILL
        killed = time.monotonic()
        wait_until(
            lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == punches,
            timeout=60,
            message="the appliance holds every punch",
        )
        assert_exactly_once(system, punches, timeout=RECOVERY_S + 20)
        took = time.monotonic() - killed
        print(f"{punches} punches stored once {took:.1f} s after worker a was killed (cursor at {head(system)})")
        assert took <= RECOVERY_S + 20
        # The batches worker a held were lost: the cloud answered gap, the appliance resent from the cloud's head,
        # and only once from each head (the other gaps naming it answer batches sent before that resend).
        resends = re.findall(r"the cloud holds up to seq (-?\d+); resending from there", system.log("appliance"))
        assert resends, "the kill lost no batch in hand: nothing was tested"
        assert len(resends) == len(set(resends)), f"resent more than once from the same head: {resends}"
    finally:
        system.stop_all()
