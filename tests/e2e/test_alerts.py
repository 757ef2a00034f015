"""A missed check-in reaches the line manager and HR within 2 minutes (#20.1), on real processes: the appliance
daemon reading an emulated ZK terminal, Mosquitto, the ingest worker, the escalation runner (``punchproof cloud
escalate --interval 1``), the local WeCom server that speaks its API, and the demo's SMS provider stand-in
(``punchproof.demo_mail``, whose messages land in ``messages/index.txt`` as in ``punchproof demo``).

Two shifts start a minute apart on the wall clock (grace 0), one per line, each with a worker who punched and one
who did not. 一号线: the uplink is up; the manager's WeCom message lists the missing worker and links to the board,
within 2 minutes of the shift's start. 二号线: the broker is down when the alert is raised; the plant's board shows
it at once (外网中断，恢复后发送), and the messages go out once after the broker is back: to HR by WeCom, to the
manager, who has no WeCom id, by SMS (the policy's second channel) through the demo's stand-in."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from cloud.escalation.policy import publish
from cloud.store import open_db
from punchproof.demo_mail import Outbox
from tests.cloud.escalation.plantfeed import policy_body
from tests.harness.http import WebClient
from tests.harness.providers.wecom import WeComServer
from tests.harness.system import PLANT, System, cli
from tests.harness.wait import wait_until

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
LIMIT_S = 120
CORP, SECRET, AGENT = "ww-e2e-alerts", "wecom-secret-e2e-alerts", 1000003
MANAGERS = {"一号线": "zhao"}
PHONE = "+8613900139002"  # 二号线's manager: no WeCom id
HR = "wangmin"
PASSWORD = "plant manager password 7"
CHANNELS = """
[channels.sms_aliyun]
access_key_id = "DEMO-ACCESS-KEY"
access_key_secret_file = "secrets/wecom"
sign_name = "演示电子"
endpoint = "{sms_url}"
[channels.sms_aliyun.templates]
missed_alert = "SMS_DEMO_ALERT"

[channels.wecom]
corp_id = "{corp}"
corp_secret_file = "secrets/wecom"
agent_id = {agent}
base_url = "{url}"

[notices]
employer = "东莞市某某电子有限公司"
address = "广东省东莞市长安镇振安路 88 号"
contact_person = "王敏（人力资源部）"
contact_phone = "0769-8888 1234"
link_base = "https://hr.example.cn"
hr_wecom = "{hr}"
"""


class WallClock:
    """The provider server's clock: the real one (it records when each message arrived)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def wecom():
    with WeComServer(WallClock(), CORP, SECRET, AGENT, {MANAGERS["一号线"], HR}, "unused-robot") as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "messages", tz=TZ).start()
    yield box
    box.stop()


@pytest.fixture
def system(tmp_path, broker, zk_terminal, wecom, outbox):
    chain = System(tmp_path, broker.port, zk_terminal.address).configure()
    secret = chain.cloud_conf.parent / "secrets" / "wecom"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(SECRET + "\n", encoding="utf-8")
    os.chmod(secret, 0o600)
    with chain.cloud_conf.open("a", encoding="utf-8") as toml:
        toml.write(CHANNELS.format(corp=CORP, agent=AGENT, url=wecom.url, hr=HR, sms_url=outbox.sms_url))
    yield chain
    chain.stop_all_cleanly()


def _workbook(path, starts: dict[str, datetime], hired: str) -> None:
    """Two shifts (grace 0) starting at ``starts``, one line each: 1001 and 1002 on 一号线, 1003 and 1004 on 二号线;
    their managers (not rostered) with WeCom ids."""
    book = Workbook()
    book.remove(book.active)
    shifts = [["班次", "名称", "时段", "迟到宽限"]]
    for shift, start in starts.items():
        begin = start.astimezone(TZ)
        shifts.append([shift, f"{shift}班", f"{begin:%H:%M}-{begin + timedelta(hours=8):%H:%M}", 0])
    workers = [["工号", "考勤号", "姓名", "产线", "排班", "主管工号", "企业微信", "手机", "入职日期"]]
    workers += [
        ["M0", "900", "赵主管", "一号线", "", "", MANAGERS["一号线"], "", hired],
        ["M1", "901", "钱主管", "二号线", "", "", "", PHONE, hired],
    ]
    workers += [
        ["E1001", "1001", "张三", "一号线", "A", "M0", "", "", hired],
        ["E1002", "1002", "李四", "一号线", "A", "M0", "", "", hired],
        ["E1003", "1003", "王五", "二号线", "B", "M1", "", "", hired],
        ["E1004", "1004", "赵六", "二号线", "B", "M1", "", "", hired],
    ]
    sheets = {
        "班次": shifts,
        "排班规则": [["编号", "类型", "模式", "节假日"], ["A", "固定", "A,A,A,A,A,A,A", "照常"]]
        + [["B", "固定", "B,B,B,B,B,B,B", "照常"]],
        "员工": workers,
    }
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def _texts(wecom: WeComServer, who: str) -> list[tuple[datetime, str]]:
    return [(m["at"], m["body"]["text"]["content"]) for m in wecom.messages if who in m["to"]]


def _alerts(system: System) -> list[tuple]:
    return system.appliance_rows("SELECT seq, t_wall_ms FROM log_record WHERE type = 'alert' ORDER BY seq")


