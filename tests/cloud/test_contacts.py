"""Emergency contacts verified before they are needed (#20 item 5): several per employee, imported from HR's sheet or
added on the employee page; each asked by SMS to reply "确认", the reply coming back over the provider's own inbound
push (Aliyun SmsUp, Tencent 短信回复回调) to head office's web app served over HTTP, signed into the evidence log;
asked again every six months.

The local provider servers check signatures as the providers do and push replies as they do; the web app is the
real app factory served on loopback; one Chromium look at the employee page (1366x768).
"""

from __future__ import annotations

import io
import json
import threading

import pytest
from openpyxl import Workbook
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.channels.dispatch import Dispatcher
from cloud.channels.settings import ChannelSettings
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.channels.sms_tencent import TencentSms, TencentSmsSettings, TencentTemplate
from cloud.config import CloudSettings
from cloud.escalation import policy
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase
from cloud.escalation.sender import RecordingSender
from cloud.evidence.log import EvidenceLog, EvidenceRecord
from cloud.hr import contacts, importer
from cloud.hr.models import EmergencyContact, Employee
from cloud.store import Account, Plant, database, open_db
from cloud.web import create_app
from cloud.workers.escalate import EscalationService
from ledger import SignedRecord, SigningKey
from tests.cloud.web.test_import_template import upload
from tests.harness.browser import chromium, shoot, sign_in
from tests.harness.clock import FrozenClock
from tests.harness.http import WebClient
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.base import post_json
from tests.harness.providers.tencent import TencentSmsServer
from tests.harness.raw_codes import raw_codes, visible_text

PASSWORD = "a long enough password"
TOKEN = "cb-9d2f61a7e3b84c05"
ALI_ID, ALI_SECRET = "LTAI5tTestKeyId0002", "aliyun-secret-Kq2v8MNx0pLz"
TC_ID, TC_SECRET, TC_APP = "AKIDtestSecretId0002", "tencent-secret-Pq72Kd9aZw", "1400787879"
SIGN = "某某电子"
ZONE = "Asia/Shanghai"
DAY_MS = 86_400_000


def morning() -> FrozenClock:
    clock = FrozenClock()
    clock.advance(hours=2)  # 10:00 in Shanghai: a family member may be texted
    return clock


def sheet(rows: list[dict[str, str]]) -> bytes:
    """An 员工 sheet as HR fills it in Excel: one row per employee, a second contact in its own columns."""
    headers = list(dict.fromkeys(h for row in rows for h in row))
    book = Workbook()
    data = book.active
    data.title = "员工"
    data.append(headers)
    for row in rows:
        data.append([row.get(h, "") for h in headers])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
def site(tmp_path):
    """Head office served over HTTP with Aliyun SMS configured (its local server), and HR signed in."""
    clock = morning()
    with AliyunSmsServer(clock, ALI_ID, ALI_SECRET) as aliyun:
        sms = AliyunSmsSettings(
            ALI_ID, ALI_SECRET, SIGN, {contacts.TEMPLATE: "SMS_490000001"}, endpoint=f"{aliyun.url}/"
        )
        settings = CloudSettings(
            database_url=f"sqlite:///{tmp_path}/cloud.sqlite3",
            state_dir=str(tmp_path),
            channels=ChannelSettings(sms_aliyun=sms, callback_token=TOKEN),
        )
        app = create_app(settings)
        app.config["CLOCK"] = clock
        with database.connection_context():
            Plant.create(id="p1", name="一厂", timezone=ZONE)
            Account.create(username="hr", password_hash=generate_password_hash(PASSWORD), role="hr_admin", created_ms=0)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        aliyun.reply_url = f"{base}/channels/receipts/{TOKEN}/aliyun/smsup"
        client = WebClient(base)
        assert client.login("hr", PASSWORD)[0] == 200
        dispatcher = Dispatcher([AliyunSms(sms, clock=clock)], clock=clock)
        yield client, aliyun, clock, dispatcher
        server.shutdown()
    if not database.is_closed():
        database.close()


def state_of(page: str, phone: str) -> str:
    """The data-state of the contact row showing ``phone`` on the employee page."""
    row = page.split(f'value="{phone}"')[0].rsplit('<tr class="contact"', 1)[1]
    return row.split('data-state="')[1].split('"')[0]


