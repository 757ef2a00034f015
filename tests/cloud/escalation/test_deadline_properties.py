"""Issue #19.2 and #19.3 as properties: over policies, calendars, absence starts and the ways a 催告函 is served,
the return deadline printed in every 催告函 is the one stored on the case and the one the engine waits for; it
falls on a working day; a 催告函 issued again states the new deadline; and no notice goes out, or is dated,
before what it states has happened.

Each example is a whole case on a fresh SQLite database: the appliance's real rules engine decides the days
(on head office's calendar as the plant configuration carries it, with generated 法定节假日 and 调休 published
over the package), the cloud's engine climbs the ladder, HR acts when the case asks (approves the 催告函 and the
termination, closes the welfare check, records service or 公告, the union's reply), and every formal notice is
rendered exactly as ``outbound`` renders it (``notice_facts.build`` and ``render_notice``; with the system
font cut down to the notices' characters and its glyphs left blank, which changes nothing in the text checked).
The engine ticks whenever something of the case is due (its wake time, a due step) and at the appliance's
evening evaluation. Two stories found by this test are kept as examples: each failed before its fix."""

from __future__ import annotations

import re
import shutil
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from fontTools.ttLib.tables._g_l_y_f import Glyph
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from appliance import rules
from cloud.channels.base import Attempt, OutboundMessage, Receipt, ReceiptStatus, Status
from cloud.channels.contact_log import idempotency_key, record_attempt, record_receipts
from cloud.escalation import actions, cases, notice_facts, timeline, workdays
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate, Service
from cloud.escalation.policy import PolicyError, parse
from cloud.escalation.sender import PlannedStep
from cloud.hr import calendar
from cloud.hr.models import Employee
from cloud.notices import render, templates
from cloud.notices.settings import NoticeSettings
from cloud.report_font import CjkFont, find_font, truetype_subset
from cloud.store import Plant, open_db
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import SHIFTS, TZ, WEEKDAYS, PlantFeed, local, ms, policy_body
from tests.harness.clock import FrozenClock

HOUR = 3_600_000
DAY = 24 * HOUR
PRINTED_DEADLINE = re.compile(r"请于(\d{4})年(\d{1,2})月(\d{1,2})日 (\d{2}):(\d{2})（北京时间）前")
ISSUED = re.compile(r"发出日期：(\d{4})年(\d{1,2})月(\d{1,2})日")
PROPOSED = re.compile(r"拟解除日期：(\d{4})年(\d{1,2})月(\d{1,2})日")
SETTINGS = NoticeSettings(
    employer="东莞市某某电子有限公司",
    short_name="某某电子",
    address="广东省东莞市长安镇振安路 88 号",
    contact_person="王敏（人力资源部）",
    contact_phone="0769-8888 1234",
    union="东莞市某某电子有限公司工会委员会",
    link_base="https://hr.example.cn",
    report_to="人力资源部（行政楼二楼）",
    hr_email="hr-team@factory.example.cn",
    union_email="union@factory.example.cn",
)
# absences that start right before 春节, 劳动节 and 国庆 (2025, 2026), on Fridays, and on any day of the two years
EDGES = [
    date(2025, 1, 23),
    date(2025, 1, 24),
    date(2025, 1, 27),
    date(2025, 4, 29),
    date(2025, 9, 25),
    date(2025, 9, 29),
    date(2025, 9, 30),
    date(2026, 2, 11),
    date(2026, 2, 13),
    date(2026, 4, 30),
    date(2026, 9, 28),
    date(2026, 9, 30),
    date(2025, 3, 7),
    date(2026, 6, 19),
]


