"""HR's work, read from the case tables: what head office's first page lists and what the HR digest sends.

Five kinds of work, in the order a person should see them:

* replies from employees (a notice link's reply) that HR has not reviewed yet: the case's ``review_reply`` task
  is open;
* approvals waiting (催告函, termination): an open gate this person has not approved since it opened;
* tasks with a date due today or overdue (the welfare check, EMS, the 解除证明 within 15 days...), with the
  plant's local due date and the calendar days left, and the undated ones a person must still do;
* sends that failed or may have gone out (the engine's ``send_failed:`` / ``check_send:`` tasks), with what to
  do: serve it another way, or ask the provider before sending again;
* new cases since the person last marked the list seen (``QueueVisit``).

Each item names its case; every text is a (Chinese, English) pair, Chinese first. A plant manager's lists are
limited to their plant in the query (``plant``). Times are epoch milliseconds UTC; days are the plant's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import peewee as pw

from cloud.escalation import workdays
from cloud.escalation.models import AbsenceCase, CaseEntry, CaseStep, CaseTask, Gate, GateApproval
from cloud.escalation.policy import step_label
from cloud.hr.models import Employee
from cloud.store import BaseModel, Plant

DAY_MS = 86_400_000
NEW_CASES_DAYS = 7  # a person who never marked the list seen: the cases of the last week are new
SEND_KINDS = ("send_failed:", "check_send:")
OWN_SECTIONS = ("review_reply", *SEND_KINDS)  # tasks listed in their own sections, not among the tasks
GATES = {  # an open gate: what approving it does
    "approve_cuigao": ("审批催告函（批准后发出）", "approve the notice to return (it goes out once approved)"),
    "confirm_termination": ("确认解除劳动合同（审阅通知书草稿）", "confirm the termination (review the drafts)"),
}
SENDS = {  # a send's task kind: what happened, and what the person does
    "send_failed": (
        "发送失败",
        "failed",
        "核对联系方式后在案件页手动重发，或改用其他方式送达",
        "check the contacts, then resend by hand on the case page or serve it another way",
    ),
    "check_send": (
        "发送结果不明",
        "outcome unknown",
        "先向服务商核实是否已发出，再决定是否在案件页重发",
        "check with the provider whether it went out before resending on the case page",
    ),
}
TRIGGERS = {"missed_shift": ("未打卡缺勤", "missed shift"), "leave_end": ("假期结束未返岗", "not back after leave")}


class QueueVisit(BaseModel):
    """When each person last marked their work queue seen: cases opened after it are new to them."""

    username = pw.CharField(primary_key=True)
    seen_ms = pw.BigIntegerField()


MODELS = (QueueVisit,)


@dataclass(frozen=True)
class Item:
    """One line of work: its case, whom it is about, what it is (zh, en), and the times that matter."""

    key: str  # stable across ticks: what the digest remembers having sent
    case_id: int
    plant: str
    timezone: str
    employee: str  # name and 工号
    what_zh: str
    what_en: str
    at_ms: int  # when it arose
    due_ms: int | None = None
    days_left: int | None = None  # calendar days from today to the due day (negative: overdue)
    statutory: bool = False
    todo_zh: str = ""
    todo_en: str = ""
    detail_zh: str = ""
    detail_en: str = ""


@dataclass(frozen=True)
class Queue:
    replies: list[Item]
    approvals: list[Item]
    tasks: list[Item]
    sends: list[Item]
    new_cases: list[Item]
    since_ms: int  # what "new" counts from


def _who(employee: Employee, user_id: str) -> str:
    name = employee.name or ""
    number = employee.employee_no or user_id
    return f"{name}（{number}）" if name else number


def _mine(query: pw.ModelSelect, plant: str | None) -> pw.ModelSelect:
    return query.where(AbsenceCase.plant == plant) if plant is not None else query


def _item(case: AbsenceCase, key: str, zh: str, en: str, at_ms: int, **more: object) -> Item:
    return Item(
        key=key,
        case_id=case.id,
        plant=case.plant.name or case.plant_id,
        timezone=case.plant.timezone,
        employee=_who(case.employee, case.user_id),
        what_zh=zh,
        what_en=en,
        at_ms=at_ms,
        **more,  # type: ignore[arg-type]
    )


def _tasks(plant: str | None) -> list[CaseTask]:
    query = (
        CaseTask.select(CaseTask, AbsenceCase, Plant, Employee)
        .join(AbsenceCase)
        .join(Plant)
        .switch(AbsenceCase)
        .join(Employee)
        .where(CaseTask.status == "open")
    )
    return list(_mine(query, plant).order_by(CaseTask.id))


def replies(plant: str | None, tasks: list[CaseTask] | None = None) -> list[Item]:
    """Employees' replies HR has not reviewed: newest first, with what the employee said."""
    open_reviews = [t for t in (tasks if tasks is not None else _tasks(plant)) if t.kind == "review_reply"]
    said: dict[int, CaseEntry] = {}
    if open_reviews:
        for entry in (
            CaseEntry.select()
            .where((CaseEntry.case.in_([t.case_id for t in open_reviews])) & (CaseEntry.kind == "notice_reply"))
            .order_by(CaseEntry.seq)
        ):
            said[entry.case_id] = entry  # the latest reply of each case
    items = []
    for task in open_reviews:
        entry = said.get(task.case_id)
        at = entry.at_ms if entry is not None else task.created_ms
        items.append(
            _item(
                task.case,
                f"reply:{task.id}:{at}",
                "员工回复了通知",
                "the employee replied to a notice",
                at,
                detail_zh=entry.text_zh.split("；IP ")[0] if entry is not None else task.title_zh,  # what was said,
                detail_en=entry.text_en.split("; IP ")[0] if entry is not None else task.title_en,  # not the browser
                todo_zh="核实后确认原因、登记假期或结案",
                todo_en="check it, then confirm the reason, record leave or close the case",
            )
        )
    return sorted(items, key=lambda i: -i.at_ms)


