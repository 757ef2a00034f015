"""Head office's statutory calendar (issue #19, item 10): HR publishes a year with the real CLI, it is
versioned, pushed signed to every appliance of every plant through a real Mosquitto inside the plant
configuration, the plant's own 厂休 merged over it, and the escalation's working days count by it.
``punchproof cloud doctor`` warns while a year starting within 60 days is unpublished."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime

import pytest

from cloud import witness
from cloud.admin.doctor import CloudDoctor
from cloud.config import CloudSettings
from cloud.escalation.workdays import add_working_days, is_workday
from cloud.hr.calendar import CalendarError, head_office_calendar, published_years, set_year
from cloud.hr.models import PlantCalendar
from cloud.store import Plant, open_db
from ledger import topics
from ledger.config_message import SignedConfig
from opskit.doctor import OK, WARN
from tests.cloud.hr.test_push import _cli, _setup
from tests.cloud.test_config_push import retained
from tests.harness.clock import FrozenClock

GOV_2027 = """\
# 国务院办公厅关于2027年部分节假日安排的通知
[holidays]
2027-01-01 = "元旦"
2027-02-08 = "春节"
2027-02-09 = "春节"

[workdays]
2027-02-20 = "春节调休"
"""


def _document(broker, settings, appliance: str):
    payload = retained(broker.port, topics.config("p1", appliance))
    return SignedConfig.decode(payload).verify(witness.load(settings).verify_key)


def test_hr_publishes_a_year_and_every_appliance_receives_it_signed(tmp_path, broker):
    config = _setup(tmp_path, broker)
    settings = CloudSettings.load(config)
    notice = tmp_path / "2027.toml"
    notice.write_text(GOV_2027, encoding="utf-8")

    done = _cli(config, "calendar", "set-year", "2027", str(notice), "--by", "hr-wang", "--note", "国办发明电")
    assert done.returncode == 0, done.stderr
    assert "2027 年节假日安排：版本 1" in done.stdout and done.stdout.count("published version 1") == 2
    for name in ("pi-01", "pi-02"):
        text = _document(broker, settings, name).sections["calendar"]["text"]
        data = tomllib.loads(text)
        assert data["complete_years"] == [2027] and data["version"] == "head-office-2027v1"
        assert data["holidays"]["2027-01-01"] == "元旦" and data["workdays"]["2027-02-20"] == "春节调休"

    # a correction is version 2; the same file again changes nothing; the plant's own 厂休 rides over it
    notice.write_text(GOV_2027.replace('2027-02-09 = "春节"\n', ""), encoding="utf-8")
    assert _cli(config, "calendar", "set-year", "2027", str(notice), "--no-push").returncode == 0
    again = _cli(config, "calendar", "set-year", "2027", str(notice), "--no-push")
    assert "版本 2" in again.stdout
    db = open_db(settings.database_url)
    with db.connection_context():
        assert [(r.year, r.version, r.note) for r in published_years()] == [(2027, 2, "")]
        PlantCalendar.create(plant=Plant.get_by_id("p1"), text='version = "p1"\n[holidays]\n2027-01-04 = "厂休"\n')
    db.close()
    pushed = _cli(config, "push-plant-config", "--plant", "p1")
    assert pushed.stdout.count("published version 2") == 2, pushed.stdout + pushed.stderr
    data = tomllib.loads(_document(broker, settings, "pi-01").sections["calendar"]["text"])
    assert data["version"] == "head-office-2027v2-plant-p1"
    assert "2027-02-09" not in data["holidays"] and data["holidays"]["2027-01-04"] == "厂休"

    shown = _cli(config, "calendar", "show")
    assert "head office: 2027 v2" in shown.stdout and "2004–2026" in shown.stdout


def test_a_bad_file_is_refused_with_every_problem_listed(tmp_path, broker):
    config = _setup(tmp_path, broker)
    notice = tmp_path / "bad.toml"
    notice.write_text('[holidays]\n2026-10-01 = "国庆"\n2027-13-01 = "x"\n[workdays]\n2027-05-06 = ""\n', "utf-8")
    done = _cli(config, "calendar", "set-year", "2027", str(notice))
    assert done.returncode == 1
    assert "未发布 / not published: 2027" in done.stderr
    assert "2026-10-01：不属于 2027 年" in done.stderr and "2027-13-01" in done.stderr and "2027-05-06" in done.stderr
    with pytest.raises(CalendarError) as err:
        set_year(2027, "[holidays\n", by="x", now_ms=0)
    assert err.value.__cause__ is not None


def test_the_working_days_and_doctor_use_head_offices_calendar(tmp_path, broker):
    config = _setup(tmp_path, broker, staff=False)
    settings = CloudSettings.load(config)
    december = FrozenClock(datetime(2026, 12, 6, 2, tzinfo=UTC))
    db = open_db(settings.database_url)
    with db.connection_context():
        finding = next(f for f in CloudDoctor(settings, clock=december).run() if f.name.startswith("法定节假日"))
        assert finding.status == WARN and "2027 not published" in finding.detail
        assert finding.fix_zh.startswith("2027 年节假日安排尚未发布") and "calendar set-year 2027" in finding.fix_zh
        assert "set-year 2027" in finding.fix_en
        thursday = int(datetime(2026, 12, 31, 10, tzinfo=UTC).timestamp() * 1000)
        assert is_workday(date(2027, 1, 1))  # unpublished: Monday to Friday
        before = add_working_days(thursday, 1, "Asia/Shanghai")

        set_year(2027, GOV_2027, by="hr-wang", now_ms=0)
        assert not is_workday(date(2027, 1, 1)) and is_workday(date(2027, 2, 20))  # 元旦; a 调休 Saturday
        assert add_working_days(thursday, 1, "Asia/Shanghai") - before == 3 * 86_400_000  # to Monday 4 January
        assert head_office_calendar().published == {2027: 1}
        finding = next(f for f in CloudDoctor(settings, clock=december).run() if f.name.startswith("法定节假日"))
        assert finding.status == OK and "head office: 2027 v1" in finding.detail
    db.close()
