"""Head office's first page (``/``): HR's work queue, each line linking to its case.

Sections in the order a person should act: replies from employees not yet reviewed, approvals waiting for this
person, tasks due today or overdue (their statutory deadline and the days left) and the undated ones, sends
that failed or may have gone out (with what to do), and cases opened since the person last marked the list
seen. Counts in the headings; an empty section says so in one line. A plant manager sees their own plant only
and approves nothing. Times in each plant's zone. The appliances and their sync are on ``/devices``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, session, url_for

from cloud.escalation import work_queue
from cloud.web.present import bi, in_zone
from cloud.web.roles import can, now_ms, own_plant, require

bp = Blueprint("queue", __name__)

WORDS: dict[str, tuple[str, str]] = {
    "nav_queue": ("工作台", "Work queue"),
    "nav_devices": ("设备与同步", "Devices"),
    "title": ("待处理工作", "Work waiting"),
    "replies": ("员工回复（待审核）", "Replies from employees (not reviewed)"),
    "approvals": ("待您审批", "Approvals waiting for you"),
    "tasks": ("今日到期及逾期的待办", "Tasks due today or overdue"),
    "sends": ("发送失败或结果不明", "Failed and uncertain sends"),
    "new_cases": ("新案件", "New cases"),
    "none_replies": ("没有待审核的员工回复。", "No reply waits for review."),
    "none_approvals": ("没有等待您审批的事项。", "Nothing waits for your approval."),
    "none_approvals_role": (
        "审批由人事负责，您的角色无需审批。",
        "Approvals are HR's; your role approves nothing.",
    ),
    "none_tasks": ("今天没有到期或逾期的待办。", "No task is due today or overdue."),
    "none_sends": ("没有发送失败或结果不明的通知。", "No send failed or is uncertain."),
    "none_new_cases": ("自上次查看以来没有新案件。", "No new case since you last looked."),
    "case": ("案件", "Case"),
    "employee": ("员工", "Employee"),
    "plant": ("工厂", "Plant"),
    "what": ("事项", "What"),
    "since": ("时间", "Since"),
    "due": ("期限", "Due"),
    "left": ("剩余", "Left"),
    "todo": ("如何处理", "What to do"),
    "statutory": ("法定期限", "statutory"),
    "no_due": ("无期限", "no date"),
    "due_today": ("今天到期", "due today"),
    "mark_seen": ("已查看，清空新案件", "Seen: clear the new cases"),
    "new_since": ("{since} 以来", "since {since}"),
    "plant_only": ("仅显示本厂：{plant}", "Your plant only: {plant}"),
    "log_head": ("{n} 条", "{n} records"),  # the devices page: how many records of the log are verified
}


def word(key: str) -> str:
    zh, en = WORDS[key]
    return en if getattr(g, "lang", "zh") == "en" else zh


def left(days: int | None) -> str:
    """Days left as people say it: "剩 3 天", "今天到期", "逾期 2 天"."""
    if days is None:
        return word("no_due")
    if days == 0:
        return word("due_today")
    if days > 0:
        return bi(f"剩 {days} 天", f"{days} days left")
    return bi(f"逾期 {-days} 天", f"{-days} days overdue")


@bp.app_context_processor
def words() -> dict[str, Any]:
    """``qt`` for the navigation (base.html) and this page."""
    return {"qt": word}


@bp.route("/")
@require("view")
def index() -> Any:
    now = now_ms()
    mine = own_plant()
    queue = work_queue.for_person(str(session.get("user", "")), plant=mine, may_approve=can("case.act"), now_ms=now)
    return render_template(
        "queue.html",
        queue=queue,
        sections=(
            ("replies", queue.replies),
            ("approvals", queue.approvals),
            ("tasks", queue.tasks),
            ("sends", queue.sends),
            ("new_cases", queue.new_cases),
        ),
        may_approve=can("case.act"),
        mine=mine,
        bi=bi,
        in_zone=in_zone,
        left=left,
    )


@bp.route("/queue/seen", methods=["POST"])
@require("view")
def seen() -> Any:
    """The new cases listed so far are seen: the list starts again from now."""
    work_queue.mark_seen(str(session.get("user", "")), now_ms())
    return redirect(url_for("queue.index"))