def test_contacts_imported_asked_confirmed_and_shown(site, tmp_path):
    client, aliyun, clock, dispatcher = site
    workbook = sheet(
        [
            {
                "工号": "E1001",
                "考勤号": "1001",
                "姓名": "张三",
                "紧急联系人": "张父",
                "紧急联系人关系": "父亲",
                "紧急联系人电话": "13900139000",
                "紧急联系人2": "张母",
                "紧急联系人2关系": "母亲",
                "紧急联系人2电话": "13700137000",
            }
        ]
    )
    status, page = upload(client, workbook, "花名册.xlsx")
    assert status == 200, page
    with database.connection_context():
        employee = Employee.get(Employee.employee_no == "E1001")
        listed = [(c.name, c.relation, c.phone, c.position) for c in contacts.listed(employee)]
    assert listed == [("张父", "父亲", "13900139000", 1), ("张母", "母亲", "13700137000", 2)]

    # the runner's tick asks both to confirm: the SMS through Aliyun, signed as Aliyun checks it
    with database.connection_context():
        sent = contacts.tick(dispatcher, clock, zone=ZONE)
        again = contacts.tick(dispatcher, clock, zone=ZONE)  # a second tick (or runner) sends nothing twice
    assert [a.status.value for a in sent] == ["sent", "sent"] and again == []
    assert [(s["phone"], s["template"], s["params"]) for s in aliyun.sent] == [
        ("13900139000", "SMS_490000001", {"name": "张三"}),
        ("13700137000", "SMS_490000001", {"name": "张三"}),
    ]
    with database.connection_context():
        attempt = ContactAttempt.get(ContactAttempt.recipient == "+8613900139000")
    assert attempt.case_ref.startswith("contact-") and attempt.template_id == contacts.TEMPLATE

    # HR adds a third on the page: asked at once
    _status, page = client.get(f"/employees/{employee.id}")
    assert state_of(page, "13900139000") == "pending" and "已发送核验短信" in page
    status, page = client.post(
        f"/employees/{employee.id}/contacts",
        {"csrf": client.csrf(page), "name": "李四", "relation": "朋友", "phone": "136 0013 6000"},
    )
    assert status == 200 and "紧急联系人已添加" in page
    assert aliyun.sent[-1]["phone"] == "13600136000" and state_of(page, "13600136000") == "pending"

    # the father replies 确认 (as typed on a phone: a space and a full stop), the mother something else
    assert aliyun.reply("13900139000", " 确认。") == (200, {"code": 0, "msg": "接收成功"})
    assert aliyun.reply("13700137000", "不认识这个人", masked=True) == (200, {"code": 0, "msg": "接收成功"})
    assert aliyun.push_again() == (200, {"code": 0, "msg": "接收成功"})  # Aliyun pushes again: counted once
    _status, page = client.get(f"/employees/{employee.id}")
    assert state_of(page, "13900139000") == "verified" and "已确认" in page
    assert state_of(page, "13700137000") == "failed" and "核验失败" in page and "不认识这个人" in page
    assert state_of(page, "13600136000") == "pending"
    with database.connection_context():
        replies = list(DeliveryReceipt.select().where(DeliveryReceipt.status == "replied").order_by(DeliveryReceipt.id))
        mother = EmergencyContact.get(EmergencyContact.phone == "13700137000")
    assert [r.detail for r in replies] == [" 确认。", "不认识这个人"]
    assert json.loads(replies[1].raw)["phone_number"] == "137****7000"  # kept as Aliyun sent it
    assert mother.verification == "failed" and mother.reply_text == "不认识这个人"
    assert mother.reply_ms == int(clock.now().timestamp() * 1000)  # the app's clock, as the page shows it

    # a forged reply (no token, or a guessed one) is refused and changes nothing
    status, answer = post_json(
        f"{client.base}/channels/receipts/cb-guessed-token-0000/aliyun/smsup",
        [{"phone_number": "13700137000", "content": "确认", "sequence_id": 1}],
    )
    assert status == 403 and "回调令牌不正确" in json.loads(answer)["msg"]
    with database.connection_context():
        assert EmergencyContact.get(EmergencyContact.phone == "13700137000").verification == "failed"
        assert DeliveryReceipt.select().where(DeliveryReceipt.status == "replied").count() == 2

    # the case page, where the 失联 steps would use these numbers: the unconfirmed ones are flagged
    with database.connection_context():
        case = open_case(employee, clock)
    _status, page = client.get(f"/cases/{case.id}")
    shown = page.split('id="case-contacts">')[1].split("</dd>")[0]
    lines = {name: visible_text(line) for name, line in zip(("张父", "张母", "李四"), shown.split("<br>"), strict=True)}
    assert "已确认" in lines["张父"] and "不可依赖" not in lines["张父"]
    assert "核验失败" in lines["张母"] and "失联联系时不可依赖" in lines["张母"]
    assert "已发送核验短信" in lines["李四"] and "失联联系时不可依赖" in lines["李四"]
    assert raw_codes(visible_text(shown)) == []

    # what HR sees, in a real browser at the size of an office laptop
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1366, "height": 768})
        tab.goto(f"{client.base}/login")
        sign_in(tab, "hr", PASSWORD)
        tab.goto(f"{client.base}/employees/{employee.id}#contacts")
        father = tab.locator('tr.contact[data-state="verified"]')
        assert father.count() == 1 and "已确认" in father.inner_text()
        assert father.locator("td.state").is_visible()
        assert "不认识这个人" in tab.locator('tr.contact[data-state="failed"]').inner_text()
        shoot(tab, "employee-contacts", {"laptop": (1366, 768)})