@pytest.fixture(scope="module")
def font(tmp_path_factory: pytest.TempPathFactory) -> CjkFont:
    """The system's Chinese font cut down to the characters the notices use, each glyph left blank: the text a
    notice states, which is what is checked, is the same, and a notice renders in a tenth of the time (the whole
    Noto CJK takes two seconds a notice)."""
    chars = set(string.printable + render.FOOTER + render.SEAL + render.DRAFT + "张三装配二车间操作工〔〕")
    for template in templates.TEMPLATES.values():
        chars |= set(template.title + template.body + template.sms)
    said = [
        *SETTINGS.__dict__.values(),
        *wiring.HANDBOOK.values(),
        "湖南省邵阳市县镇村组号北京",
        "考勤机经边缘设备签名的打卡记录",
    ]
    for value in [
        *said,
        *notice_facts.METHODS.values(),
        *notice_facts.CHANNEL_ZH.values(),
        *notice_facts.RESULT_ZH.values(),
    ]:
        chars |= set(str(value))
    regular = find_font()
    target = tmp_path_factory.mktemp("font") / "notices.ttf"
    truetype_subset(regular.path, regular.index, "".join(sorted(chars)), target)
    blank = TTFont(str(target))
    for name in blank.getGlyphOrder():
        blank["glyf"][name] = Glyph()
    blank.save(str(target))
    return CjkFont(target, 0)


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty cloud database, made once; each example starts from a copy of it."""
    path = tmp_path_factory.mktemp("schema") / "cloud.sqlite3"
    open_db(f"sqlite:///{path}").close()
    return path


@dataclass(frozen=True)
class Sent:
    """A step as it went out: what it stated, and what the case held at that moment."""

    step: PlannedStep
    at_ms: int
    case_deadline_ms: int | None
    text: str


class RenderingSender:
    """Renders each formal notice as ``OutboundSender`` does and keeps it; a 催告函's SMS to the employee is
    logged in the contact log as the dispatcher logs it (so a delivery receipt can match it)."""

    def __init__(self, clock: FrozenClock, font: CjkFont) -> None:
        self.clock = clock
        self.font = font
        self.sent: list[Sent] = []

    def send(self, step: PlannedStep) -> str | None:
        now = ms(self.clock.now())
        case = AbsenceCase.get_by_id(step.case_id)
        text = ""
        if step.notice in notice_facts.FORMAL:
            facts = notice_facts.build(step, case, SETTINGS)
            template = templates.get(notice_facts.TEMPLATE_OF[step.notice])
            text = render.render_notice(template, facts, self.font).text
        if step.notice == "cuigao":
            phone = Employee.get_by_id(step.employee_id).phone
            message = OutboundMessage(
                case_ref=notice_facts.case_ref(case.id),
                step_id=step.key,
                recipient=phone,
                channel="sms",
                template_id="cuigao",
                template_version="2",
                subject="",
                text=text,
            )
            attempt = Attempt(
                at=self.clock.now(),
                channel="sms",
                provider="aliyun",
                recipient=phone,
                template_id="cuigao",
                template_version="2",
                content_sha256="0" * 64,
                status=Status.SENT,
                provider_message_id=f"biz-{step.step_id}",
            )
            record_attempt(message, attempt, key=idempotency_key(message.case_ref, step.key, "sms", phone))
        self.sent.append(Sent(step, now, case.deadline_ms, text))
        return None

    def of(self, notice: str) -> list[Sent]:
        return [s for s in self.sent if s.step.notice == notice]


@dataclass(frozen=True)
class Story:
    """What hypothesis chose: the policy, the calendar, when the absence starts and how HR and the post act."""

    return_days: int
    return_by: str
    allowance: int
    union: bool
    union_wait: int
    approve_cuigao: bool
    welfare: bool
    extra_holidays: tuple[int, ...]  # days after the start made 法定节假日
    extra_workdays: tuple[int, ...]  # days after the start made 调休 working days (when they are rest days)
    start: date
    service: str  # ems | receipt | publication
    served_after_h: int  # hours after the 催告函 went out: signed for, the receipt, or the return
    recorded_after_h: int  # hours after that HR records it (EMS) or publishes (公告)
    hr_after_h: int  # hours HR takes to approve a gate or close the welfare check
    union_reply_h: int | None  # hours after the union letter the union replies (None: it does not)
    approvers: int


stories = st.builds(
    Story,
    return_days=st.integers(1, 10),
    return_by=st.sampled_from(["18:00", "17:30", "12:00", "09:00", "06:00", "23:59"]),
    allowance=st.integers(0, 7),
    union=st.booleans(),
    union_wait=st.integers(1, 6),
    approve_cuigao=st.booleans(),
    welfare=st.booleans(),
    extra_holidays=st.lists(st.integers(0, 40), max_size=3).map(tuple),
    extra_workdays=st.lists(st.integers(0, 40), max_size=2).map(tuple),
    start=st.sampled_from(EDGES) | st.dates(min_value=date(2025, 1, 2), max_value=date(2026, 10, 31)),
    service=st.sampled_from(["ems", "receipt", "publication"]),
    served_after_h=st.integers(1, 14 * 24),
    recorded_after_h=st.integers(0, 72),
    hr_after_h=st.integers(0, 72),
    union_reply_h=st.none() | st.integers(1, 5 * 24),
    approvers=st.integers(1, 2),
)


def _publish_calendar(story: Story, now_ms: int) -> None:
    """Head office publishes the generated 法定节假日 and 调休 over the package's, year by year."""
    package = calendar.head_office_calendar()
    holidays: dict[date, str] = {}
    extra_workdays: dict[date, str] = {}
    for offset in story.extra_holidays:
        day = story.start + timedelta(days=offset)
        if package.is_workday(day):
            holidays[day] = "临时放假"
    for offset in story.extra_workdays:
        day = story.start + timedelta(days=offset)
        if not package.is_workday(day) and day not in holidays:
            extra_workdays[day] = "调休上班"
    for year in sorted({d.year for d in holidays} | {d.year for d in extra_workdays}):
        lines = ["[holidays]", f'{year}-01-01 = "元旦"']  # a year's file names at least one holiday
        lines += [f'{d.isoformat()} = "{name}"' for d, name in sorted(holidays.items()) if d.year == year]
        lines += ["[workdays]"]
        lines += [f'{d.isoformat()} = "{name}"' for d, name in sorted(extra_workdays.items()) if d.year == year]
        calendar.set_year(year, "\n".join(lines) + "\n", by="hr-admin", now_ms=now_ms)