def approvals(plant: str | None, username: str | None) -> list[Item]:
    """Open gates, oldest first; with ``username``, only those this person has not approved since they opened
    (a gate needing two people waits for the second one, not for the first again)."""
    query = (
        Gate.select(Gate, AbsenceCase, Plant, Employee)
        .join(AbsenceCase)
        .join(Plant)
        .switch(AbsenceCase)
        .join(Employee)
        .where(Gate.status == "open")
    )
    gates = list(_mine(query, plant).order_by(Gate.opened_ms, Gate.id))
    given: dict[int, list[GateApproval]] = {}
    if gates:
        for approval in GateApproval.select().where(GateApproval.gate.in_([g.id for g in gates])):
            given.setdefault(approval.gate_id, []).append(approval)
    items = []
    for gate in gates:
        current = [a for a in given.get(gate.id, []) if a.at_ms >= gate.opened_ms]
        if username is not None and any(a.by == username for a in current):
            continue
        zh, en = GATES.get(gate.kind, ("审批", "approve"))
        count = f"（已 {len(current)}/{gate.required} 人）" if gate.required > 1 else ""
        items.append(
            _item(
                gate.case,
                f"gate:{gate.id}:{gate.opened_ms}",
                zh + count,
                en + (f" ({len(current)}/{gate.required} people so far)" if gate.required > 1 else ""),
                gate.opened_ms,
            )
        )
    return items


def days_left(due_ms: int, now_ms: int, tz: str) -> int:
    """Calendar days from the plant's today to the due day: 0 due today, negative overdue."""
    return (workdays.local_day(due_ms, tz) - workdays.local_day(now_ms, tz)).days


def working_days_left(due_ms: int, now_ms: int, tz: str) -> int:
    """Working days after the plant's today up to and including the due day (0: due today or past)."""
    today, due = workdays.local_day(now_ms, tz), workdays.local_day(due_ms, tz)
    count, day = 0, today
    while day < due:
        day += timedelta(days=1)
        count += workdays.is_workday(day)
    return count


