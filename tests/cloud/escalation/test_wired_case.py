"""The seed's case end to end over real wires: a 10-day sick leave ends, no return, the ladder runs to the
termination draft, two HR people confirm, the union is told, the termination is served and the statutory
tasks fall due — every message received by the local provider servers (a real SMTP server, Aliyun SMS and
WeCom speaking their APIs), every step in the timeline, every contact and every person's action in the
cloud's signed evidence log, and the exported bundle accepted by ``verify_bundle``. Then: two runners at
once, and a tick run twice, send each message exactly once through the real dispatcher."""

from __future__ import annotations

import email
import hashlib
import io
import json
import re
import threading
import zipfile
from collections import Counter
from datetime import date, timedelta
from email import policy as email_policy

import pytest

from cloud.channels import manual
from cloud.channels.contact_log import ContactAttempt, DeliveryReceipt
from cloud.escalation import actions, cases, timeline
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask
from cloud.evidence.export import export_bundle, injury_purpose
from cloud.evidence.log import ORIGIN, EvidenceCheckpoint, EvidenceLog, EvidenceRecord
from cloud.evidence.witness_log import WitnessLog
from cloud.ingest.verifier import BatchIngest
from cloud.notices.records import NoticeDocument
from cloud.store import open_db
from ledger import make_record, note, topics
from ledger.evidence import MANIFEST, verify_bundle
from ledger.merkle import CompactRange
from ledger.messages import Batch
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, ms, pass_deadline
from tests.cloud.escalation.transcript import Transcript

DAY = 86_400_000
START = date(2025, 3, 3)  # Monday; ten days of 病假 end Thursday 03-13 at midnight


class CheckpointedFeed(PlantFeed):
    """The plant, each record sent with its signed checkpoint, cosigned by the cloud's witness key."""

    def start_with(self, witness, **policy) -> CheckpointedFeed:  # type: ignore[no-untyped-def]
        self.start(**policy)
        self.ingest = BatchIngest(self.clock, witness_key=witness)
        self.tree = CompactRange()
        return self

    def _append(self, type_: str, **body: object) -> None:
        body = {**body, **self.owner_tag(body)}
        record = make_record(
            key=self.key, log=self.log, seq=self.seq, type=type_, prev=self.prev, t_wall_ms=ms(self.clock.now()), **body
        )
        self.tree.append(record.leaf)
        checkpoint = note.Checkpoint(self.log, self.seq + 1, self.tree.root())
        signed = note.render(checkpoint, [note.sign(checkpoint, self.key)])
        ack = self.ingest.handle(
            topics.batch(self.plant_id, self.name), Batch(self.log, self.seq, (record,), signed).encode()
        ).ack
        assert ack.status == "ok", ack
        self.seq, self.prev = self.seq + 1, record.leaf


@pytest.fixture
def db(cloud_db_url):
    """The wired case on SQLite and on PostgreSQL (the evidence log's row locks and the migrations differ)."""
    database = open_db(cloud_db_url)
    cases._policies.clear()
    yield database
    database.close()


def _sms(wired) -> Counter:
    return Counter((s["phone"], s["template"]) for s in wired.aliyun.sent)


def _wecom(wired) -> Counter:
    return Counter(user for m in wired.wecom.messages for user in m["to"])


def _bundle(wired, clock, first: date, last: date) -> bytes:  # type: ignore[no-untyped-def]
    """Worker 2001's evidence bundle for ``first``..``last``, with the cloud's witness and evidence logs."""
    return export_bundle(
        "2001",
        first,
        last,
        witness=wired.witness.verify_key,
        clock=clock,
        plant_id="p1",
        witness_log=WitnessLog(wired.witness, clock),
        evidence_log=EvidenceLog(wired.evidence_key, wired.witness, clock),
        evidence_key=wired.evidence_key.verify_key,
    )


def _ems_task(step: str) -> ContactAttempt:
    return ContactAttempt.get((ContactAttempt.step_id == step) & (ContactAttempt.provider == "person.ems"))


