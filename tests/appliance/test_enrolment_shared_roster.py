"""The daemon's terminals share one roster (#25 item 1, memory): each terminal's enrolment worked the plant's
roster out for itself, and at 20 terminals and 5,000 workers the daemon held 20 copies of it (some 18 MB). The
real daemon with eight emulated ZK gates: after a change at head office reaches every gate, every gate's
enrolment holds the same roster object, and the next change still reaches every gate."""

from __future__ import annotations

from appliance.store import Employee
from firmware_bridge.zk.emulator import TerminalState
from tests.appliance.test_enrolment import daemon_with_gates
from tests.conftest import PLANT_TZ
from tests.harness.wait import wait_until

GATES = 8


def employ(badge: str, name: str) -> None:
    Employee.replace(user_id=badge, name=name, source="cloud:7").execute()


def test_every_gates_enrolment_holds_one_roster_and_a_change_still_reaches_every_gate(tmp_path, clock):
    states = [TerminalState(serial=f"TEST-ZK-{n:02d}", tz=PLANT_TZ) for n in range(1, GATES + 1)]
    emulators, daemon = daemon_with_gates(tmp_path, states, clock)

    def rosters() -> list[object]:
        kept = [worker._enrolment._roster for worker in daemon.workers]
        return [k[1] for k in kept if k is not None]

    def named(badge: str, name: str) -> bool:
        return all(s.user(badge) is not None and s.user(badge).name == name for s in states)

    try:
        employ("1001", "张三")  # as the cloud's configuration writes them, in the daemon's process
        employ("1003", "王五")
        wait_until(lambda: named("1003", "王五"), timeout=20, message="1003 on every gate")
        first = rosters()
        assert len(first) == GATES and len({id(r) for r in first}) == 1, "one roster for every gate"
        assert dict(first[0].current) == {"1001": "张三", "1003": "王五"}
        employ("1003", "王五一")  # a rename at head office: the roster is worked out again, once
        wait_until(lambda: named("1003", "王五一"), timeout=20, message="the rename on every gate")
        wait_until(lambda: len({id(r) for r in rosters()}) == 1, timeout=10, message="one roster again")
        again = rosters()
        assert again[0] is not first[0] and again[0].current["1003"] == "王五一"
    finally:
        daemon.stop()
        for emulator in emulators:
            emulator.stop()