def tasks(plant: str | None, now_ms: int, *, within_days: int = 0, rows: list[CaseTask] | None = None) -> list[Item]:
    """Open tasks due by the end of the plant's day ``within_days`` from today (0: today or overdue), most
    urgent first; then the undated ones a person must do (a notice that could not be made, a channel missing...)."""
    dated, undated = [], []
    for task in rows if rows is not None else _tasks(plant):
        if task.kind in OWN_SECTIONS or task.kind.startswith(SEND_KINDS):
            continue
        tz = task.case.plant.timezone
        if task.due_ms is None:
            undated.append(
                _item(
                    task.case,
                    f"task:{task.id}",
                    task.title_zh,
                    task.title_en,
                    task.created_ms,
                    statutory=task.statutory,
                )
            )
            continue
        left = days_left(task.due_ms, now_ms, tz)
        if left > within_days:
            continue
        dated.append(
            _item(
                task.case,
                f"task:{task.id}:{task.due_ms}",
                task.title_zh,
                task.title_en,
                task.created_ms,
                due_ms=task.due_ms,
                days_left=left,
                statutory=task.statutory,
            )
        )
    return sorted(dated, key=lambda i: (i.due_ms, i.case_id)) + undated


def sends(plant: str | None, rows: list[CaseTask] | None = None) -> list[Item]:
    """Steps that failed on every channel or may have gone out, still open for a person, newest first."""
    open_tasks = [t for t in (rows if rows is not None else _tasks(plant)) if t.kind.startswith(SEND_KINDS)]
    steps: dict[tuple[int, str], CaseStep] = {}
    if open_tasks:
        for step in CaseStep.select().where(CaseStep.case.in_({t.case_id for t in open_tasks})):
            steps[(step.case_id, step.key)] = step
    items = []
    for task in open_tasks:
        kind, _, key = task.kind.partition(":")
        step = steps.get((task.case_id, key))
        happened_zh, happened_en, todo_zh, todo_en = SENDS[kind]
        label_zh = step_label(key, step.notice) if step is not None else key
        label_en = step_label(key, step.notice, "en") if step is not None else key
        items.append(
            _item(
                task.case,
                f"send:{task.id}:{task.created_ms}",
                f"{label_zh} {happened_zh}",
                f"{label_en} {happened_en}",
                task.created_ms,
                todo_zh=todo_zh,
                todo_en=todo_en,
            )
        )
    return sorted(items, key=lambda i: -i.at_ms)


def new_cases(plant: str | None, since_ms: int) -> list[Item]:
    """Cases opened after ``since_ms``, newest first."""
    query = (
        AbsenceCase.select(AbsenceCase, Plant, Employee)
        .join(Plant)
        .switch(AbsenceCase)
        .join(Employee)
        .where(AbsenceCase.opened_ms > since_ms)
    )
    items = []
    for case in _mine(query, plant).order_by(AbsenceCase.opened_ms.desc(), AbsenceCase.id.desc()):
        zh, en = TRIGGERS.get(case.trigger, ("缺勤", "absence"))
        items.append(
            _item(
                case,
                f"case:{case.id}",
                f"新案件：{zh}，自 {case.first_day} 起",
                f"new case: {en} from {case.first_day}",
                case.opened_ms,
            )
        )
    return items


def seen_since(username: str, now_ms: int) -> int:
    """When ``username`` last marked the queue seen; a week ago for someone who never did."""
    visit = QueueVisit.get_or_none(QueueVisit.username == username)
    return visit.seen_ms if visit is not None else now_ms - NEW_CASES_DAYS * DAY_MS


def mark_seen(username: str, now_ms: int) -> None:
    QueueVisit.insert(username=username, seen_ms=now_ms).on_conflict(
        conflict_target=[QueueVisit.username], update={QueueVisit.seen_ms: now_ms}
    ).execute()


def for_person(username: str, *, plant: str | None, may_approve: bool, now_ms: int) -> Queue:
    """Everything waiting for ``username`` (a plant manager's: ``plant`` only), in the page's order."""
    open_tasks = _tasks(plant)
    since = seen_since(username, now_ms)
    return Queue(
        replies=replies(plant, open_tasks),
        approvals=approvals(plant, username) if may_approve else [],
        tasks=tasks(plant, now_ms, rows=open_tasks),
        sends=sends(plant, open_tasks),
        new_cases=new_cases(plant, since),
        since_ms=since,
    )