def test_the_seed_case_goes_out_over_every_wire_and_its_evidence_verifies(wired, clock):
    feed = CheckpointedFeed(clock).start_with(
        wired.witness, gates={"approve_cuigao": True, "termination_approvers": 2}, handbook=wiring.HANDBOOK
    )
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    tr = Transcript(wired, clock)
    feed.leave("2001", "BJ-2025-031", local(START, "00:00"), local(START + timedelta(days=10), "00:00"))
    clock.advance_to(local(START, "06:00"))
    day = START
    while day < date(2025, 3, 13):
        day_passes(feed, service, day)
        day += timedelta(days=1)
    assert AbsenceCase.select().count() == 0 and not wired.aliyun.sent
    day_passes(feed, service, date(2025, 3, 13))  # D1, 23:30: the reminder waits for 08:00
    tr.day()
    assert not wired.aliyun.sent and not wired.wecom.messages
    clock.advance(hours=9)
    service.tick()
    tr.day()
    assert _sms(wired) == {("13800138000", "SMS_100000001"): 1}
    assert _wecom(wired) == {"zhangsan": 1}
    reminder = wired.aliyun.sent[0]["params"]
    assert reminder["name"] == "张三" and reminder["link"].startswith("https://hr.example.cn/n/")

    day_passes(feed, service, date(2025, 3, 14))  # D2: the warning to the manager and HR (no quiet hours)
    tr.day()
    assert sorted(wired.smtp_to()) == ["hr-team@factory.example.cn", "lisi@factory.example.cn"]
    assert _wecom(wired) == {"zhangsan": 1, "lisi": 1, "wangmin": 1}

    day_passes(feed, service, date(2025, 3, 17))  # D3: the 催告函 waits for HR's approval; welfare check opens
    tr.day()
    case = AbsenceCase.get()
    assert (case.level, case.welfare) == (3, "open")
    actions.approve(case.id, "approve_cuigao", by="hr-wang", now_ms=ms(clock.now()))
    clock.advance(hours=9)
    service.tick()
    tr.day()
    assert _sms(wired)[("13800138000", "SMS_100000003")] == 1  # 催告函
    assert _sms(wired)[("13900139000", "SMS_100000004")] == 1  # the emergency contact
    cuigao_mail = email.message_from_bytes(wired.mailbox.envelopes[-1].content, policy=email_policy.default)
    assert cuigao_mail["To"] == "zhangsan@example.cn" and "催告函" in str(cuigao_mail["Subject"])
    (pdf,) = [part.get_content() for part in cuigao_mail.iter_attachments()]
    assert NoticeDocument.get(NoticeDocument.pdf_sha256 == hashlib.sha256(pdf).hexdigest()).template_id == "cuigao"
    voice = ContactAttempt.get((ContactAttempt.step_id == "L3:welfare") & (ContactAttempt.provider == "person.voice"))
    assert voice.status == "task_open" and voice.recipient == "+8613900139000"
    wired.aliyun.push_reports()  # Aliyun's SmsReport push, to the callback the web app mounts
    delivered = DeliveryReceipt.select().where(
        (DeliveryReceipt.provider == "aliyun") & (DeliveryReceipt.status == "delivered")
    )
    sms = ContactAttempt.select().where(ContactAttempt.provider == "aliyun")
    assert {r.attempt_id for r in delivered} == {a.id for a in sms} and sms.count() == 3  # pushed (and pulled)
    manual.record_result(
        _ems_task("L3").id, manual.Outcome.EMS_DELIVERED, operator="hr-wang", waybill="EA100200300CN", clock=clock
    )
    actions.complete_task(case.id, "ems_cuigao", by="hr-wang", now_ms=ms(clock.now()), proof="EMS EA100200300CN")
    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人无法接通")
    tr.day()
    # served (the EMS 妥投 HR recorded, and the SMS's delivery receipt), but 旷工 waits for the deadline
    assert AbsenceCase.get().level == 3

    day_passes(feed, service, date(2025, 3, 18))
    tr.day()
    pass_deadline(clock, service, case.id)  # the return deadline (Monday 03-24 18:00) passes; Tuesday 08:30
    tr.day()
    case = AbsenceCase.get()
    assert (case.level, case.state) == (5, "L5_TERMINATION_DRAFT")
    assert _sms(wired)[("13800138000", "SMS_100000005")] == 1  # 旷工通知书
    actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()))
    actions.approve(case.id, "confirm_termination", by="hr-li", now_ms=ms(clock.now()))
    tr.day()
    service.tick()
    tr.day()
    assert wired.smtp_to().count("union@factory.example.cn") == 1  # 第四十三条: the union first
    actions.complete_task(case.id, "union_reply", by="hr-li", now_ms=ms(clock.now()), proof="工会书面意见：无异议")
    tr.day()
    clock.advance(hours=1)
    service.tick()
    tr.day()
    assert AbsenceCase.get().level == 6  # the union's reply does not bring forward the date its letter proposed
    clock.advance_to(local(date(2025, 3, 31), "08:30"))  # that date: the first working day after the reply window
    service.tick()
    tr.day()
    assert AbsenceCase.get().level == 7
    assert _sms(wired)[("13800138000", "SMS_100000007")] == 1  # 解除劳动合同通知书
    served = ms(clock.now()) + 2 * DAY
    clock.advance(days=2)
    manual.record_result(
        _ems_task("L7:termination").id,
        manual.Outcome.EMS_DELIVERED,
        operator="hr-li",
        waybill="EA100200399CN",
        clock=clock,
    )
    actions.record_service(
        case.id, "termination", by="hr-li", now_ms=ms(clock.now()), served_ms=served, method="EMS", proof="妥投"
    )
    wired.aliyun.push_reports()
    service.tick()
    tr.day()
    case = AbsenceCase.get()
    assert case.level == 8 and case.effective_ms == served
    due = {t.kind: t.due_ms for t in CaseTask.select().where((CaseTask.case == case) & CaseTask.statutory)}
    assert due["archive_transfer"] == served + 15 * DAY and due["unemployment_list"] == served + 7 * DAY

    # every message exactly once, at every provider
    assert all(n == 1 for n in _sms(wired).values()) and len(_sms(wired)) == 5
    assert _wecom(wired) == {"zhangsan": 3, "lisi": 1, "wangmin": 1}  # L1, L3, L7 to him: three notices
    assert len(wired.smtp_to()) == len(set(wired.smtp_to())) + 2  # to him: 催告函, 旷工通知书, 解除通知书
    sent = [s.key for s in CaseStep.select().where(CaseStep.status == "sent").order_by(CaseStep.sent_ms)]
    assert sent == ["L1", "L2", "L3", "L3:welfare", "L4", "L6:union", "L7:termination"]
    assert timeline.verify(case) == []

    # the cloud's signed log holds every attempt, receipt and person's action
    logged = Counter(t for (t,) in EvidenceRecord.select(EvidenceRecord.type).tuples())
    assert logged["contact"] == ContactAttempt.select().count()
    assert logged["receipt"] == DeliveryReceipt.select().count() >= 7
    assert logged["case_action"] >= 8  # approvals, tasks, welfare, service
    assert EvidenceCheckpoint.select().count() >= 1

    # to 04-02, the termination's service: the deadline and the union's proposed date now come later in the case
    bundle = _bundle(wired, clock, date(2025, 3, 13), date(2025, 4, 2))
    report = verify_bundle(bundle, witness_key=wired.witness.verify_key)
    failed = [c for c in report.checks if not c.ok]
    assert report.ok, failed
    contacts = next(c for c in report.checks if c.name.endswith(": contacts"))
    assert f"{logged['contact']} contact attempts, {logged['receipt']} receipts" in contacts.detail  # after the Chinese
    assert "sent files match" in contacts.detail and not contacts.detail.startswith("0 ")
    cloud_records = [d for d in report.disclosed if d["log"] == ORIGIN]
    steps = {d["fields"]["step"] for d in cloud_records if d["fields"]["type"] == "contact"}
    assert steps == set(sent)  # every step of his case, to whomever it went
    assert {d["fields"]["actor"] for d in cloud_records if d["fields"]["type"] == "case_action"} == {"hr-wang", "hr-li"}
    assert any(c.name == "witness log" and c.ok for c in report.checks)

    # two weeks after the termination took effect his father says he was hurt at work on his first absent day
    clock.advance(days=14)
    accident_ms = ms(local(date(2025, 3, 13), "07:40"))
    actions.claim_injury(
        case.id,
        by="hr-li",
        now_ms=ms(clock.now()),
        accident_ms=accident_ms,
        claimant="员工父亲张某",
        note="称上班途中受伤",
    )
    service.tick()
    tr.day()
    held = {t.kind: t.status for t in CaseTask.select().where(CaseTask.case == case)}
    assert held["social_insurance_stop"] == "held" and held["review_injury"] == "open", held
    scope, accident_day, purpose = injury_purpose(case.id)
    accident = export_bundle(
        scope.employee,
        accident_day,
        accident_day,
        witness=wired.witness.verify_key,
        clock=clock,
        plant_id=scope.plant,
        witness_log=WitnessLog(wired.witness, clock),
        evidence_log=EvidenceLog(wired.evidence_key, wired.witness, clock),
        evidence_key=wired.evidence_key.verify_key,
        purpose=purpose,
    )
    proved = verify_bundle(accident, witness_key=wired.witness.verify_key)
    assert proved.ok, [c for c in proved.checks if not c.ok]
    with zipfile.ZipFile(io.BytesIO(accident)) as archive:
        own = [json.loads(archive.read(n)) for n in archive.namelist() if re.fullmatch(r"logs/0/records/\d+\.json", n)]
        manifest = json.loads(archive.read(MANIFEST))
    # outside the accident's day only the record giving his owner-tag key is disclosed, whatever its day: without
    # it no one could check that none of his records was withheld
    outside = [r for r in own if "fact" in r and r["fact"]["date"] != "2025-03-13"]
    assert all("tagkey" in r for r in outside) and len(outside) <= 1, outside
    inside = [r for r in own if "fact" in r and r not in outside]
    facts = [(r["fact"]["emp"], r["fact"]["date"], r["fact"]["status"]) for r in inside]
    assert facts == [("2001", "2025-03-13", "missing")], facts  # that day the appliance recorded him absent
    assert manifest["purpose"]["accident_date"] == "2025-03-13"

    # what each of them received, day by day (test-artifacts/seed-case-replay.md, for the team to read)
    tr.write("seed-case-replay.md")
    assert {what for _, what in tr.received("emergency_contact")} == {
        "短信：关怀联系",
        "电话（人工）：关怀联系（待办）",
    }
    assert {what for _, what in tr.received("manager")} == {"邮件：缺勤预警", "企业微信：缺勤预警"}
    assert {what for _, what in tr.received("union")} == {"邮件：工会通知函 + PDF"}
    first = {}  # the day each notice first reached him
    for n, day in enumerate(tr.days):
        for what in day.received["employee"]:
            first.setdefault(what.split("：", 1)[1].replace(" + PDF", ""), n)
    order = ["未到岗提醒", "催告函", "旷工通知书", "解除通知书"]
    assert [first[name] for name in order] == sorted(first[name] for name in order), first
    assert len({first[name] for name in order}) == len(order), "each on its own day"