def test_a_missed_check_in_reaches_the_line_manager_within_two_minutes_and_after_an_outage_once(
    system, broker, terminal_state, wecom, outbox, tmp_path
):
    now = datetime.now(UTC)
    first = (now + timedelta(seconds=90)).replace(second=0, microsecond=0)  # 30-90 s ahead: the setup's time
    starts = {"A": first, "B": first + timedelta(minutes=1)}
    system.recording_since(now - timedelta(days=1))
    board_port = system.start_web("appliance")
    db = open_db(f"sqlite:///{system.root / 'cloud' / 'cloud.sqlite3'}")
    with db.connection_context():
        alerts = {"channels": ["wecom", "sms"], "board_url": f"http://127.0.0.1:{board_port}"}
        publish("*", policy_body() | {"alerts": alerts}, by="hr-admin", now_ms=int(now.timestamp() * 1000))
    db.close()
    book = tmp_path / "花名册.xlsx"
    _workbook(book, starts, (now - timedelta(days=60)).astimezone(TZ).date().isoformat())
    cli("cloud", "import-hr", "-c", system.cloud_conf, "--plant", PLANT, book)
    for user in ("1003", "1004"):
        terminal_state.add_user(user, user)
    system.start_ingest()
    system.start_appliance()
    system.spawn("escalate", "cloud", "escalate", "-c", system.cloud_conf, "--interval", "1")
    cli("cloud", "push-plant-config", "-c", system.cloud_conf, "--plant", PLANT)
    wait_until(
        lambda: system.appliance_rows("SELECT count(*) FROM employee")[0][0] == 6,
        timeout=30,
        message="the roster on the appliance",
    )
    local = (first - timedelta(minutes=2)).astimezone(TZ).replace(tzinfo=None)
    terminal_state.punch("1001", state=0, when=local)  # 张三 and 王五 punched before their shifts
    terminal_state.punch("1003", state=0, when=local)
    assert datetime.now(UTC) < first, "the setup took longer than the margin before the first shift"

    # 一号线: everything up; the manager's message within 2 minutes of start + grace (0)
    (at, text), *more = wait_until(
        lambda: _texts(wecom, MANAGERS["一号线"]), timeout=(first - now).total_seconds() + LIMIT_S, message="alert"
    )
    assert more == [] and (at - first).total_seconds() <= LIMIT_S, f"{at - first} after the shift's start"
    assert "【未打卡预警】" in text and "一号线 1 人未打卡" in text and "李四（工号 1002）" in text
    assert "张三" not in text and "1001" not in text, "who punched is not listed"
    assert f"http://127.0.0.1:{board_port}/?date=" in text, "a link to the plant's board"
    wait_until(lambda: any("一号线 1 人未打卡" in t for _, t in _texts(wecom, HR)), timeout=30, message="HR told too")

    # 二号线: the broker is down when its alert is raised
    broker.kill()
    wait_until(lambda: system.appliance_rows("SELECT connected FROM sync_state")[0][0] == 0, timeout=30)
    assert datetime.now(UTC) < starts["B"], "the broker went down after the second shift began"
    wait_until(lambda: len(_alerts(system)) == 2, timeout=(starts["B"] - now).total_seconds() + 60, message="alert")
    cli("appliance", "create-user", "-c", system.appliance_conf, "boss", "--role", "plant_manager", "--password-stdin",
        stdin=PASSWORD + "\n")  # fmt: skip
    web = WebClient(f"http://127.0.0.1:{board_port}")
    web.login("boss", PASSWORD)
    _, page = web.get("/")
    assert "二号线（B班）1 人未打卡，外网中断，恢复后发送" in page
    assert "一号线（A班）1 人未打卡，已通知主管和人事" in page
    assert [t for _, t in _texts(wecom, HR) if "二号线" in t] == [] and "SMS_DEMO_ALERT" not in _index(outbox)
    broker.restart()
    (_, text), *more = wait_until(
        lambda: [(at, t) for at, t in _texts(wecom, HR) if "二号线" in t], timeout=60, message="after the outage"
    )
    assert "二号线 1 人未打卡" in text and "赵六（工号 1004）" in text and "王五" not in text
    sms = wait_until(lambda: [x for x in _index(outbox).splitlines() if "SMS_DEMO_ALERT" in x], timeout=30)
    assert len(sms) == 1 and PHONE.removeprefix("+86") in sms[0] and "line=二号线" in sms[0] and "count=1" in sms[0], (
        sms
    )
    wait_until(  # the appliance hears head office holds it: the board says so
        lambda: "二号线（B班）1 人未打卡，已通知主管和人事" in web.get("/")[1], timeout=60, message="the board's state"
    )
    # HR's alerts, once each (HR's to-do digest, hr_digest, may come in between: another message, not an alert)
    hr_alerts = [t for _, t in _texts(wecom, HR) if "【未打卡预警】" in t]
    assert more == [] and len(hr_alerts) == 2, _texts(wecom, HR)
    assert len(_texts(wecom, MANAGERS["一号线"])) == 1, "once each"
    assert len([x for x in _index(outbox).splitlines() if "SMS_DEMO_ALERT" in x]) == 1
    assert system.cloud_rows("SELECT status FROM missed_alert ORDER BY id") == [("sent",), ("sent",)]
    assert system.cloud_rows("SELECT count(*) FROM alert_message") == [(4,)], "each manager and HR, once per alert"


def _index(outbox: Outbox) -> str:
    return outbox.index.read_text(encoding="utf-8")
