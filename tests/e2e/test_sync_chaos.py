"""Kill-and-restart at random moments: the broker, the appliance and the cloud worker, 200 times or more.

A worker punches at the emulated terminal the whole time (about 40 a second). At each cycle one
of the three processes, chosen at random, is killed with SIGKILL at a random moment and started
again, as systemd would. At the end everything runs undisturbed and the counts must be exact:
every punch the terminal took is in the cloud once, and the cloud's copy verifies as one chain.

``PUNCHPROOF_CHAOS_CYCLES`` (default 200) and ``PUNCHPROOF_CHAOS_SEED`` make a longer soak or
replay a failing run; the seed is printed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from datetime import datetime, timedelta

import pytest

from tests.e2e.test_first_punch import assert_cloud_holds_what_was_acked
from tests.harness.system import System
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

CYCLES = int(os.environ.get("PUNCHPROOF_CHAOS_CYCLES", "200"))


class Puncher(threading.Thread):
    """Presses at the terminal, one every ``every_s``, each at its own minute so every punch is distinct."""

    def __init__(self, state, every_s: float = 0.025) -> None:
        super().__init__(name="puncher", daemon=True)
        self.state, self.every_s = state, every_s
        self.stopping = threading.Event()
        self.count = 0

    def run(self) -> None:
        start = datetime(2026, 3, 2, 0, 0)
        while not self.stopping.wait(self.every_s):
            self.state.punch("1001" if self.count % 2 else "1002", when=start + timedelta(minutes=self.count))
            self.count += 1


def test_random_kills_of_all_three_processes_end_with_exact_counts(tmp_path, broker, zk_terminal, terminal_state):
    seed = int(os.environ.get("PUNCHPROOF_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    print(f"chaos seed {seed}, {CYCLES} cycles")
    rng = random.Random(seed)
    system = System(tmp_path, broker.port, zk_terminal.address).configure(ack_timeout_s=2)
    puncher = Puncher(terminal_state)
    kills = {"broker": 0, "appliance": 0, "ingest": 0}
    try:
        system.start_ingest()
        system.start_appliance()
        puncher.start()
        for _ in range(CYCLES):
            # The fault's moment, drawn at random: this is the schedule of the faults, not a wait for a condition.
            time.sleep(rng.uniform(0.0, 0.4))
            victim = rng.choice(list(kills))
            kills[victim] += 1
            if victim == "broker":
                broker.kill()
                broker.start()
            else:
                system.processes[victim].send_signal(signal.SIGKILL)
                system.reap(victim)
                if victim == "appliance":
                    system.start_appliance()
                else:
                    system.start_ingest()
        puncher.stopping.set()
        puncher.join()
        expected = puncher.count
        punches = "SELECT employee, device_time, seq FROM punch ORDER BY seq"
        wait_until(lambda: len(system.cloud_rows(punches)) >= expected, timeout=180, message=f"{expected} punches")
        wait_until(
            lambda: system.acked_seq() == system.appliance_rows("SELECT max(seq) FROM log_record")[0][0],
            timeout=60,
            message="the cursor at the head",
        )
        rows = system.cloud_rows(punches)
        assert len(rows) == expected, f"{len(rows)} punches in the cloud, the terminal took {expected} (seed {seed})"
        assert len({(e, t) for e, t, _ in rows}) == expected, f"a punch counted twice (seed {seed})"
        assert system.appliance_rows("SELECT count(*) FROM punch")[0][0] == expected
        assert system.appliance_rows("PRAGMA integrity_check") == [("ok",)]
        assert_cloud_holds_what_was_acked(system)
        assert min(kills.values()) > CYCLES // 5, kills
        print(f"{expected} punches, kills {kills}")
    finally:
        puncher.stopping.set()
        system.stop_all()
