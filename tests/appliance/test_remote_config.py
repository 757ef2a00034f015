"""The cloud's signed configuration applied to a real SQLite store, and the evaluator seeing it.

Monday 2 March 2026 in Shanghai, shift D 08:00-17:00: at 08:20 a worker without a punch is a
tentative miss, unless leave the cloud just sent covers the day.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from appliance.attendance import Evaluator
from appliance.capture import device_settings
from appliance.capture.punchlog import LogWriter
from appliance.clock import to_ms
from appliance.config import Settings
from appliance.store import (
    AppliedConfig,
    BoardRow,
    DeviceSetting,
    Employee,
    EvalRequest,
    LeaveEntry,
    PlantPolicy,
    ShiftDef,
    TerminalHealth,
)
from appliance.sync.remote_config import RemoteConfig
from ledger import SigningKey, canonical, topics
from ledger.config_message import ConfigDocument, ConfigStatus, SignedConfig
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

PLANT, APPLIANCE = "p1", "pi-01"
CLOUD = SigningKey.generate()


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=PLANT_TZ).astimezone(UTC)


SECTIONS = {
    "shifts": [{"id": "D", "name": "白班", "spans": "08:00-17:00"}, {"id": "N", "spans": "20:00-08:00"}],
    "rosters": [{"id": "wk", "pattern": "D,D,D,D,D,-,-"}],
    "employees": [
        {"user_id": "1001", "name": "张三", "roster": "wk"},
        {"user_id": "1002", "name": "李四", "roster": "wk"},
    ],
    "policy": {"version": "2026-03", "confirm_margin_min": 45},
}


class Link:
    """The seam to the MQTT connection (``Uplink``): records subscriptions and what was published."""

    def __init__(self) -> None:
        self.handlers: dict = {}
        self.published: list[tuple[str, ConfigStatus]] = []
        self.event = threading.Event()

    def add_subscription(self, topic, handler):
        self.handlers[topic] = handler

    def publish(self, topic, payload, *, retain=False):
        assert retain, "the answer is retained, so that a cloud worker subscribing later still learns it"
        self.published.append((topic, ConfigStatus.decode(payload)))
        self.event.set()
        return True


@pytest.fixture
def clock():
    return FrozenClock(local(2, 7, 0))


@pytest.fixture
def settings(tmp_path):
    return Settings.from_dict(
        {
            "plant": {"id": PLANT},
            "appliance": {"id": APPLIANCE, "state_dir": str(tmp_path)},
            "mqtt": {"cloud_key_file": str(tmp_path / "cloud.pub")},
            "terminals": [{"name": "gate-1", "host": "127.0.0.1"}],
        }
    )


@pytest.fixture
def applied():
    return []


@pytest.fixture
def remote(db, settings, clock, applied):
    link = Link()
    config = RemoteConfig(settings, clock, CLOUD.verify_key, on_applied=lambda: applied.append(True))
    config.attach(link)
    config.link = link
    return config


def payload(version, sections=SECTIONS, *, key=CLOUD, appliance=APPLIANCE, created_ms=1_772_409_600_000):
    document = ConfigDocument.build(PLANT, appliance, version, created_ms, "hr-wang", sections)
    return SignedConfig.sign(document, key).encode()


def test_a_signed_document_is_applied_and_answered(remote, applied):
    assert list(remote.link.handlers) == [topics.config(PLANT, APPLIANCE)]
    status = remote.handle(payload(1))
    assert (status.status, status.version, status.applied) == ("ok", 1, 1)
    assert remote.link.published == [(topics.config_applied(PLANT, APPLIANCE), status)]
    assert {e.user_id: (e.name, e.roster, e.source) for e in Employee.select()} == {
        "1001": ("张三", "wk", "cloud:v1"),
        "1002": ("李四", "wk", "cloud:v1"),
    }
    assert ShiftDef.get_by_id("D").late_grace_min == 5  # the default, filled in before signing
    assert (PlantPolicy.get_by_id(1).version, PlantPolicy.get_by_id(1).confirm_margin_min) == ("2026-03", 45)
    state = AppliedConfig.get_by_id(1)
    assert (state.version, state.by, state.hash) == (1, "hr-wang", SignedConfig.decode(payload(1)).document.hash)
    assert applied == [True], "the evaluator is told to look again"


def test_the_same_version_again_is_acknowledged_without_applying(remote, clock, applied):
    first = payload(1)
    remote.handle(first)
    Employee.update(name="changed locally").where(Employee.user_id == "1001").execute()
    clock.advance(minutes=5)
    status = remote.handle(first)  # the retained message, at every reconnect
    assert (status.status, status.version) == ("ok", 1)
    assert Employee.get_by_id("1001").name == "changed locally", "not applied twice"
    assert applied == [True]


def test_an_older_version_is_a_rejected_replay(remote, applied):
    old = payload(1)
    remote.handle(old)
    newer = dict(SECTIONS, employees=[{"user_id": "1001", "name": "张三丰", "roster": "wk"}])
    assert remote.handle(payload(2, newer)).status == "ok"
    status = remote.handle(old)
    assert (status.status, status.version, status.applied) == ("rejected", 1, 2)
    assert "not newer" in status.reason
    assert Employee.get_by_id("1001").name == "张三丰"
    assert AppliedConfig.get_by_id(1).version == 2 and "v1" in AppliedConfig.get_by_id(1).rejected
    same_version_other_content = payload(2, SECTIONS)
    assert remote.handle(same_version_other_content).status == "rejected"
    assert applied == [True, True]


def test_a_forged_document_is_rejected_and_nothing_changes(remote, applied, caplog):
    remote.handle(payload(1))
    forged = payload(2, dict(SECTIONS, employees=[]), key=SigningKey.generate())
    status = remote.handle(forged)
    assert (status.status, status.version, status.applied) == ("rejected", 2, 1)
    assert status.reason.startswith("forged")
    assert "refused configuration version 2: forged" in caplog.text
    assert Employee.select().where(Employee.active == True).count() == 2  # noqa: E712
    # the cloud's document with its signature moved to other content does not verify either
    message = json.loads(payload(2, SECTIONS))
    message["doc"]["sections"]["employees"] = []
    assert remote.handle(canonical.encode(message)).status == "rejected"
    assert AppliedConfig.get_by_id(1).version == 1 and applied == [True]


def test_a_document_for_another_appliance_is_rejected(remote):
    status = remote.handle(payload(1, appliance="pi-02"))
    assert status.status == "rejected" and "pi-02" in status.reason
    assert Employee.select().count() == 0


def test_a_malformed_payload_is_rejected_with_version_zero(remote):
    status = remote.handle(b'{"v":1,"kind":"config","doc":{},"sig":""}')
    assert (status.status, status.version, status.applied) == ("rejected", 0, 0)
    assert status.reason.startswith("malformed")


def test_an_unusable_document_is_refused_whole(remote):
    remote.handle(payload(1))
    bad = dict(SECTIONS, rosters=[{"id": "wk", "pattern": "D,X,D,D,D,-,-"}], employees=[])
    status = remote.handle(payload(2, bad))
    assert status.status == "rejected" and "undefined shift(s) X" in status.reason
    assert Employee.select().where(Employee.active == True).count() == 2, "nothing written"  # noqa: E712
    removing_a_shift_in_use = dict(SECTIONS, shifts=[{"id": "N", "spans": "20:00-08:00"}])
    del removing_a_shift_in_use["rosters"]
    status = remote.handle(payload(2, removing_a_shift_in_use))
    assert status.status == "rejected" and "rosters wk (kept)" in status.reason
    assert ShiftDef.select().count() == 2


def test_each_section_carried_replaces_what_was_there(remote, clock):
    leave = {"id": "L1", "employee": "1002", "start_ms": to_ms(local(2, 0)), "end_ms": to_ms(local(3, 0))}
    remote.handle(payload(1, dict(SECTIONS, leave=[leave])))
    assert LeaveEntry.get_by_id("L1").status == "approved"
    EvalRequest.delete().execute()
    clock.advance(days=3)
    smaller = {
        "shifts": [{"id": "D", "spans": "08:00-17:00"}],
        "employees": [{"user_id": "1001", "name": "张三", "roster": "wk"}],
        "leave": [],
    }
    status = remote.handle(payload(2, smaller))
    assert status.status == "ok", status.reason
    assert [s.id for s in ShiftDef.select()] == ["D"], "a definition no longer sent is deleted"
    assert Employee.get_by_id("1002").active is False, "a person no longer sent is kept, inactive"
    assert LeaveEntry.get_by_id("L1").status == "cancelled", "leave no longer sent is cancelled"
    assert {"2026-03-01", "2026-03-02"} <= {r.day for r in EvalRequest.select()}, "the cancelled leave's days"
    assert PlantPolicy.get_by_id(1).confirm_margin_min == 45, "a section not carried is left alone"


def test_the_evaluator_sees_leave_the_cloud_sent(db, key, remote, clock):
    writer = LogWriter(db, key, "punchproof/p1/pi-01/1", clock, "boot-1")
    writer.start()
    evaluator = Evaluator(writer, PLANT_TZ, ["gate-1"], clock)
    remote.handle(payload(1))
    clock.advance(hours=1, minutes=20)  # 08:20
    since = to_ms(clock.now() - timedelta(days=30))  # recorded since a month ago: the day is covered
    TerminalHealth.replace(
        name="gate-1", serial="G1", available=True, last_contact_ms=to_ms(clock.now()), first_read_ms=since
    ).execute()
    evaluator.run_once()
    board = BoardRow.get((BoardRow.employee == "1002") & (BoardRow.work_date == "2026-03-02"))
    assert (board.status, board.missing_tier) == ("missing", "tentative")
    sick = {"id": "L7", "employee": "1002", "kind": "病假"}
    sick |= {"start_ms": to_ms(local(2, 0)), "end_ms": to_ms(local(3, 0))}
    assert remote.handle(payload(2, dict(SECTIONS, leave=[sick]))).status == "ok"
    evaluator.run_once()
    board = BoardRow.get((BoardRow.employee == "1002") & (BoardRow.work_date == "2026-03-02"))
    assert board.status == "on_leave"


def test_device_settings_are_checked_stored_and_laid_over_the_file(remote, settings):
    unknown = dict(SECTIONS, devices=[{"terminal": "gate-9"}])
    status = remote.handle(payload(1, unknown))
    assert status.status == "rejected" and "gate-9" in status.reason
    too_fine = dict(SECTIONS, devices=[{"terminal": "gate-1", "clock_correct_above_s": 1}])
    assert "at least 2" in remote.handle(payload(1, too_fine)).reason
    devices = [{"terminal": "gate-1", "clock_alarm_s": 20, "clock_correct_above_s": 90, "poll_seconds": 2}]
    status = remote.handle(payload(1, dict(SECTIONS, devices=devices)))
    assert status.status == "ok" and "restart" in status.reason
    assert DeviceSetting.get_by_id("gate-1").clock_correct_above_s == 90
    (terminal,) = device_settings.overlay(settings).terminals
    assert (terminal.clock_alarm_s, terminal.clock_correct_above_s, terminal.poll_seconds) == (20, 90, 2)
    assert terminal.clock_policy.correct_above_ms == 90_000
    assert settings.terminals[0].clock_correct_above_s is None, "the file's settings are not changed"


def test_documents_arrive_on_the_thread_and_are_answered(remote, applied):
    remote.start()
    try:
        remote.link.handlers[remote.topic](payload(1))  # as paho's thread calls it
        wait_until(lambda: remote.link.published, timeout=10, message="the answer")
        assert remote.link.published[0][1].status == "ok" and applied == [True]
    finally:
        remote.stop()