def test_a_forged_notice_in_the_bundle_fails_verification(wired, clock):
    """The same kind of bundle, one attached PDF swapped: the signed contact record no longer matches it."""
    import io
    import zipfile

    from ledger.evidence import SUMS, sha256sums

    feed = CheckpointedFeed(clock).start_with(wired.witness, handbook=wiring.HANDBOOK)
    feed.hire("2001")
    wiring.staff("2001")
    service = wired.service(clock)
    clock.advance_to(local(date(2025, 3, 3), "06:00"))
    for day in (date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)):
        day_passes(feed, service, day)
        clock.advance(hours=9)
        service.tick()
    assert ContactAttempt.select().where(ContactAttempt.step_id == "L3").count() >= 3
    bundle = _bundle(wired, clock, date(2025, 3, 3), date(2025, 3, 6))
    assert verify_bundle(bundle, witness_key=wired.witness.verify_key).ok
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    (name,) = [n for n in files if n.startswith("cloud/notices/")]
    files[name] = files[name].replace(b"%%EOF", b"%%EOF\n% edited")
    files[SUMS] = sha256sums({n: d for n, d in files.items() if n != SUMS})  # an attacker recomputes the sums
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n, d in files.items():
            archive.writestr(n, d)
    report = verify_bundle(out.getvalue(), witness_key=wired.witness.verify_key)
    check = next(c for c in report.checks if c.name.endswith(": contacts"))
    assert not check.ok and "not the one sent" in check.detail


