"""Story mode's plant and words: HR's workbook for the week (the roster from day 1, 马艳's leave ending the day
before), the seed's preset as the demo publishes it, the banner and the closing message, Chinese first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud.escalation.presets import PRESETS, SEED_LEAVE_END
from punchproof.demo_story import HANDBOOK, NOT_BACK, Pace, Story, cast
from punchproof.demo_week import CHECKOUT_AFTER_MIN, EVENING, SHIFT, SIM_APPLIANCE, DayReport

if TYPE_CHECKING:
    from punchproof.demo import Demo

__all__ = ["SEED_LEAVE_END", "WeekPlan", "closing_text", "seed_policy", "week_banner_text", "week_story"]
CONFIGURED = ("sms", "email", "voice", "ems")  # the demo's channels (no WeCom: the seed's 微信 step goes without it)
WEEK = Pace(
    lead_s=0,
    grace_min=5,
    tentative_min=15,
    shift_min=9 * 60,
    confirm_margin_min=15,
    checkout_after_min=CHECKOUT_AFTER_MIN,
    early_grace_min=0,
    duplicate_window_s=60,
)


@dataclass(frozen=True)
class WeekPlan:
    days: int  # 0: until the termination draft
    day_seconds: float


def week_story(day1: date) -> Story:
    """The plant on the story's first day: the demo's 30 workers, a day shift 08:00-17:00 every day, HR's data
    effective from day 1, 马艳's sick leave ending the day before. Nobody punches in the story."""
    from punchproof.demo import TZ

    hours, minutes = map(int, SHIFT[0].split(":"))
    start = datetime.combine(day1, time(hours, minutes), TZ)
    return Story(TZ, WEEK, start, cast(), ())


def seed_policy() -> dict[str, Any]:
    """The seed's preset as HR publishes it in the demo: the handbook's article filled in, the 微信 (WeCom) step
    left out (the demo configures SMS, e-mail, calls and post)."""
    body = PRESETS[SEED_LEAVE_END].policy_body()
    for step in body["ladder"]:
        step["channels"] = [c for c in step["channels"] if c in CONFIGURED]
    body["termination"]["channels"] = [c for c in body["termination"]["channels"] if c in CONFIGURED]
    body["union"]["channels"] = ["email"]
    body["handbook"] = dict(HANDBOOK)
    return body


def week_banner_text(demo: Demo, logins: dict[str, tuple[str, str]], story: Story, plan: WeekPlan) -> str:
    ports = demo.ports
    user, password = logins["cloud"]
    plant_user, plant_pw = logins["appliance"]
    who = story.worker(NOT_BACK)
    day1 = story.work_date
    until = f"演到第 {plan.days} 天" if plan.days else "演到解除草稿待人事确认（7 个虚拟日）"
    until_en = f"stops after day {plan.days}" if plan.days else "plays until the termination draft waits (7 days)"
    return f"""
Punchproof 演示：故事模式（工作目录 {demo.dir}）

  ** 时间为虚拟时间：案件流程和消息替身按虚拟时钟运行，每个虚拟日约 {plan.day_seconds:g} 秒 **
  ** 各天的考勤结论为模拟：由模拟设备 {SIM_APPLIANCE} 用规则引擎判定并签名（真实设备 pi-01 照常运行，但不参与本周）**

  总部（云端）  http://127.0.0.1:{ports.cloud_web}/    登录 login: {user} / {password}
  工厂看板      http://127.0.0.1:{ports.appliance_web}/    登录 login: {plant_user} / {plant_pw}
  发出的消息    {demo.dir / "messages" / "index.txt"}（邮件 mail/*.eml，短信 sms/*.json；时间为虚拟时间）

案件：{who.name}（{NOT_BACK}）病假于 {day1.isoformat()} 前一天结束，此后一直未返岗。
人事已发布政策模板“{SEED_LEAVE_END}”。
  第1天 {day1.isoformat()} {EVENING}  当天结论确认，立案，短信提醒本人
  第2天  向人事发出预警（邮件）
  第3天  失联预警：催告函发给本人及紧急联系人（短信、邮件，写明返岗期限）；通知中的链接可打开
  第4天  人事在案件页结束关怀联系（“紧急联系人电话无法接通”）——由本演示代为提交页面表单，按真实时间记录
  第7天 {EVENING}  返岗期限（当天 18:00）已过：记录旷工，发出旷工通知书，生成解除劳动合同通知书草稿，待人事确认
  {until}；结束时导出本案证据包并用 punchproof verify 校验。操作说明：docs/walkthrough.md“故事模式”

Story mode: time is VIRTUAL (the escalation runner and the channels' stand-ins run on a virtual clock, about
{plan.day_seconds:g} s per day); each day's attendance is SIMULATED (signed by the simulated appliance
{SIM_APPLIANCE} with the appliance's rules engine; the real appliance pi-01 runs but records none of the
week). {who.name}'s sick leave ended the day before {day1.isoformat()}; the seed's timeline plays day by day;
the story {until_en}, then exports the case's evidence bundle and verifies it.
What to click: docs/walkthrough.md, "Story mode".
Press Ctrl-C to stop. / 按 Ctrl-C 停止。
"""


def closing_text(bundle: Path, code: int, said: str, reports: list[DayReport]) -> str:
    verdict = {
        0: "全部校验通过 / every check passed",
        4: "签名与哈希无误，但没有第三方时间戳（演示自带的时间戳机构）/ signatures and hashes OK; no third-party time",
        5: "各项校验无误，但公钥取自证据包本身 / every check passed; keys taken from the bundle (not pinned)",
    }.get(code, "校验未通过 / verification FAILED")
    last = reports[-1] if reports else None
    where = f"第{last.number}天（{last.day.isoformat()}）" if last else ""
    # what verify says beyond its passed checks: failed checks, gaps, the records verified, the result
    kept = [line for line in said.splitlines() if line.strip() and "  OK  " not in line and line[-4:] != "  OK"]
    tail = "\n".join(f"    {line[:160]}" for line in kept[:14])
    return f"""
故事演到{where}。本案证据包 / the case's evidence bundle: {bundle}
  punchproof verify {bundle}
  → 退出码 exit {code}：{verdict}
{tail}
（模拟设备的公钥 / the simulated appliance's key: {bundle.parent / (SIM_APPLIANCE + ".pub")}，
  可用 --appliance-key 指定后再校验 / pin it with --appliance-key）
"""