def open_case(employee: Employee, clock: FrozenClock) -> AbsenceCase:
    """An open case of the employee at its first level, under the default policy (what the engine would open)."""
    now = int(clock.now().timestamp() * 1000)
    version = policy.publish("*", policy.DEFAULT_BODY, by="hr", now_ms=now)
    return AbsenceCase.create(
        employee=employee,
        plant="p1",
        user_id="1001",
        policy=version,
        trigger="missed_shift",
        state="D1_CONFIRMED",
        opened_ms=now,
        first_day="2026-03-02",
        first_start_ms=now,
        days=1,
        open_key=employee.id,
    )


VERIFY_TEXT = "{1}将您登记为紧急联系人，请回复“确认”。回复其他内容或不回复视为未确认。"  # as approved at Tencent


@pytest.fixture
def tencent_site(tmp_path):
    """The receipts blueprint of the web app served on loopback, Tencent's local server pushing to it."""
    from flask import Flask

    from cloud.channels.callbacks import receipts_blueprint

    clock = morning()
    open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    app = Flask(__name__)
    app.register_blueprint(receipts_blueprint(TOKEN, clock=clock))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    reply_url = f"http://127.0.0.1:{server.server_port}/channels/receipts/{TOKEN}/tencent/reply"
    with TencentSmsServer(clock, TC_ID, TC_SECRET, TC_APP, reply_url=reply_url) as tencent:
        template = TencentTemplate("2234567", ("name",), VERIFY_TEXT)
        sms = TencentSmsSettings(TC_ID, TC_SECRET, TC_APP, SIGN, {contacts.TEMPLATE: template}, endpoint=tencent.url)
        dispatcher = Dispatcher([TencentSms(sms, clock=clock)], clock=clock)
        employee = Employee.create(employee_no="E2001", name="王五")
        yield tencent, clock, dispatcher, employee
    server.shutdown()
    database.close()


def test_tencent_reply_verifies_reconfirmed_every_six_months(tencent_site):
    tencent, clock, dispatcher, employee = tencent_site
    now = int(clock.now().timestamp() * 1000)
    wife = contacts.add(employee, name="王妻", relation="配偶", phone="13800138000", now_ms=now)
    assert contacts.tick(dispatcher, clock, zone=ZONE)[0].status.value == "sent"
    assert tencent.sent[-1]["params"] == ["王五"] and tencent.sent[-1]["phone"] == "+8613800138000"

    # Tencent's reply callback, full-width Ｙ: confirmed; the reply is a receipt of the SMS it answers
    assert tencent.reply("+8613800138000", "Ｙ") == (200, {"result": 0, "errmsg": "OK"})
    assert tencent.push_again() == (200, {"result": 0, "errmsg": "OK"})  # the same callback again: once
    wife = EmergencyContact.get_by_id(wife.id)
    assert wife.verification == "verified" and contacts.shown(wife, now).zh == "已确认"
    reply = DeliveryReceipt.get(DeliveryReceipt.status == "replied")
    assert reply.attempt.recipient == "+8613800138000" and reply.detail == "Ｙ"
    assert DeliveryReceipt.select().where(DeliveryReceipt.status == "replied").count() == 1
    # and the cloud's signed log takes it in, as a receipt of that SMS
    evidence_key = SigningKey.generate()
    EvidenceLog(evidence_key, SigningKey.generate(), clock).catch_up()
    signed = EvidenceRecord.get((EvidenceRecord.source_kind == "receipt") & (EvidenceRecord.source_id == reply.id))
    SignedRecord(bytes(signed.data), bytes(signed.sig)).verify(evidence_key.verify_key)
    record = json.loads(bytes(signed.data))
    assert (record["status"], record["detail"], json.loads(record["raw"])["text"]) == ("replied", "Ｙ", "Ｙ")
    # the SMS it answers is signed with its words as her phone showed them (#20 item 6)
    asked = EvidenceRecord.get(
        (EvidenceRecord.source_kind == "attempt") & (EvidenceRecord.source_id == reply.attempt_id)
    )
    shown = f"【{SIGN}】王五将您登记为紧急联系人，请回复“确认”。回复其他内容或不回复视为未确认。"
    assert json.loads(bytes(asked.data))["text"] == shown

    # a forgery: refused with a plain answer, stored nowhere
    forged = tencent.reply_url.replace(TOKEN, "cb-0000000000000000")
    status, answer = tencent.reply("+8613800138000", "不是", url=forged)
    assert status == 403 and "回调令牌不正确" in json.loads(answer)["errmsg"]
    assert EmergencyContact.get_by_id(wife.id).verification == "verified"

    # five months on: nothing; six months and a day: asked again (at 10:00, not at night), once
    clock.advance(days=150)
    assert contacts.tick(dispatcher, clock, zone=ZONE) == []
    clock.advance(days=33, hours=12)  # 22:00 in Shanghai
    later = int(clock.now().timestamp() * 1000)
    assert contacts.shown(EmergencyContact.get_by_id(wife.id), later).zh == "需重新确认"
    assert contacts.tick(dispatcher, clock, zone=ZONE) == [] and len(tencent.sent) == 1
    clock.advance(hours=12)  # 10:00: the escalation runner's tick asks again
    runner = EscalationService(Engine(clock, RecordingSender(), runner_id="r1"), clock, channels=dispatcher.channels)
    assert "contacts: 1 verification SMS sent, 0 failed" in runner.tick().notes
    assert contacts.tick(dispatcher, clock, zone=ZONE) == [] and len(tencent.sent) == 2
    wife = EmergencyContact.get_by_id(wife.id)
    assert contacts.shown(wife, later).zh == "已发送核验短信"

    # this time she answers something else: failed, her words kept; no answer at all would have left it pending
    tencent.reply("+8613800138000", "换号了，别再发")
    wife = EmergencyContact.get_by_id(wife.id)
    assert wife.verification == "failed" and contacts.shown(wife, later).reply == "换号了，别再发"