@dataclass
class Run:
    story: Story
    clock: FrozenClock
    feed: PlantFeed
    engine: Engine
    sender: RenderingSender
    todo: list[tuple[int, str, Callable[[], None]]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    evaluated: date | None = None

    def later(self, at_ms: int, name: str, act: Callable[[], None]) -> None:
        if name not in self.done:
            self.done.add(name)
            self.todo.append((at_ms, name, act))

    def now(self) -> int:
        return ms(self.clock.now())


def _hr_acts(run: Run, case: AbsenceCase) -> None:
    """What the case asks of people, planned for when they get to it."""
    s, now = run.story, run.now()
    gate = Gate.get_or_none((Gate.case == case) & (Gate.kind == "approve_cuigao") & (Gate.status == "open"))
    if gate is not None:
        run.later(gate.opened_ms + s.hr_after_h * HOUR, "approve_cuigao", lambda: _approve(run, case, "approve_cuigao"))
    task = CaseTask.get_or_none(
        (CaseTask.case == case) & (CaseTask.kind == "welfare_check") & (CaseTask.status == "open")
    )
    if task is not None:
        run.later(now + s.hr_after_h * HOUR, "welfare", lambda: _close_welfare(run, case))
    cuigao = Service.get_or_none((Service.case == case) & (Service.document == "cuigao"))
    if cuigao is not None and cuigao.sent_ms is not None:
        _service(run, case, cuigao.sent_ms)
    gate = Gate.get_or_none((Gate.case == case) & (Gate.kind == "confirm_termination") & (Gate.status == "open"))
    if gate is not None:
        run.later(
            gate.opened_ms + s.hr_after_h * HOUR,
            "confirm",
            lambda: _approve(run, case, "confirm_termination", s.approvers),
        )
    letter = CaseStep.get_or_none((CaseStep.case == case) & (CaseStep.key == "L6:union") & (CaseStep.status == "sent"))
    if letter is not None and s.union_reply_h is not None:
        run.later(
            letter.sent_ms + s.union_reply_h * HOUR,
            "union_reply",
            lambda: actions.complete_task(
                case.id, "union_reply", by="hr-wang", now_ms=run.now(), proof="工会书面回复无异议"
            ),
        )
    termination = Service.get_or_none((Service.case == case) & (Service.document == "termination"))
    if termination is not None and termination.sent_ms is not None:
        signed = termination.sent_ms + 2 * DAY
        run.later(
            signed + HOUR,
            "termination_served",
            lambda: actions.record_service(
                case.id, "termination", by="hr-wang", now_ms=run.now(), served_ms=signed, method="EMS", proof="EMS 妥投"
            ),
        )


def _approve(run: Run, case: AbsenceCase, kind: str, people: int = 1) -> None:
    for who in ("hr-li", "hr-zhao")[:people]:
        if Gate.get_or_none((Gate.case == case) & (Gate.kind == kind) & (Gate.status == "open")) is not None:
            actions.approve(case.id, kind, by=who, now_ms=run.now())


def _close_welfare(run: Run, case: AbsenceCase) -> None:
    if CaseTask.get_or_none((CaseTask.case == case) & (CaseTask.kind == "welfare_check") & (CaseTask.status == "open")):
        actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=run.now(), note="紧急联系人无法接通")


