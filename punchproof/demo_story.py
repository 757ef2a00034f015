"""The demo plant's day: who works, when the shift is, who punches when, and what HR has on file.

Pure: ``plan(first_read, tz, pace)`` gives a ``Story`` from the moment the appliance first read the
terminal, and the story writes the files an installer would hand to the real commands: HR's workbook
for ``punchproof cloud import-hr`` (员工, 班次, 排班规则, 请假), the plant's attendance settings for
``punchproof cloud push-config``, and the handbook's escalation policy that HR publishes on the policy page.

Why the shift starts a little after the demo does: the appliance counts a shift without punches as an
absence only if it was recording the terminal when the shift began (a shift that began before is 未覆盖,
"not covered", never an absence). So the demo's day shift starts on the first whole minute after the
appliance's first read and at least ``pace.lead_s`` after the plan is made (``--fast``: up to 20 s before
it), and is short (``pace.shift_min``), so that the day is confirmed, and a case opened, within minutes.

The cast (badges as the emulated terminal enrols them, ``firmware_bridge.cli.demo_roster``): two lines,
each with its leader (组长, the manager the warnings go to); most punch in on time and out at the end;
three come late, one leaves early; 王娟 is on sick leave until tomorrow; 赵杰 never comes, and 马艳,
whose sick leave ended today, does not come back: they are the two cases.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cloud.escalation.policy import DEFAULT_BODY
from firmware_bridge.cli import demo_roster

SIZE = 30
LINES = ("一线", "二线")
LEADERS = ("1001", "1002")  # 王伟 leads 一线, 李强 二线
LATE = ("1005", "1016", "1024")
EARLY = ("1019",)
ON_LEAVE = "1021"  # 王娟: 病假 until tomorrow
NO_SHOW = "1008"  # 赵杰: never punches
NOT_BACK = "1013"  # 马艳: 病假 ended today, never punches
ABSENT = (NO_SHOW, NOT_BACK)
SHIFT_ID, ROSTER_ID = "D", "day"


@dataclass(frozen=True)
class Pace:
    """How fast the demo's day goes. ``lead_s``: the shift starts at least this long after the plan is made (the
    files are imported and applied meanwhile, and the workers punch in before it); negative: it may have
    started that long before, so that it ends sooner (everyone then punches in a little late)."""

    lead_s: int
    grace_min: int  # 迟到宽限
    tentative_min: int  # no punch this long after start + grace: 未打卡 on the board
    shift_min: int
    confirm_margin_min: int  # the day is confirmed this long after the shift (or checkout_after, if longer)
    checkout_after_min: int  # 延后打卡: the latest check-out that counts
    early_grace_min: int
    duplicate_window_s: int


STORY = Pace(
    lead_s=15,
    grace_min=0,
    tentative_min=0,
    shift_min=2,
    confirm_margin_min=1,
    checkout_after_min=1,
    early_grace_min=0,
    duplicate_window_s=30,  # presses closer than this are one: a late worker's in and out are over 30 s apart
)
# --fast (the end-to-end test): a one-minute shift confirmed at its end; check-outs come before the end
FAST = Pace(
    lead_s=-20,
    grace_min=0,
    tentative_min=0,
    shift_min=1,
    confirm_margin_min=0,
    checkout_after_min=0,
    early_grace_min=1,
    duplicate_window_s=5,
)


@dataclass(frozen=True)
class Worker:
    badge: str  # 考勤号, as enrolled at the terminal
    name: str
    line: str
    index: int

    @property
    def employee_no(self) -> str:
        return f"DG{self.badge}"  # 工号: HR's number, not the badge

    @property
    def leader(self) -> str:
        return LEADERS[LINES.index(self.line)]


@dataclass(frozen=True)
class Press:
    at: datetime  # UTC
    badge: str
    state: int  # 0 in, 1 out


@dataclass(frozen=True)
class Story:
    tz: ZoneInfo
    pace: Pace
    start: datetime  # the shift's start, UTC, on a whole minute
    workers: tuple[Worker, ...]
    presses: tuple[Press, ...]

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.pace.shift_min)

    @property
    def tentative_at(self) -> datetime:
        return self.start + timedelta(minutes=self.pace.grace_min + self.pace.tentative_min)

    @property
    def confirmed_at(self) -> datetime:
        after = max(self.pace.confirm_margin_min, self.pace.checkout_after_min)
        return self.end + timedelta(minutes=after)

    @property
    def work_date(self) -> date:
        return self.local(self.start).date()

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def hhmm(self, moment: datetime) -> str:
        return self.local(moment).strftime("%H:%M")

    def worker(self, badge: str) -> Worker:
        return next(w for w in self.workers if w.badge == badge)

    # -- the files ---------------------------------------------------------------------------------
    def write_hr_workbook(self, path: Path) -> Path:
        """HR's master data as one workbook, one sheet per kind, Chinese headers (``cloud import-hr``)."""
        from openpyxl import Workbook

        book = Workbook()
        sheets = self.hr_sheets()
        first = True
        for title, rows in sheets.items():
            sheet = book.active if first else book.create_sheet()
            first = False
            sheet.title = title
            for row in rows:
                sheet.append(row)
        book.save(path)
        return path

    def hr_sheets(self) -> dict[str, list[list[Any]]]:
        employees: list[list[Any]] = [
            [
                "工号",
                "考勤号",
                "姓名",
                "身份证后四位",
                "部门",
                "岗位",
                "产线",
                "排班",
                "主管工号",
                "合同编号",
                "入职日期",
                "合同结束",
                "手机",
                "邮箱",
                "合同地址",
                "送达地址",
                "送达确认凭证",
                "紧急联系人",
                "紧急联系人关系",
                "紧急联系人电话",
                "生效日期",
            ]
        ]
        for w in self.workers:
            n = w.index
            lead = w.badge in LEADERS
            employees.append(
                [
                    w.employee_no,
                    w.badge,
                    w.name,
                    f"{(n * 37) % 1000:03d}{'X' if n % 9 == 4 else n % 10}",
                    "装配部",
                    "组长" if lead else "操作工",
                    w.line,
                    ROSTER_ID,
                    "" if lead else self.worker(w.leader).employee_no,
                    f"HT-2024-{w.badge}",
                    (date(2023, 3, 1) + timedelta(days=17 * n)).isoformat(),
                    (date(2027, 2, 28) + timedelta(days=17 * n)).isoformat(),
                    f"138{n:04d}{1000 + n:04d}",
                    f"{w.badge}@staff.example.cn",
                    f"广东省东莞市长安镇振安路 88 号 员工宿舍 {n // 6 + 1} 栋 {100 + n} 室",
                    _HOMES[n % len(_HOMES)],
                    f"送达地址确认书-2024-{w.badge}",
                    "",
                    "",
                    "",
                    self.work_date.isoformat(),  # the plant's attendance is on Punchproof from today
                ]
            )
            if not lead:
                row = employees[-1]
                row[-4:-1] = [w.name[0] + "父", "父亲", f"139{n:04d}{2000 + n:04d}"]
        grace, early = self.pace.grace_min, self.pace.early_grace_min
        spans = f"{self.hhmm(self.start)}-{self.hhmm(self.end)}"
        shifts = [
            ["班次", "名称", "时段", "迟到宽限", "早退宽限", "提前打卡", "延后打卡"],
            [SHIFT_ID, "白班（演示）", spans, grace, early, 120, self.pace.checkout_after_min],
        ]
        # every day a working day, holidays too: the demo works whatever day it starts
        rosters = [
            ["编号", "类型", "模式", "起始日期", "节假日"],
            [ROSTER_ID, "固定", ",".join([SHIFT_ID] * 7), "", "照常"],
        ]
        today = self.work_date
        leave = [
            ["单号", "工号", "假别", "开始", "结束", "状态"],
            # a bare end date is the last day of leave: 马艳's ended yesterday, so she is due back today
            [
                "QJ-DEMO-1",
                self.worker(NOT_BACK).employee_no,
                "病假",
                (today - timedelta(days=5)).isoformat(),
                (today - timedelta(days=1)).isoformat(),
                "已批准",
            ],
            [
                "QJ-DEMO-2",
                self.worker(ON_LEAVE).employee_no,
                "病假",
                (today - timedelta(days=2)).isoformat(),
                (today + timedelta(days=1)).isoformat(),
                "已批准",
            ],
        ]
        return {"员工": employees, "班次": shifts, "排班规则": rosters, "请假": leave}