def _at_once(services) -> None:
    barrier = threading.Barrier(len(services))
    errors: list[BaseException] = []

    def run(service) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            service._engine.tick(exclusive=False)  # the row guards alone, no runner lock
        except BaseException as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_runners_at_once_and_a_tick_twice_send_each_message_once(wired, clock):
    feed = CheckpointedFeed(clock).start_with(wired.witness, handbook=wiring.HANDBOOK)
    workers = [f"30{n:02d}" for n in range(6)]
    for n, user_id in enumerate(workers):
        feed.hire(user_id)
        emp = wiring.staff(user_id)
        emp.phone, emp.wecom_id = f"+861380013{n:04d}", "zhangsan"
        emp.save()
    runners = [wired.service(clock, runner_id=f"r{i}") for i in range(2)]
    clock.advance_to(local(date(2025, 3, 3), "06:00"))
    for day in (date(2025, 3, 3), date(2025, 3, 4)):
        day_passes(feed, runners[0], day, until="07:00")  # before 08:00: people's steps wait
        feed.evaluate(day)
        clock.advance(hours=17)  # 23:59: the day is confirmed
        feed.evaluate(day)
        runners[0]._engine.tick()  # count the days; the reminder is held for quiet hours
        clock.advance(hours=9)  # 08:59 next morning: everything due at once
        _at_once(runners)
        runners[1]._engine.tick()  # a tick run twice
        runners[0]._engine.tick()
    phones = Counter(s["phone"] for s in wired.aliyun.sent)
    assert sorted(phones) == sorted(f"1380013{n:04d}" for n in range(6))
    assert set(phones.values()) == {1}  # one reminder each, though two runners and repeated ticks
    keys = Counter((a.idem_key, a.attempt_no) for a in ContactAttempt.select())
    assert set(keys.values()) == {1}
    managers = Counter(r for e in wired.mailbox.envelopes for r in e.rcpt_tos if r.startswith("lisi"))
    assert managers["lisi@factory.example.cn"] == 6  # one L2 warning per worker's case, each once
    for step in CaseStep.select():
        assert step.status in ("sent", "due", "awaiting_approval", "superseded"), (step.key, step.status, step.error)