def _service(run: Run, case: AbsenceCase, sent_ms: int) -> None:
    s = run.story
    event = sent_ms + s.served_after_h * HOUR
    if s.service == "ems":  # signed for at ``event``; HR records it from the tracking, an hour later at the earliest
        record = event + HOUR + s.recorded_after_h * HOUR
        run.later(
            record,
            "served",
            lambda: actions.record_service(
                case.id, "cuigao", by="hr-wang", now_ms=run.now(), served_ms=event, method="EMS", proof="EMS 妥投"
            ),
        )
    elif s.service == "receipt":  # the carrier's DELIVRD for the SMS, as the receipts callback stores it

        def receipt() -> None:
            phone = Employee.get_by_id(case.employee_id).phone
            step = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L3"))
            raw = f'{{"biz_id": "biz-{step.id}", "phone_number": "{phone}", "report_code": "DELIVRD"}}'
            record_receipts(
                [Receipt("aliyun", f"biz-{step.id}", ReceiptStatus.DELIVERED, raw, recipient=phone, detail="DELIVRD")],
                run.clock,
            )

        run.later(event, "served", receipt)
    else:  # EMS returned: 公告, deemed served 30 days after it is published
        run.later(
            event,
            "failed",
            lambda: actions.record_service_failed(case.id, "cuigao", by="hr-wang", now_ms=run.now(), proof="EMS 退回"),
        )
        published = event + HOUR + s.recorded_after_h * HOUR
        run.later(
            published,
            "published",
            lambda: actions.record_publication(
                case.id, "cuigao", by="hr-wang", now_ms=run.now(), published_ms=published, proof="人民法院报公告"
            ),
        )


def _next_tick(run: Run) -> int:
    """The next moment something is due: an HR action, the case's wake time, a due step, the evening evaluation."""
    now = run.now()
    evening = ms(local(run.clock.now().astimezone(TZ).date(), "23:30"))
    times = [evening if evening > now else evening + DAY]
    times += [at for at, _name, _act in run.todo]
    times += [t for (t,) in AbsenceCase.select(AbsenceCase.wake_ms).where(AbsenceCase.wake_ms.is_null(False)).tuples()]
    times += [t for (t,) in CaseStep.select(CaseStep.due_ms).where(CaseStep.status == "due").tuples()]
    return max(now + 60_000, min(times))