_HOMES = (
    "湖南省邵阳市隆回县桃洪镇新村 5 组 12 号",
    "广西壮族自治区玉林市博白县龙潭镇大坡村 3 队",
    "四川省南充市营山县城南镇白鹤村 2 组 7 号",
    "江西省赣州市于都县贡江镇长征路 16 号",
    "河南省周口市郸城县宜路镇前楼村 41 号",
)


def attendance_settings(pace: Pace) -> dict[str, Any]:
    """The plant's rule knobs at this pace (``cloud push-config``'s ``policy`` section, docs/sync-config.md)."""
    return {
        "policy": {
            "version": "demo",
            "duplicate_window_s": pace.duplicate_window_s,
            "tentative_after_min": pace.tentative_min,
            "confirm_margin_min": pace.confirm_margin_min,
        }
    }


def cast(size: int = SIZE) -> tuple[Worker, ...]:
    """The terminal's demo workers, on two lines (even positions 一线, odd 二线: each leader heads one)."""
    return tuple(Worker(badge, name, LINES[i % len(LINES)], i) for i, (badge, name) in enumerate(demo_roster(size)))


def shift_start(now: datetime, first_read: datetime, lead_s: int) -> datetime:
    """The first whole minute (UTC) after ``first_read`` and at least ``lead_s`` after ``now``: a shift that began
    before the appliance's first read would be 未覆盖, never an absence."""
    earliest = max(first_read.astimezone(UTC) + timedelta(seconds=1), now.astimezone(UTC) + timedelta(seconds=lead_s))
    whole = earliest.replace(second=0, microsecond=0)
    return whole if whole == earliest else whole + timedelta(minutes=1)


