"""Enrolment of push (ADMS) terminals (issue #23.5), on the wire: the real daemon with a ZK terminal (the ZK
emulator, polled by its worker) and a push terminal (the ADMS emulator, driven one round at a time over HTTP).

The roster reaches the push terminal in the answer to its next poll; a leaver is removed; a finger enrolled
at the push terminal's keypad (uploaded in OPERLOG, or as BIODATA on newer firmware) is stored sealed and
works at the ZK terminal, and one enrolled at the ZK terminal reaches the push terminal. Each change is one
signed ``action`` record; a refused command is visible and tried again later.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import Employee, EnrolmentState, StoredTemplate
from firmware_bridge.adms.emulator import AdmsTerminalEmulator
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from punchproof.broker import free_port
from tests.appliance.test_push import Appliance, appliance_settings
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

SN = "ADMS-0001"


class Site:
    """The daemon, its ZK gate (``gate``) and its push gate (``push``)."""

    def __init__(self, tmp_path: Path, clock: FrozenClock) -> None:
        self.state = TerminalState(serial="TEST-ZK-01", tz=PLANT_TZ)
        self.emulator = ZKEmulator(self.state, port=0).start()
        host, port = self.emulator.address
        terminals = [
            {"name": "gate-1", "host": host, "port": port, "poll_seconds": 0.2, "live": False},
            {"name": "east-gate", "kind": "adms", "serial": SN},
        ]
        settings = appliance_settings(tmp_path, terminals, push={"host": "127.0.0.1", "port": free_port()})
        self.appliance = Appliance(settings, clock).start()
        self.clock = clock

    def terminal(self, **options) -> AdmsTerminalEmulator:
        port = self.appliance.settings.push.port
        return AdmsTerminalEmulator(SN, "127.0.0.1", port, tz=PLANT_TZ, now=self.clock.now, **options)

    def acts(self, term: str = "east-gate") -> list[tuple[str, str]]:
        records = self.appliance.records("action")
        return [(r["act"], r["emp"]) for r in records if r.get("term", {}).get("name") == term]

    def stop(self) -> None:
        self.appliance.stop()
        self.emulator.stop()


@pytest.fixture
def site(tmp_path: Path, clock: FrozenClock) -> Iterator[Site]:
    plant = Site(tmp_path, clock)
    yield plant
    plant.stop()


def employ(badge: str, name: str, **fields) -> None:
    Employee.replace(user_id=badge, name=name, source="cloud:7", **fields).execute()


def test_the_roster_reaches_the_push_terminal_within_its_poll_and_a_leaver_is_removed(site):
    employ("1001", "张三")
    device = site.terminal()
    device.users["9000"] = {"PIN": "9000", "Name": "installer", "Pri": "14"}  # the installer's admin badge
    assert device.run_once()  # the first call: the appliance asks who it knows (the answer comes with it)
    assert device.executed == ["DATA QUERY USERINFO", "DATA QUERY FINGERTMP"]
    assert device.run_once()
    assert device.users["1001"]["Name"] == "张三"
    assert site.acts() == [("terminal_user_added", "1001")], "signed when the terminal confirmed it"
    employ("1003", "王五")
    employ("1001", "张三丰")
    assert device.run_once(), "one poll"
    assert {p: u["Name"] for p, u in device.users.items()} == {"1001": "张三丰", "1003": "王五", "9000": "installer"}
    assert device.users["9000"]["Pri"] == "14", "a user the roster does not know is left as it is"
    employ("1003", "王五", active=False)
    assert device.run_once()
    assert "1003" not in device.users
    assert site.acts()[1:] == [
        ("terminal_user_renamed", "1001"),
        ("terminal_user_added", "1003"),
        ("terminal_user_removed", "1003"),
    ]
    executed = len(device.executed)
    assert device.run_once() and device.run_once()
    assert len(device.executed) == executed and len(site.acts()) == 4, "an unchanged poll sends and signs nothing"
    del device.users["1001"]  # deleted at the terminal's menu: nothing is uploaded, its counts tell
    for _ in range(5):  # a few polls' grace for an upload on its way, then it is asked again and the worker put back
        assert device.run_once()
    assert device.users["1001"]["Name"] == "张三丰" and device.executed.count("DATA QUERY USERINFO") == 2
    assert site.acts()[-1] == ("terminal_user_added", "1001")
    wait_until(lambda: set(u.user_id for u in site.state.users) == {"1001"}, timeout=10, message="the ZK gate too")
    assert site.appliance.chain_verifies() > 0


def test_a_finger_enrolled_at_the_push_terminal_works_at_the_zk_gate_and_one_enrolled_there_reaches_it(site):
    employ("1001", "张三")
    employ("1002", "李四")
    device = site.terminal()
    assert device.run_once() and device.run_once()
    wait_until(lambda: site.state.user("1002") is not None, timeout=10, message="the roster at the ZK gate")
    template = device.enrol_finger("1001", 6)  # at the push terminal's keypad: uploaded in OPERLOG
    assert device.run_once()
    assert site.acts() == [
        ("terminal_user_added", "1001"),
        ("terminal_user_added", "1002"),
        ("template_stored", "1001"),
    ]
    (row,) = StoredTemplate.select()
    assert (row.user_id, row.finger, row.terminal, row.algorithm) == ("1001", 6, "east-gate", "10")
    assert template not in bytes(row.sealed), "sealed"
    wait_until(lambda: site.state.finger("1001", 6) == template, timeout=10, message="the finger at the ZK gate")
    assert site.state.present_finger(template).user_id == "1001", "it works there"
    zk_template = site.state.enrol_finger("1002", 3)  # at the ZK gate's keypad
    wait_until(lambda: StoredTemplate.get_or_none(user_id="1002") is not None, timeout=10, message="stored")
    assert device.run_once()
    assert device.finger("1002", 3) == zk_template and device.identify(zk_template) == "1002"
    assert site.acts()[-1] == ("template_copied", "1002")
    assert ("template_copied", "1001") in site.acts("gate-1")
    assert device.run_once() and site.acts()[-1] == ("template_copied", "1002"), "nothing copied back"
    employ("1002", "李四", active=False)  # a leaver: removed with their fingers, their stored copy deleted
    assert device.run_once()
    assert "1002" not in device.users and device.identify(zk_template) is None
    assert not StoredTemplate.select().where(StoredTemplate.user_id == "1002").exists()


def test_newer_firmware_keeps_fingers_as_biodata_and_a_refused_command_is_visible_and_tried_again(site, clock):
    employ("1001", "张三")
    device = site.terminal(biodata=True)
    for _ in range(3):  # the FINGERTMP query is refused: the fingers are asked for as BIODATA
        assert device.run_once()
    assert "DATA QUERY BIODATA Type=1" in device.executed and "1001" in device.users
    template = device.enrol_finger("1001", 4)
    assert device.run_once()
    wait_until(
        lambda: site.state.finger("1001", 4) == template, timeout=10, message="the BIODATA finger at the ZK gate"
    )
    device.refuse["DATA UPDATE USERINFO"] = -2  # the terminal's storage fails
    employ("1005", "赵六")
    assert device.run_once()
    assert "1005" not in device.users
    state = EnrolmentState.get_by_id("east-gate")
    assert "terminal_user_added 1005 not done: refused by the terminal" in state.last_error
    assert "Return=-2" in state.last_error
    sent = len(device.executed)
    assert device.run_once() and len(device.executed) == sent, "not at every poll"
    del device.refuse["DATA UPDATE USERINFO"]
    clock.advance(seconds=31)
    assert device.run_once()
    assert "1005" in device.users and EnrolmentState.get_by_id("east-gate").last_error == ""
    zk_template = site.state.enrol_finger("1001", 7)
    wait_until(lambda: StoredTemplate.get_or_none(user_id="1001", finger=7) is not None, timeout=10, message="kept")
    assert device.run_once()
    assert device.finger("1001", 7) == zk_template
    assert any(c.startswith("DATA UPDATE BIODATA Pin=1001\tNo=7\t") for c in device.executed)