def _play(story: Story, clock: FrozenClock, font: CjkFont) -> Run:
    start_ms = ms(local(story.start - timedelta(days=1), "06:00"))
    clock.advance_to(datetime.fromtimestamp(start_ms / 1000, UTC))
    union = {"exists": story.union, "wait_working_days": story.union_wait, "channels": ["email"]}
    feed = PlantFeed(clock).start(
        handbook=wiring.HANDBOOK,
        union=union,
        gates={"approve_cuigao": story.approve_cuigao, "termination_approvers": story.approvers},
        deadlines__return_days=story.return_days,
        deadlines__return_by=story.return_by,
        deadlines__service_allowance_days=story.allowance,
        welfare_check_day=3 if story.welfare else 0,
    )
    _publish_calendar(story, start_ms)
    overrides = calendar.calendar_text(Plant.get_by_id(feed.plant_id))
    if overrides:  # the plant configuration carries head office's calendar to the appliance
        published = rules.with_overrides(rules.package_calendar(), rules.parse_overrides(overrides))
        feed.plant = rules.Plant(TZ, published, SHIFTS, ("ZK1",))
    feed.hire("1001", roster=WEEKDAYS, since=story.start)
    wiring.staff("1001")
    sender = RenderingSender(clock, font)
    run = Run(story, clock, feed, Engine(clock, sender, runner_id="r1"), sender)
    end = start_ms + 150 * DAY
    while run.now() < end:
        at = _next_tick(run)
        clock.advance_to(datetime.fromtimestamp(at / 1000, UTC))
        today = clock.now().astimezone(TZ).date()
        if clock.now().astimezone(TZ).time() >= time(23, 30) and run.evaluated != today:
            feed.evaluate(today - timedelta(days=1))
            feed.evaluate(today)
            run.evaluated = today
        for item in [t for t in run.todo if t[0] <= at]:
            run.todo.remove(item)
            item[2]()
        run.engine.tick()
        case = AbsenceCase.get_or_none()
        if case is None:
            continue
        if case.level >= 8 or case.open_key is None:
            break
        _hr_acts(run, case)
    return run


