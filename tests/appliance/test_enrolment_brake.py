"""The brake on a mass removal from the terminals (issue #23.5): a roster that makes more workers leave at once
than max(5, 10 % of the roster before) removes none of them, deletes none of their fingers, and says so, until a
person confirms (signed) or a roster names them again. Everything else goes on.

On the wire: the two ZK emulators and their TerminalWorkers of test_enrolment; the real daemon with a partial
roster from head office's configuration (the path no command-line check guards), released by the real
``confirm-removals``; the real ``import-roster`` refusing a sheet that would remove too many.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from appliance.capture import enrolment
from appliance.capture.enrolment_plan import BrakeRule, Roster, brake
from appliance.config import ConfigError, Settings
from appliance.runtime.daemon import ApplianceDaemon
from appliance.store import Employee, LogRecord, RemovalBrake, StoredTemplate, open_db
from appliance.sync import config_apply
from firmware_bridge.zk.emulator import TerminalState, ZKEmulator
from ledger import SigningKey, parse
from ledger.config_message import ConfigDocument
from punchproof.broker import free_port
from tests.appliance.test_enrolment import Plant, acts, employ
from tests.appliance.web.test_attendance_pages import Plant as PlantPages
from tests.appliance.web.test_attendance_pages import local
from tests.conftest import PLANT_TZ
from tests.harness.clock import FrozenClock
from tests.harness.wait import wait_until

BADGES = [str(1001 + n) for n in range(50)]  # 1001 is on each gate already (test_enrolment's Plant)


def roster(current: list[str], leaving: list[str]) -> Roster:
    return Roster(dict.fromkeys(current, "x"), dict.fromkeys(leaving, "inactive on the roster"), "d")


def test_the_rule_lets_a_days_leavers_pass_and_holds_a_partial_sheet():
    rule = BrakeRule()
    accepted = frozenset(BADGES)
    one = brake(roster(BADGES[:-1], BADGES[-1:]), accepted, frozenset(), rule)
    assert one.held == () and one.leavers == ("1050",) and one.roster.leaving == {"1050": "inactive on the roster"}
    assert one.accepted == frozenset(BADGES[:-1]), "the next day's leavers count from this roster"
    cut = brake(roster(BADGES[:20], BADGES[20:]), accepted, frozenset(), rule)
    assert len(cut.held) == 30 and cut.limit == 5 and cut.before == 50 and cut.roster.leaving == {}
    assert cut.accepted == accepted and cut.roster.digest != "d", "the terminals look again when released"
    assert brake(roster(BADGES[:20], BADGES[20:]), accepted, frozenset(BADGES[20:]), rule).held == ()
    assert len(brake(roster(BADGES[:20], BADGES[20:]), accepted, frozenset(BADGES[21:]), rule).held) == 30
    plant = [str(n) for n in range(3000)]  # a big plant: 10 % is 300; a sheet cut at row 200 is held
    assert brake(roster(plant[3:], plant[:3]), frozenset(plant), frozenset(), rule).held == ()
    assert brake(roster(plant[:300], plant[300:]), frozenset(plant), frozenset(), rule).limit == 300
    assert len(brake(roster(plant[:200], plant[200:]), frozenset(plant), frozenset(), rule).held) == 2800
    old_leavers = roster(BADGES, ["9001", "9002", "9003", "9004", "9005", "9006"])  # never on the accepted roster
    assert brake(old_leavers, accepted, frozenset(), rule).held == ()
    assert brake(old_leavers, None, frozenset(), rule).accepted == accepted, "the first roster is accepted"


@pytest.fixture
def fifty(db, key, clock):
    """Two gates with the 50 workers of the roster, a finger of 1040 enrolled at gate 1 and copied to gate 2."""
    for badge in BADGES:
        employ(badge, f"工人{badge}")
    site = Plant(db, key, clock)
    site.poll()
    site.finger = site.states["gate-1"].enrol_finger("1040", 3)
    site.poll()
    assert site.states["gate-2"].finger("1040", 3) == site.finger
    yield site
    site.stop()


def leave(*badges: str) -> None:
    Employee.update(active=False).where(Employee.user_id.in_(badges)).execute()


def test_a_day_with_one_leaver_removes_them_and_a_partial_roster_is_held_until_confirmed(fifty):
    leave("1050")
    fifty.poll()
    assert acts(fifty.actions()[-2:]) == [
        ("terminal_user_removed", "1050", "gate-1"),
        ("terminal_user_removed", "1050", "gate-2"),
    ]
    assert enrolment.held_removals() is None
    leave(*BADGES[20:49])  # the sheet held 20 of the 49: 29 leave at once, more than max(5, 4)
    employ("1100", "新人")  # and a worker joins in the same change
    before = len(fifty.actions())
    fifty.poll()
    (held, added, added_2) = fifty.actions()[before:]
    assert (held["act"], held["count"], held["limit"], held["before"]) == ("removals_held", 29, 5, 49)
    assert acts([added, added_2]) == [
        ("terminal_user_added", "1100", "gate-1"),
        ("terminal_user_added", "1100", "gate-2"),
    ]
    for gate in ("gate-1", "gate-2"):
        assert set(fifty.users(gate)) == {*BADGES[:49], "1100"}, "nobody removed"
    assert fifty.states["gate-2"].finger("1040", 3) == fifty.finger and StoredTemplate.select().count() == 1
    hold = enrolment.held_removals()
    assert hold.badges == tuple(BADGES[20:49]) and hold.limit == 5
    assert enrolment.hold_message(hold).startswith(
        "名单变更将从考勤机删除 29 人（超过上限 5 人），已暂停删除。请核对名单"
    )
    assert fifty.poll() == 0, "held: nothing signed again"

    enrolment.confirm_removals(hold.badges, by="cli:li", now_ms=1)
    fifty.poll()
    records = fifty.actions()[before + 3 :]
    confirmed = records[0]
    assert (confirmed["act"], confirmed["user"], confirmed["count"]) == ("removals_confirmed", "cli:li", 29)
    assert ("templates_deleted", "1040", "") in acts(records[1:])
    assert sum(r["act"] == "terminal_user_removed" for r in records) == 2 * 29
    for gate in ("gate-1", "gate-2"):
        assert set(fifty.users(gate)) == {*BADGES[:20], "1100"}
    assert fifty.states["gate-2"].finger("1040", 3) is None and StoredTemplate.select().count() == 0
    assert enrolment.held_removals() is None and fifty.poll() == 0


def test_a_roster_that_names_them_again_clears_the_hold(fifty):
    leave(*BADGES[20:])
    fifty.poll()
    assert len(enrolment.held_removals().badges) == 30
    Employee.update(active=True).where(Employee.user_id.in_(BADGES[20:])).execute()  # the whole sheet, next push
    before = len(fifty.actions())
    fifty.poll()
    (cleared,) = fifty.actions()[before:]
    assert (cleared["act"], cleared["held"], cleared["reason"]) == (
        "removals_hold_cleared",
        30,
        "the roster names them again",
    )
    assert enrolment.held_removals() is None
    assert set(fifty.users("gate-1")) == set(BADGES) and StoredTemplate.select().count() == 1
    leave("1050")  # and the next day's leaver is removed as ever
    fifty.poll()
    assert "1050" not in fifty.users("gate-1") and "1050" not in fifty.users("gate-2")


def write_config(tmp_path, terminals: str = "") -> str:
    cloud_key = tmp_path / "cloud-witness.pub"
    cloud_key.write_text(SigningKey.generate().verify_key.pem())
    config = tmp_path / "appliance.toml"
    config.write_text(
        f'[plant]\nid = "test-plant"\ntimezone = "Asia/Shanghai"\n[appliance]\nid = "pi-01"\n'
        f'state_dir = "{tmp_path / "state"}"\n[mqtt]\nport = {free_port()}\ncloud_key_file = "{cloud_key}"\n'
        + terminals,
        encoding="utf-8",
    )
    return str(config)


def punchproof(*args: str, config: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "punchproof", "appliance", *args, "-c", config]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_import_roster_refuses_a_sheet_that_removes_too_many_and_writes_nothing(tmp_path):
    config = write_config(tmp_path)
    db = open_db(tmp_path / "state" / "appliance.sqlite3")
    for badge in BADGES:
        employ(badge, f"工人{badge}")
    db.close()
    sheet = tmp_path / "people.csv"
    sheet.write_text("工号,姓名,在职\n" + "".join(f"{b},工人{b},否\n" for b in BADGES[:8]), encoding="utf-8")
    refused = punchproof("import-roster", str(sheet), config=config)
    assert refused.returncode == 2, refused.stderr
    assert "此名单将使 8 人离开名单并从考勤机删除（含指纹），超过上限 5 人" in refused.stderr
    assert "would make 8 workers leave the roster" in refused.stderr and "--allow-removals" in refused.stderr
    db = open_db(tmp_path / "state" / "appliance.sqlite3")
    assert Employee.select().where(Employee.active == False).count() == 0  # noqa: E712
    assert RemovalBrake.get_or_none() is None or RemovalBrake.get().confirmed_ms is None
    db.close()
    allowed = punchproof("import-roster", str(sheet), "--allow-removals", config=config)
    assert allowed.returncode == 0, allowed.stderr
    assert "removal of 8 workers confirmed" in allowed.stdout
    db = open_db(tmp_path / "state" / "appliance.sqlite3")
    assert Employee.select().where(Employee.active == False).count() == 8  # noqa: E712
    row = RemovalBrake.get()
    assert row.confirmed_by.endswith("import-roster --allow-removals") and len(row.confirmed[1:-1].split(",")) == 8
    db.close()


def test_the_daemon_holds_a_partial_roster_from_head_office_until_confirm_removals(tmp_path, clock):
    states = [TerminalState(serial=f"TEST-ZK-0{n}", tz=PLANT_TZ, now=lambda: datetime.now(UTC)) for n in (1, 2)]
    emulators = [ZKEmulator(state, port=0).start() for state in states]
    config = write_config(
        tmp_path,
        "".join(
            f'[[terminals]]\nname = "gate-{n}"\nhost = "{e.address[0]}"\nport = {e.address[1]}\n'
            "poll_seconds = 0.2\nlive = false\n"
            for n, e in enumerate(emulators, start=1)
        ),
    )
    settings = Settings.load(config)
    daemon = ApplianceDaemon(settings, clock=clock)
    daemon.start()

    def push(version: int, badges: list[str]) -> None:  # head office's signed configuration, as the sync applies it
        rows = [{"user_id": b, "name": f"工人{b}"} for b in badges]
        document = ConfigDocument.build("test-plant", "pi-01", version, 1, "hr-li", {"employees": rows})
        config_apply.apply(document, PLANT_TZ, ["gate-1", "gate-2"], 1)

    try:
        push(1, BADGES)
        wait_until(lambda: all(len(s.users) == 50 for s in states), timeout=10, message="50 workers on both gates")
        template = states[0].enrol_finger("1040", 3)
        wait_until(lambda: states[1].finger("1040", 3) == template, timeout=10, message="the finger at gate 2")
        push(2, BADGES[:20])  # a sheet cut off at row 20: 30 leave at once
        wait_until(lambda: enrolment.held_removals() is not None, timeout=10, message="the removals held")
        seen = [e.connections for e in emulators]
        wait_until(
            lambda: all(e.connections >= n + 3 for e, n in zip(emulators, seen, strict=True)),
            timeout=10,
            message="more polls of each gate",
        )
        assert all(len(s.users) == 50 for s in states), "nobody removed from either gate"
        assert states[1].finger("1040", 3) == template and StoredTemplate.select().count() == 1
        confirmed = punchproof("confirm-removals", "--yes", config=config)
        assert confirmed.returncode == 0, confirmed.stderr
        assert "1040\t工人1040" in confirmed.stdout and "confirmed by cli:" in confirmed.stdout
        wait_until(lambda: all(len(s.users) == 20 for s in states), timeout=10, message="the 30 removed")
        assert states[1].finger("1040", 3) is None
        wait_until(lambda: StoredTemplate.select().count() == 0, timeout=10, message="the stored finger deleted")
    finally:
        daemon.stop()
        for emulator in emulators:
            emulator.stop()
    records = [parse(bytes(r.data)) for r in LogRecord.select().where(LogRecord.type == "action")]
    brake_acts = [(r["act"], r["count"]) for r in records if r["act"].startswith("removals_")]
    assert brake_acts == [("removals_held", 30), ("removals_confirmed", 30)]
    assert sum(r["act"] == "terminal_user_removed" for r in records) == 60


def test_the_plant_pages_say_a_hold_in_the_pages_language(tmp_path):
    pages = PlantPages(tmp_path, FrozenClock(local(2, 8, 30)))
    try:
        client = pages.client()
        assert 'id="removals-held"' not in client.get("/").get_data(as_text=True)
        RemovalBrake.create(held='["1001", "1002"]', held_limit=5, held_before=2, held_ms=0)
        page = client.get("/").get_data(as_text=True)
        assert "名单变更将从考勤机删除 2 人（超过上限 5 人），已暂停删除。请核对名单" in page
        assert "punchproof appliance confirm-removals" in page
        english = client.get("/?lang=en").get_data(as_text=True)
        assert "The roster would remove 2 workers from the time clocks (more than the limit of 5)" in english
        kiosk = pages.client(login=False).get("/kiosk").get_data(as_text=True)
        assert "removals-held" not in kiosk, "not on the workers' screen"
    finally:
        pages.db.close()


def test_a_wrong_enrolment_setting_is_a_clear_config_error():
    base = {"plant": {"id": "p1"}, "appliance": {"id": "pi-01"}, "mqtt": {"cloud_key_file": "x"}}
    assert Settings.from_dict(base).enrolment.removal_hold_min == 5
    with pytest.raises(ConfigError) as err:
        Settings.from_dict({**base, "enrolment": {"removal_hold_min": 1, "removal_hold_percent": 150}})
    assert err.value.problems == [
        "enrolment.removal_hold_min: at least 3 (a day's leavers must pass), got 1",
        "enrolment.removal_hold_percent: a percentage above 0 and at most 100, got 150",
    ]