def test_a_confirmation_however_typed():
    for said in ("确认", " 确认 ", "确认。", "确定", "是", "Y", "y", "ｙ", "Ｙｅｓ", "确认！"):
        assert contacts.is_confirmation(said), said
    for said in ("不确认", "否", "N", "确认?好像不对", "", "你是谁"):
        assert not contacts.is_confirmation(said), said


def test_an_old_sheet_still_imports_and_a_second_contact_joins_the_first(tmp_path):
    open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    plant = Plant.create(id="p1", name="一厂", timezone=ZONE)
    old = tmp_path / "old.csv"
    old.write_text("工号,考勤号,姓名,紧急联系人,紧急联系人关系,紧急联系人电话\nE1,1,甲,甲父,父亲,13900139001\n")
    importer.import_file(old, plant, 1000)
    first = EmergencyContact.get()
    EmergencyContact.update(verification="verified", verified_ms=1000).execute()
    new = tmp_path / "new.csv"
    new.write_text(
        "工号,考勤号,姓名,紧急联系人,紧急联系人关系,紧急联系人电话,紧急联系人2,紧急联系人2关系,紧急联系人2电话\n"
        "E1,1,甲,甲父,父亲,13900139001,甲母,母亲,13700137001\n"
    )
    importer.import_file(new, plant, 2000)
    rows = contacts.listed(Employee.get())
    assert [(c.id, c.name, c.verification) for c in rows] == [
        (first.id, "甲父", "verified"),
        (rows[1].id, "甲母", "unverified"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("工号,考勤号,紧急联系人2,紧急联系人2电话\nE2,2,乙母,\n")
    with pytest.raises(importer.ImportRefused) as refused:
        importer.import_file(bad, plant, 3000)
    assert "紧急联系人2电话" in str(refused.value) and "没有电话" in str(refused.value)
    database.close()


def test_no_verification_template_means_no_attempt_and_a_refused_number_starves_no_other(tencent_site):
    tencent, clock, dispatcher, employee = tencent_site
    now = int(clock.now().timestamp() * 1000)
    first = contacts.add(employee, name="甲", relation="父亲", phone="13800138001", now_ms=now)
    second = contacts.add(employee, name="乙", relation="母亲", phone="13800138002", now_ms=now + 1)
    # an SMS account without the contact_verify template: nothing is tried (no refused attempt every hour)
    bare = TencentSmsSettings(TC_ID, TC_SECRET, TC_APP, SIGN, {}, endpoint=tencent.url)
    assert contacts.tick(Dispatcher([TencentSms(bare, clock=clock)], clock=clock), clock, zone=ZONE) == []
    assert ContactAttempt.select().count() == 0 and tencent.sent == []
    # the provider refuses the first number: it goes to the back of the queue, the second is asked next
    template = TencentTemplate("2234567", ("name",), VERIFY_TEXT)
    wrong = TencentSmsSettings(TC_ID, "wrong-secret", TC_APP, SIGN, {contacts.TEMPLATE: template}, endpoint=tencent.url)
    refused = contacts.request(first, Dispatcher([TencentSms(wrong, clock=clock)], clock=clock), now_ms=now + 2)
    assert refused is not None and not refused.ok
    assert [c.id for c in contacts.due(now + 3, limit=1)] == [second.id]