def _local(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(TZ)


def _date(match: re.Match[str] | None) -> date:
    assert match is not None
    return date(*map(int, match.groups()[:3]))


def _printed_deadline(text: str) -> datetime:
    (when,) = set(PRINTED_DEADLINE.findall(text))
    year, month, day, hour, minute = map(int, when)
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


def _served_at(case: AbsenceCase) -> int:
    service = Service.get((Service.case == case) & (Service.document == "cuigao"))
    assert service.status in ("served", "deemed"), service.status
    return service.served_ms if service.status == "served" else service.deemed_ms


def _check(run: Run) -> None:
    case = AbsenceCase.get()
    story = run.story
    assert case.level == 8, (case.level, case.state, case.blocked, timeline.kinds(case))
    steps = {s.key: s for s in CaseStep.select().where(CaseStep.case == case)}
    cuigao = run.sender.of("cuigao")
    assert cuigao, "a 催告函 went out"

    # 2 (a), (b): every 催告函 states the deadline stored on the case as it went out, on a working day
    for sent in cuigao:
        printed = _printed_deadline(sent.text)
        assert sent.case_deadline_ms is not None and printed == _local(sent.case_deadline_ms)
        assert sent.step.deadline_ms == sent.case_deadline_ms
        assert workdays.is_workday(printed.date()), printed
        assert ms(printed) > sent.at_ms, "a deadline after the notice"
    # (c) each one issued again states a later deadline; the last states the one the engine waited for
    printed = [_printed_deadline(s.text) for s in cuigao]
    assert printed == sorted(set(printed)), printed
    assert ms(printed[-1]) == case.deadline_ms
    assert all("不再适用" in s.text for s in cuigao[1:])

    # 3: 旷工 and its notice, and the termination draft, come only after service and the (latest) deadline
    served = _served_at(case)
    (kuanggong,) = run.sender.of("kuanggong")
    l4 = next(e for e in timeline.items(case) if e.kind == "L4")
    gate = Gate.get((Gate.case == case) & (Gate.kind == "confirm_termination"))
    for moment in (l4.at_ms, kuanggong.at_ms, gate.opened_ms):
        assert moment >= case.deadline_ms and moment >= served
    assert all(s.at_ms <= kuanggong.at_ms for s in cuigao), "no 催告函 after the 旷工通知书"
    assert not [s for s in steps.values() if s.notice == "cuigao" and s.status in ("due", "awaiting_approval")]
    assert "催告期限届满" in kuanggong.text

    # the union letter proposes a working day after its whole reply window; the termination waits for it
    termination = run.sender.of("termination")[-1]
    if story.union:
        (letter,) = run.sender.of("union_letter")
        proposed = _date(PROPOSED.search(letter.text))
        window_end = workdays.local_day(letter.at_ms, "Asia/Shanghai")
        for _ in range(story.union_wait):
            window_end = workdays.first_workday(window_end + timedelta(days=1))
        assert workdays.is_workday(proposed) and proposed > window_end, (proposed, window_end, letter.text)
        assert termination.at_ms >= ms(local(proposed, "00:00")) and termination.at_ms > letter.at_ms
    else:
        assert not run.sender.of("union_letter")

    # every formal notice is dated the day it goes out, a working day, and planned = sent
    for sent in run.sender.sent:
        if sent.step.notice not in notice_facts.FORMAL:
            continue
        row = CaseStep.get_by_id(sent.step.step_id)
        assert row.planned_ms == row.sent_ms == sent.at_ms == sent.step.planned_ms, row.key
        day = _local(sent.at_ms).date()
        assert _date(ISSUED.search(sent.text)) == day and workdays.is_workday(day), (row.key, sent.text[:80])


SATURDAY_APPROVAL = Story(  # the termination confirmed on Saturday 2025-03-15: the union letter goes out Monday
    return_days=3,
    return_by="18:00",
    allowance=3,
    union=True,
    union_wait=3,
    approve_cuigao=False,
    welfare=False,
    extra_holidays=(),
    extra_workdays=(),
    start=date(2025, 3, 3),
    service="ems",
    served_after_h=30,
    recorded_after_h=2,
    hr_after_h=60,
    union_reply_h=None,
    approvers=1,
)

LATE_RECORD = replace(  # EMS 妥投 on Tuesday 03-11, recorded on Saturday 03-15, after the deadline it gives (03-14)
    SATURDAY_APPROVAL, served_after_h=5 * 24, recorded_after_h=4 * 24, hr_after_h=2
)


# shrinking replays whole cases (seconds each) for minutes: the example found is reported as it is
@settings(max_examples=8, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(story=stories)
@example(story=SATURDAY_APPROVAL)  # before aae8601 the letter proposed Thursday 03-20, the last day of its window
@example(story=LATE_RECORD)  # before d6db13b the 催告函 went out again stating 03-14, after 旷工 was recorded
def test_the_printed_deadline_is_the_engines_and_nothing_comes_before_its_time(story, font, schema):
    with tempfile.TemporaryDirectory(prefix="punchproof-deadline-") as folder:
        shutil.copyfile(schema, f"{folder}/cloud.sqlite3")  # a database of its own for each example
        database = open_db(f"sqlite:///{folder}/cloud.sqlite3", create=False)
        cases._policies.clear()
        try:
            run = _play(story, FrozenClock(datetime(2025, 1, 1, tzinfo=UTC)), font)
            _check(run)
        finally:
            database.close()


def test_a_union_given_no_day_to_reply_is_refused():
    """The union letter asks for the union's opinion "within n working days of receiving it"; with 0 the letter
    could not be rendered (``union_reply_days`` missing), and the termination stopped at L6 with a task."""
    with pytest.raises(PolicyError) as refused:
        parse(policy_body(handbook=wiring.HANDBOOK, union={"exists": True, "wait_working_days": 0}))
    assert "union.wait_working_days" in str(refused.value) and "1–30" in str(refused.value)