def plan(now: datetime, first_read: datetime, tz: ZoneInfo, pace: Pace = STORY, size: int = SIZE) -> Story:
    """The day (``shift_start``), with the presses of everyone but the two absentees and the worker on leave."""
    start = shift_start(now, first_read, pace.lead_s)
    workers = cast(size)
    end = start + timedelta(minutes=pace.shift_min)
    rng = random.Random(start.isoformat())  # noqa: S311 - demo data
    opens = now.astimezone(UTC) + timedelta(seconds=1)
    presses: list[Press] = []
    grace = timedelta(minutes=pace.grace_min)
    for w in workers:
        if w.badge in (*ABSENT, ON_LEAVE):
            continue
        if w.badge in LATE:  # a minute or more after the grace (lateness counts whole minutes), before the end
            late = rng.uniform(62, 85) if pace.shift_min >= 2 else rng.uniform(2, 12)
            arrive = start + grace + timedelta(seconds=late)
        else:  # by the start, spread over the time there is (a shift already begun: within seconds)
            arrive = opens + (max(start - timedelta(seconds=1), opens + timedelta(seconds=8)) - opens) * rng.random()
        if pace.checkout_after_min == 0:  # the day is confirmed at the end: everyone out before it
            leave = end - timedelta(seconds=rng.uniform(5, 15))
        elif w.badge in EARLY:
            leave = end - timedelta(minutes=pace.early_grace_min + 1)
        else:
            leave = end + timedelta(seconds=rng.uniform(2, 40))
        presses += [Press(arrive, w.badge, 0), Press(leave, w.badge, 1)]
    return Story(tz, pace, start, workers, tuple(sorted(presses, key=lambda p: p.at)))


HANDBOOK = {
    "version": "2025版",
    "article": "第六章第十二条",
    "text": "员工未经批准连续旷工三个工作日及以上的，属于严重违反公司规章制度，公司可解除劳动合同。",
    "adopted_on": "2025-01-10",
    "adoption_ref": "职工代表大会决议〔2025〕1号",
    "publication_ref": "员工手册公示签收表-2025-01",
    "published_on": "2025-01-15",
}
CHANNELS_USED = ("sms", "email", "voice", "ems")  # what the demo configures: no WeCom or DingTalk


def escalation_policy() -> dict[str, Any]:
    """The handbook's escalation policy as HR would publish it: the default ladder, on the channels the demo
    has (WeCom steps go by SMS and e-mail instead), the handbook's article with its adoption, and no quiet
    hours (a demo started in the evening still shows its messages; a real policy keeps 08:00–21:00)."""
    body = copy.deepcopy(DEFAULT_BODY)
    for step in body["ladder"]:
        wanted = ["email" if c == "wecom" else c for c in step["channels"]]
        if step["key"] == "L1":
            wanted.append("email")
        step["channels"] = list(dict.fromkeys(c for c in wanted if c in CHANNELS_USED))
    body["termination"]["channels"] = [c for c in body["termination"]["channels"] if c in CHANNELS_USED]
    body["union"]["channels"] = ["email"]
    body["quiet_hours"] = {"start": "00:00", "end": "23:59"}
    body["handbook"] = dict(HANDBOOK)
    return body
