"""``appliance doctor`` against real parts: a Mosquitto with passwords, the ZK emulator, the real daemon
and cloud, a damaged database file. Only the kernel's clock status is supplied, since this machine's
own may or may not be synchronised."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance.admin.doctor import ApplianceDoctor, Limits
from appliance.config import Settings
from appliance.rules import package_calendar
from appliance.rules.calendar_cn import unpublished_years
from appliance.store import EnrolmentState, open_db
from opskit.doctor import FAIL, OK, WARN, report
from punchproof.broker import Mosquitto, free_port
from tests.harness.clock import FrozenClock
from tests.harness.system import System
from tests.harness.wait import wait_until

SYNCED = {"sync": 1, "src": "kernel", "err_us": 20_000}


def synced() -> dict[str, int | str]:
    return SYNCED


def no_commands(_argv: list[str]) -> str | None:
    return None


def doctor(settings: Settings, **kwargs: object) -> ApplianceDoctor:
    options = {"clock_status": synced, "command": no_commands, **kwargs}
    return ApplianceDoctor(settings, **options)  # type: ignore[arg-type]


def by_name(findings, prefix: str):
    return next(f for f in findings if prefix in f.name)


@pytest.fixture
def system(tmp_path, broker, zk_terminal):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    yield chain
    chain.stop_all()


def settings_of(system: System) -> Settings:
    return Settings.load(system.appliance_conf)


@pytest.mark.e2e
def test_a_running_registered_appliance_passes_every_check(system, terminal_state, broker):
    system.start_ingest()
    system.start_appliance()
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    wait_until(lambda: system.appliance_rows("SELECT acked_at_ms FROM sync_state")[0][0], timeout=30, message="an ack")
    findings = doctor(settings_of(system)).run()
    # the statutory calendar warns while a year starting within 60 days is unpublished (2027, in December 2026)
    unpublished = unpublished_years(package_calendar(), datetime.now(ZoneInfo("Asia/Shanghai")).date())
    expected = ["法定节假日 statutory calendar"] if unpublished else []
    assert [f.name for f in findings if f.status != OK] == expected, report(findings)[0]
    assert report(findings)[1] == 0
    assert "the running daemon is connected" in by_name(findings, "broker").detail
    # #24.8: the doctor, documented as read-only, logged in as the appliance; behind the documented broker
    # (use_username_as_clientid) that login took the daemon's place and cut it off
    assert "pp-doctor" not in broker.log_path.read_text(errors="replace")


def test_a_fresh_appliance_says_what_is_missing_and_exits_non_zero(tmp_path):
    """No broker, no terminal, never run: each failure says what to do, Chinese first, and the exit code is 1."""
    dead = free_port()
    system = System(tmp_path, dead, ("127.0.0.1", free_port())).configure(register=False)
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", "appliance", "doctor", "-c", str(system.appliance_conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert f"[FAIL] 消息服务器 broker: 127.0.0.1:{dead}: cannot connect" in out
    assert "[FAIL] 考勤机 terminal gate-1" in out
    assert "[WARN] 云端登记 registration: nothing recorded or sent yet" in out
    assert out.index("处理：") < out.index("Fix:"), "Chinese first"
    assert "check(s) failed" in out.splitlines()[-1]


def test_a_wrong_broker_password_is_told_apart_from_an_unreachable_broker(tmp_path, zk_terminal):
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "pi-01", "right-password"], check=True)
    passwords.chmod(0o600)
    broker = Mosquitto(tmp_path / "broker", extra_config=f"allow_anonymous false\npassword_file {passwords}\n").start()
    try:
        system = System(tmp_path, broker.port, zk_terminal.address).configure(register=False)
        settings = settings_of(system)
        for password, expected in (("wrong", "Not authorized"), ("right-password", None)):
            mqtt = dataclasses.replace(settings.mqtt, username="pi-01", password=password)
            finding = doctor(dataclasses.replace(settings, mqtt=mqtt)).check_broker()
            if expected is None:
                assert finding.status == OK, finding
            else:
                assert finding.status == FAIL and expected in finding.detail and "username" in finding.fix_en
    finally:
        broker.kill()


def test_terminals_are_probed_by_tcp(tmp_path, zk_terminal):
    system = System(tmp_path, free_port(), zk_terminal.address).configure(register=False)
    settings = settings_of(system)
    (finding,) = doctor(settings).check_terminals()
    assert finding.status == OK and f"{zk_terminal.address[1]} answers" in finding.detail
    # #23.5: a terminal that answers but refused the roster's writes is said, not only in the journal
    db = open_db(settings.db_path)
    with db.connection_context():
        EnrolmentState.create(terminal="gate-1", last_error="CMD_USER_WRQ refused: memory full")
    db.close()
    finding, enrolment = doctor(settings).check_terminals()
    assert finding.status == OK and enrolment.status == WARN and "memory full" in enrolment.detail
    assert "名单与指纹同步" in enrolment.name
    zk_terminal.stop()
    (finding,) = doctor(settings).check_terminals()
    assert finding.status == FAIL and "4370" in finding.fix_en


def test_a_full_disk_fails(tmp_path):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    settings = settings_of(system)
    assert doctor(settings).check_disk().status == OK
    full = doctor(settings, limits=Limits(min_free_bytes=2**62)).check_disk()  # more than any disk has free
    assert full.status == FAIL and "needs" in full.detail and "journalctl" in full.fix_en


def test_a_damaged_database_fails_quick_check(tmp_path):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    settings = settings_of(system)
    assert doctor(settings).check_database().status == OK
    data = bytearray(settings.db_path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for offset in range(2 * page, len(data) - page, page):  # every page but the header: b-tree pages scrambled
        data[offset : offset + 64] = b"\xa5" * 64
    settings.db_path.write_bytes(bytes(data))
    damaged = doctor(settings).check_database()
    assert damaged.status == FAIL and "damaged" in damaged.detail and "restore" in damaged.fix_en


def test_an_unsynchronised_clock_says_how_to_fix_it(tmp_path):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    chrony = "Reference ID    : 00000000 ()\nSystem time     : 3.000000000 seconds fast of NTP time\n"
    finding = doctor(
        settings_of(system),
        clock_status=lambda: {"sync": 0, "src": "kernel", "err_us": 16_000_000},
        command=lambda argv: chrony if argv[0] == "chronyc" else None,
    ).check_clock()
    assert finding.status == FAIL and "3.000000000 seconds fast" in finding.detail
    assert "chrony" in finding.fix_zh and "ntp.aliyun.com" in finding.fix_en
    loose = doctor(settings_of(system), clock_status=lambda: {"sync": 1, "src": "kernel", "err_us": 5_000_000})
    assert loose.check_clock().status == WARN


@pytest.mark.e2e
def test_an_old_backlog_fails_once_it_is_old(system, terminal_state):
    """Records the cloud never acknowledged: fine for a minute, a warning after 5, a failure after an hour."""
    system.start_appliance()  # no ingest worker: nothing is acknowledged
    terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 58))
    wait_until(lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 1, timeout=20, message="a punch")
    system.stop("appliance")
    settings = settings_of(system)
    (oldest,) = system.appliance_rows("SELECT min(t_wall_ms) FROM log_record")[0]
    start = datetime.fromtimestamp(oldest / 1000, tz=UTC)
    for after, status in ((timedelta(minutes=1), OK), (timedelta(minutes=6), WARN), (timedelta(hours=2), FAIL)):
        finding = doctor(settings, clock=FrozenClock(start + after)).check_backlog()
        assert finding.status == status, (after, finding)
        assert "not yet acknowledged" in finding.detail
