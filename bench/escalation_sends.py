"""Escalation sends: 5,000 L2 warnings due at once, through a provider that answers each request in 100 ms.

Builds the cloud's database as bench/escalation_tick.py does (its ``seed``: plants, badges, a published policy and
one day's facts, ``--open`` of them absent), with one manager per plant whose phone the L2 warning goes to by SMS
(a policy whose L2 step names the manager and SMS only, so that each warning is one request). The opening tick
opens the cases, the L1 reminders go the next morning (recorded, not sent: the L2 waits for them), the next
day's facts make every case's L2 due; a tick with no channel configured counts and advances them, leaving the
5,000 warnings due. That database is copied, and each copy is sent by one measured
tick: through the real ``OutboundSender`` (each notice's words rendered: its text and its SMS, kept with their
hashes and what its PDF will draw, before the message goes; the contact log, the dispatcher's claims) and the Aliyun
SMS channel, to the local Aliyun server of the tests (signatures checked) answering in ``--delay-ms``; then the
tick's PDF pass, timed apart: each notice's PDF drawn with the Chinese font cut to its characters and kept with its
SHA-256 (a warning goes out by SMS with its link: its PDF need not hold the send up, see docs/escalation.md). The
employees have Chinese names (a surname and one or two given characters out of a few hundred), so that notices
draw different characters as they would in a plant, not the same few digits.

Printed for each run: the sends' wall time (the tick until every warning is sent and recorded) beside the limit
(60 s) as a ratio, the SMS the provider accepted and how many distinct idempotency keys (Aliyun's OutId) they
carry, the most requests the provider had in flight at once, the notices whose words were kept, the CPU time this
process spent and per warning sent (the provider's server runs in a process of its own, as a real provider is
another machine: its CPU is printed apart, not ours), and the load average before and after (other work on the
machine shows there; with the cores shared, the wall time can be more than the work); then the PDF pass's wall
and CPU time, the PDFs made, and the time from the tick's start until every PDF was made. With ``--senders`` (the
default: the sender's own). ``--compare`` adds the same with notices that are stand-ins (no rendering) and with one
sender, as ticks sent before.

Run: .venv/bin/python bench/escalation_sends.py [--open 5000] [--delay-ms 100] [--senders N] [--compare]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.escalation_tick import TZ, fact, seed, store_facts  # noqa: E402
from cloud.channels.dispatch import Dispatcher  # noqa: E402
from cloud.channels.ratelimit import DEFAULTS  # noqa: E402
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings  # noqa: E402
from cloud.escalation import cases  # noqa: E402
from cloud.escalation.engine import Engine  # noqa: E402
from cloud.escalation.models import AbsenceCase, CaseStep  # noqa: E402
from cloud.escalation.outbound import PARALLEL, OutboundSender  # noqa: E402
from cloud.escalation.policy import DEFAULT_BODY, publish  # noqa: E402
from cloud.escalation.sender import HoldingSender, PlannedStep, RecordingSender  # noqa: E402
from cloud.hr.models import Employee  # noqa: E402
from cloud.notices import records  # noqa: E402
from cloud.notices.render import NoticeWords, RenderedNotice  # noqa: E402
from cloud.notices.settings import NoticeSettings  # noqa: E402
from cloud.store import database, open_db  # noqa: E402
from tests.harness.clock import FrozenClock  # noqa: E402
from tests.harness.providers.aliyun import AliyunSmsServer  # noqa: E402
from tests.harness.providers.process import ProviderProcess  # noqa: E402

LIMIT_S = 60.0
KEY_ID, KEY_SECRET = "LTAI5tBench000001", "aliyun-secret-bench-01"
TEMPLATES = {t: f"SMS_1000000{n}" for n, t in enumerate(("reminder", "warning", "cuigao", "welfare", "kuanggong"))}
NOTICES = NoticeSettings(
    employer="东莞市某某电子有限公司",
    short_name="某某电子",
    address="广东省东莞市长安镇振安路 88 号",
    contact_person="王敏（人力资源部）",
    contact_phone="0769-8888 1234",
    link_base="https://hr.example.cn",
    hr_phone="+8613700000000",
)


SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂兰文华金玉红梅建国志新春海波宇浩然晨阳鑫鹏飞燕婷雪琳"
    "俊辉斌彬丹凤翠云萍玲佳欣悦思雨梓涵子轩博文嘉怡佩瑶晓东振宏德胜利民忠诚永福宁安庆祥瑞昌盛荣贵富"
)


def chinese_name(plant: str, user: str) -> dict:
    """A worker's name as a plant's roster has them: a surname and one or two given characters."""
    n = int(plant[1:]) * 100_003 + int(user) * 7919
    given = GIVEN[n % len(GIVEN)] + (GIVEN[(n // 7) % len(GIVEN)] if n % 3 else "")
    return {"name": SURNAMES[(n // 13) % len(SURNAMES)] + given}


def build(
    folder: Path, plants: int, per_plant: int, open_cases: int, *, second_step: bool = False
) -> tuple[Path, FrozenClock]:
    """The database with every open case's L2 warning due, and the clock at that moment. ``second_step``: each case
    has a second step due with it, L2:hr (the warning to HR, by SMS too), as the tests want."""
    path = folder / "cloud.sqlite3"
    open_db(f"sqlite:///{path}")
    cases._policies.clear()
    day1 = date(2025, 3, 3)
    appliances, heads, _people, absent = seed(plants, per_plant, open_cases, day1, employee=chinese_name)
    body = dict(DEFAULT_BODY, handbook={"version": "v1", "article": "12", "adoption_ref": "a", "publication_ref": "b"})
    body["ladder"] = [
        dict(step, recipients=["manager"], channels=["sms"]) if step["key"] == "L2" else step for step in body["ladder"]
    ]
    if second_step:
        body["ladder"].insert(
            2,
            {
                "key": "L2:hr",
                "level": 2,
                "after_days": 2,
                "notice": "warning",
                "recipients": ["hr"],
                "channels": ["sms"],
            },
        )
    publish("*", body, by="bench", now_ms=0)
    with database.atomic():
        for i in range(plants):
            plant = f"p{i:03d}"
            manager = Employee.create(employee_no=f"M-{plant}", name=f"{plant} 主管", phone=f"+86139{i:08d}")
            Employee.update(manager=manager).where(Employee.employee_no.startswith(f"{plant}-")).execute()
    clock = FrozenClock(datetime(day1.year, day1.month, day1.day, 22, tzinfo=TZ).astimezone(UTC))
    Engine(clock, HoldingSender()).tick()  # opens the cases (the L1 reminders wait for the morning: quiet hours)
    clock.advance(hours=10, minutes=30)  # 08:30: the reminders go (recorded only), the L2 may follow them
    Engine(clock, RecordingSender()).tick()
    day2 = day1 + timedelta(days=1)
    store_facts(appliances, heads, [(p, u, fact(u, day2, "missing")) for p, u in sorted(absent)])
    clock.advance(hours=13, minutes=30)  # 22:00
    Engine(clock, HoldingSender()).tick()  # D2 counted, L2 due; no channel: every warning stays due
    due = CaseStep.select().where((CaseStep.status == "due") & CaseStep.key.startswith("L2")).count()
    assert due == len(absent) * (2 if second_step else 1), (due, len(absent))
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    return path, clock


class PreRendered(OutboundSender):
    """The real sender but for the notice's rendering (``--compare`` only): each step's notice is a stand-in with
    its own number, kept as a rendered one is."""

    def _notice(self, step: PlannedStep, case: AbsenceCase) -> RenderedNotice | NoticeWords:
        doc_no = f"人通〔2025〕{case.id}-{step.key}"
        notice = RenderedNotice(
            template_id=step.notice,
            template_version="1",
            title="关于连续缺勤的告知（主管）",
            doc_no=doc_no,
            text=f"{doc_no}\n{step.employee_no} 缺勤 {len(step.absent_days)} 天",
            pdf=b"%PDF-1.4 stand-in " + doc_no.encode(),
            sms_text=f"{doc_no} 缺勤告知",
            sms_params={"name": step.employee_no, "doc_no": doc_no, "link": "https://hr.example.cn/n/x"},
            file_name=f"{doc_no}.pdf",
        )
        records.keep(f"case-{case.id}", notice, self._clock)
        return notice


def run(
    original: Path, clock: FrozenClock, senders: int, delay_s: float, label: str, *, render: bool, limit: bool = True
) -> None:
    copy = original.with_name(f"run-{senders}-{render}.sqlite3")
    shutil.copy(original, copy)
    open_db(f"sqlite:///{copy}")
    cases._policies.clear()
    with ProviderProcess(AliyunSmsServer, FrozenClock(clock.now()), KEY_ID, KEY_SECRET, delay_s=delay_s) as server:
        channel = AliyunSms(
            AliyunSmsSettings(KEY_ID, KEY_SECRET, "某某电子", TEMPLATES, endpoint=f"{server.url}/"),
            clock=clock,
            limit=DEFAULTS["sms_aliyun"],
        )
        kind = OutboundSender if render else PreRendered
        sender = kind(Dispatcher([channel], clock=clock), NOTICES, clock, parallel=senders)
        engine = Engine(clock, sender)
        provider_cpu = server.report().cpu_s
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
        report = engine.tick(pdfs=False)  # the sends; the tick's PDF pass, next, timed apart
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        seen = server.report()
    keys = Counter(seen.out_ids)
    most = seen.most_in_flight
    provider_cpu = seen.cpu_s - provider_cpu
    words_only = records.PendingPdf.select().count()
    sent_steps = CaseStep.select().where((CaseStep.status == "sent") & (CaseStep.key == "L2")).count()
    once = "each once" if keys and set(keys.values()) == {1} else f"REPEATED: {sum(keys.values()) - len(keys)}"
    against = (
        f"limit {LIMIT_S:.0f} s  ratio {took / LIMIT_S:.3f}" if limit else f"{took / max(1, sent_steps):.2f} s/step"
    )
    print(
        f"{label:<26} {took:7.2f} s  {against}  (our CPU {cpu:.1f} s: {cpu / max(1, sent_steps) * 1000:.2f} ms a "
        f"warning; the provider's process {provider_cpu:.1f} s apart)   {len(seen.out_ids):,} SMS accepted, "
        f"{len(keys):,} idempotency keys ({once}); {sent_steps:,} steps sent; "
        f"{most} requests in flight at most; {words_only:,} notices' words kept   [report: {report.sent} sent, "
        f"{report.failed} failed, {report.held} held; load {load:.2f} -> {os.getloadavg()[0]:.2f}]",
        flush=True,
    )
    pdf_started, pdf_cpu = time.perf_counter(), time.process_time()
    made = 0
    while passed := engine.make_pdfs():  # a pass stops after its budget: the next tick's goes on
        made += passed
    pdf_took, pdf_cpu = time.perf_counter() - pdf_started, time.process_time() - pdf_cpu
    kept = records.NoticeDocument.select().count()
    left = records.PendingPdf.select().count()
    database.close()
    print(
        f"{'':<26} then the PDF pass {pdf_took:7.2f} s (CPU {pdf_cpu:.1f} s, its drawing processes' not included): "
        f"{made:,} PDFs made by {getattr(sender, 'pdf_workers', 1)} processes; every PDF made "
        f"{took + pdf_took:.2f} s after the tick began; {kept:,} notices kept with their PDF, {left:,} without "
        f"[load -> {os.getloadavg()[0]:.2f}]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=50)
    parser.add_argument("--per-plant", type=int, default=200)
    parser.add_argument("--open", type=int, default=5000)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--senders", type=int, default=PARALLEL, help="steps sent at once")
    parser.add_argument("--compare", action="store_true", help="also with stand-in notices, and with one sender")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # one line per message otherwise
    folder = Path(tempfile.mkdtemp(prefix="pp-esc-sends-"))
    try:
        t0 = time.perf_counter()
        original, clock = build(folder, args.plants, args.per_plant, args.open)
        print(
            f"SQLite: {args.plants * args.per_plant:,} employees, {args.open:,} L2 warnings due, built in "
            f"{time.perf_counter() - t0:.1f} s; provider answers in {args.delay_ms:.0f} ms; {os.cpu_count()} cores",
            flush=True,
        )
        delay = args.delay_ms / 1000
        run(original, clock, args.senders, delay, f"{args.senders} senders", render=True)
        if args.compare:
            run(original, clock, args.senders, delay, f"{args.senders} senders, stand-ins", render=False)
            run(original, clock, 1, delay, "1 sender, stand-ins", render=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
