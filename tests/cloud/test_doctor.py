"""``cloud doctor`` against real parts: SQLite and PostgreSQL, a real Mosquitto, a registered appliance."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from cloud.admin.doctor import CloudDoctor
from cloud.config import CloudSettings
from cloud.hr.calendar import package_years
from cloud.store import open_db
from opskit.doctor import FAIL, OK, WARN, report
from punchproof.broker import free_port
from tests.harness.system import System

CHRONY_SYNCED = "Leap status     : Normal\nSystem time     : 0.000001 seconds fast of NTP time\n"


def doctor(settings: CloudSettings, **kwargs: object) -> CloudDoctor:
    return CloudDoctor(settings, command=lambda argv: CHRONY_SYNCED if argv[0] == "chronyc" else None, **kwargs)


def settings_for(system: System, database_url: str | None = None) -> CloudSettings:
    settings = CloudSettings.load(system.cloud_conf)
    return dataclasses.replace(settings, database_url=database_url) if database_url else settings


def test_a_cloud_with_a_registered_appliance_passes(tmp_path, broker, cloud_db_url):
    system = System(tmp_path, broker.port, ("127.0.0.1", free_port())).configure(register=False)
    settings = settings_for(system, cloud_db_url)
    text = system.cloud_conf.read_text().replace(
        json.dumps(f"sqlite:///{(tmp_path / 'cloud').resolve()}/cloud.sqlite3"), json.dumps(cloud_db_url)
    )
    system.cloud_conf.write_text(text)
    assert CloudSettings.load(system.cloud_conf).database_url == cloud_db_url
    subprocess.run(
        [
            sys.executable,
            "-m",
            "punchproof",
            "cloud",
            "register-appliance",
            "-c",
            system.cloud_conf,
            system.root / "identity.json",
        ],
        check=True,
        capture_output=True,
    )
    findings = doctor(settings).run()
    statuses = {f.name: f.status for f in findings}
    assert statuses.pop("设备 appliances") == WARN, "registered but never heard from"
    assert statuses.pop("时间戳机构 timestamp authority") == WARN, "no TSA: bundles carry no third-party time"
    # the statutory calendar warns while a year starting within 60 days is unpublished (2027, in December 2026)
    covered = package_years() >= {datetime.now(UTC).year, (datetime.now(UTC) + timedelta(days=60)).year}
    assert statuses.pop("法定节假日 statutory calendar") == (OK if covered else WARN)
    assert set(statuses.values()) == {OK}, report(findings)[0]
    assert "never" in next(f for f in findings if f.name == "设备 appliances").detail
    assert report(findings)[1] == 0, "a warning alone does not fail"


def test_an_unreachable_postgresql_and_broker_fail_with_what_to_do(tmp_path):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    settings = settings_for(system, f"postgresql://punchproof@127.0.0.1:{free_port()}/punchproof")
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "doctor", "-c", str(system.cloud_conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "[FAIL] 消息服务器 broker" in result.stdout, result.stdout + result.stderr
    database = doctor(settings).check_database()
    assert database.status == FAIL and "PostgreSQL unreachable" in database.detail and "pg_hba" in database.fix_en


def test_a_postgresql_database_without_tables_fails_instead_of_crashing(tmp_path, postgres_url):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    findings = doctor(settings_for(system, postgres_url)).run()
    database = next(f for f in findings if f.name == "数据库 database")
    assert database.status == FAIL and "no Punchproof tables yet" in database.detail, database
    assert "punchproof-ingest@1" in database.fix_en
    assert "设备 appliances" not in {f.name for f in findings}, "nothing read from tables that do not exist"
    open_db(postgres_url).close()
    assert doctor(settings_for(system, postgres_url)).check_database().status == OK


def test_a_missing_witness_key_and_a_damaged_sqlite_database_fail(tmp_path):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    settings = settings_for(system)
    assert doctor(settings).check_witness_key().status == OK
    settings.witness_key_path.rename(settings.witness_key_path.with_suffix(".moved"))
    missing = doctor(settings).check_witness_key()
    assert missing.status == FAIL and "do not generate a new one" in missing.fix_en
    open_db(settings.database_url).close()  # the tables, as the first ingest or web start makes them
    path = tmp_path / "cloud" / "cloud.sqlite3"
    assert doctor(settings).check_database().status == OK
    data = bytearray(path.read_bytes())
    for offset in range(4096 * 2, len(data) - 4096, 4096):
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    assert doctor(settings).check_database().status == FAIL


def test_an_unsynchronised_clock_fails(tmp_path):
    system = System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)
    chrony = "Leap status     : Not synchronised\n"
    finding = CloudDoctor(settings_for(system), command=lambda argv: chrony if argv[0] == "chronyc" else None)
    assert finding.check_clock().status == FAIL
    assert CloudDoctor(settings_for(system), command=lambda _argv: None).check_clock().status == WARN
