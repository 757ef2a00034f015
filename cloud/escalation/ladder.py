"""The state machine of ESCALATION.md §3.2 as a pure function: a case's snapshot and the time in,
the transitions due out. No database, no clock: the engine applies what this returns and asks
again until nothing more is due, so every rule here can be tested (and property-tested) alone.

Levels: 0 opened (D1 confirmed) · 1 L1 employee reminded · 2 L2 manager and HR warned · 3 L3 催告
· 4 L4 旷工 recorded · 5 L5 termination draft (HR must confirm) · 6 L6 union notified · 7 L7
termination sent · 8 L8 post-termination. Side states: welfare check (pauses L4 and beyond),
medical/injury track (stops the ladder), resolved.

Order and spacing when the runner was behind (a late start, an HR import that brings several counted days at
once, a runner that was stopped): the rungs L1→L2→L3 are keyed on counted days D1/D2/D3, and in real time each
counted day is confirmed on its own local date, after the one before. So a rung is climbed only when (a) every
step of the rung below has gone out — sent, or finished as failed or uncertain with a task for a person; never
while one is still due, being sent or awaiting approval — and (b) the plant's local date has moved on from the
date the rung below was climbed by at least the policy's spacing of the two rungs in counted days
(``after_days`` of the rung above minus that of the rung below: one day in the default ladder), from 00:00 of
that date. In real time this never holds a case back; when catching up, the employee's reminder and the 催告函
never go out in the same minute: the 催告函 comes at the earliest on the second local date after the reminder's
rung was climbed (and, a formal notice, on a working day inside the sending window). The 催告函 still states
every counted day. Calendar days, not working days, space the rungs: workers rostered on a Saturday count it as
a day, and a statutory rest day between D1 and D2 must not hold back the manager's warning in real time.

What an acknowledgement does and does not do: it holds back the *automatic* outbound steps (and the
L1→L2→L3 climb) until ``acked_until``; it never moves a statutory or procedural clock (the return
deadline, the union's wait, 公告's 30 days, post-termination due dates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud.escalation.policy import Policy

DAY_MS = 86_400_000
STATES = {
    0: "D1_CONFIRMED",
    1: "L1_EMPLOYEE_REMINDED",
    2: "L2_MANAGER_HR_WARNED",
    3: "L3_CUIGAO_ISSUED",
    4: "L4_KUANGGONG_RECORDED",
    5: "L5_TERMINATION_DRAFT",
    6: "L6_UNION_NOTIFIED",
    7: "L7_TERMINATION_SERVED",
    8: "L8_POST_TERMINATION",
}
RESOLVED = "RESOLVED"
MEDICAL = "MEDICAL_OR_INJURY_TRACK"
PENDING = ("awaiting_approval", "due")  # a step not taken yet
NOT_OUT = (*PENDING, "sending")  # a step that has not gone out (nor finished as failed or uncertain)
CHECKS_ZH = {
    "cuigao_sent": "发出催告函",
    "cuigao_served": "送达催告函（请登记 EMS 妥投、签收，或送达失败后公告）",
    "deadline_passed": "过返岗期限",
    "welfare_closed": "结束福利核查",
    "basis_met": "达到制度阈值",
    "handbook_adopted": "登记制度的民主程序",
    "handbook_published": "登记制度的公示",
}


@dataclass(frozen=True)
class Snapshot:
    state: str
    level: int
    days: int
    consecutive: int
    cumulative_month: int = 0
    cumulative_year: int = 0
    acked_until_ms: int | None = None
    ack_expired: bool = False
    contacted: bool = False
    welfare: str = ""
    deadline_ms: int | None = None
    union_wait_until_ms: int | None = None
    effective_ms: int | None = None
    blocked: str = ""
    steps: Mapping[str, str] = field(default_factory=dict)  # key -> status (the latest round of each key)
    gates: Mapping[str, str] = field(default_factory=dict)  # kind -> status
    tasks: Mapping[str, str] = field(default_factory=dict)  # kind -> status
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # document -> Service fields
    climbed: Mapping[int, int] = field(default_factory=dict)  # level -> when the case last climbed to it (L1..L3)


@dataclass(frozen=True)
class Plan:
    key: str
    level: int
    notice: str
    recipients: tuple[str, ...]
    channels: tuple[str, ...]
    to_people: bool
    automatic: bool
    needs_approval: bool = False
    again: bool = False  # a new round even when an earlier one was sent (a 催告函 re-issued with a later deadline)


@dataclass(frozen=True)
class Task:
    kind: str
    zh: str
    en: str
    due_ms: int | None = None
    statutory: bool = False


@dataclass(frozen=True)
class Note:
    kind: str
    zh: str
    en: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenGate:
    kind: str
    required: int
    checklist: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Supersede:
    key: str
    zh: str
    en: str


@dataclass(frozen=True)
class Withdraw:
    """An open gate (and its review task) withdrawn: what it would approve has lost its basis."""

    gate: str
    task: str


@dataclass(frozen=True)
class Set:
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Deemed:
    document: str
    at_ms: int


Action = Plan | Task | Note | OpenGate | Supersede | Set | Deemed | Withdraw


def basis_met(s: Snapshot, p: Policy) -> bool:
    """The handbook's threshold: consecutive absent working days, or a cumulative rule."""
    return (
        s.consecutive >= p.consecutive_days
        or (p.month_days > 0 and s.cumulative_month >= p.month_days)
        or (p.year_days > 0 and s.cumulative_year >= p.year_days)
    )


@dataclass(frozen=True)
class Calendar:
    """The plant's calendar as the ladder needs it (epoch ms; working days of the Chinese calendar)."""

    union_deadline: Callable[[int], int]  # the end of the union's wait, counted from a moment
    return_deadline: Callable[[int], int]  # the 催告函's return deadline for service achieved at a moment
    workday_start: Callable[[int], int]  # 00:00 of the first working day on or after a moment's day
    day_start: Callable[[int, int], int] = field(default=lambda at, days: (at // DAY_MS + days) * DAY_MS)
    # ^ 00:00 of the date ``days`` calendar days after a moment's date (UTC dates here; the plant's: machine)


def served_at(s: Snapshot, document: str) -> int | None:
    """When ``document`` was served in fact: served (EMS 妥投, a signed receipt, a delivery receipt), or deemed
    served (公告 + its days). Sent is not served: nothing is assumed."""
    svc = s.services.get(document)
    if not svc:
        return None
    if svc.get("status") == "served":
        return svc.get("served_ms")
    if svc.get("status") == "deemed":
        return svc.get("deemed_ms")
    return None


def termination_on(s: Snapshot, cal: Calendar) -> int | None:
    """The proposed termination date the union letter states: the first working day after the union's wait."""
    return None if s.union_wait_until_ms is None else cal.workday_start(s.union_wait_until_ms)


def decide(s: Snapshot, p: Policy, now_ms: int, cal: Calendar) -> list[Action]:
    """The next transitions due for ``s`` at ``now_ms`` (empty when nothing is due).

    The engine applies them and calls again; each call moves at most one rung, so the timeline
    reads in order. ``cal`` gives the dates that depend on the plant's calendar.
    """
    if s.state in (RESOLVED, MEDICAL):
        return []
    acked = s.acked_until_ms is not None and now_ms < s.acked_until_ms
    if s.acked_until_ms is not None and not acked:
        return [
            Set({"acked_until_ms": None, "ack_expired": s.ack_expired or s.level == 2}),
            Note("ack_timeout", "确认已超时，升级继续", "acknowledgement timed out; escalation resumes"),
        ]
    for document, svc in s.services.items():
        if svc.get("status") == "published" and svc.get("deemed_ms") is not None and now_ms >= svc["deemed_ms"]:
            return [Deemed(document, svc["deemed_ms"])]
    out = _deadline(s, p, cal)
    if out:
        return out
    out = _supersede_unjustified(s, p)
    if out:
        return out
    if s.level < 3:
        return _climb(s, p, acked, now_ms, cal)
    if s.level >= 3 and s.welfare == "" and not s.contacted and 0 < p.welfare_check_day <= s.days and s.level < 5:
        return [
            Set({"welfare": "open"}),
            Task(
                "welfare_check",
                "福利核查：联系紧急联系人，必要时向医院/110 查询",
                "welfare check: call the emergency contact; consider hospitals or 110",
                now_ms + DAY_MS,
            ),
            Note(
                "welfare_open",
                "失联至今无任何联系：开启福利核查，暂停纪律步骤",
                "no contact at all: welfare check opened, disciplinary steps paused",
            ),
        ]
    if s.level == 3:
        return _to_l4(s, p, now_ms)
    if s.level == 4:
        return _to_l5(s, p, now_ms)
    if s.level == 5 and s.gates.get("confirm_termination") == "open" and not basis_met(s, p):
        # days excused after the draft was made (a doctor's note): the draft goes, held back until the basis is met
        return [
            Set({"level": 4, "state": STATES[4], "blocked": "basis_met"}),
            Withdraw("confirm_termination", "review_termination"),
            Note(
                "withdrawn",
                f"解除草稿撤回：未{CHECKS_ZH['basis_met']}（现确认缺勤 {s.days} 天）",
                f"termination draft withdrawn: basis no longer met ({s.days} absent day(s) now)",
                {"missing": ["basis_met"]},
            ),
        ]
    if s.level == 5 and s.gates.get("confirm_termination") == "approved":
        if not p.union_exists:
            return [
                Set({"level": 6, "state": STATES[6]}),
                Note(
                    "no_union", "本单位无工会，直接送达解除通知", "no union: the termination notice goes out directly"
                ),
            ]
        until = cal.union_deadline(now_ms)
        return [
            Set({"level": 6, "state": STATES[6], "union_wait_until_ms": until}),
            Plan("L6:union", 6, "union_letter", ("union",), p.union_channels, to_people=False, automatic=False),
            Task(
                "union_reply",
                "记录工会意见及本单位书面答复",
                "record the union's reply and the company's written answer",
                until,
            ),
            Note(
                "L6",
                "已确认解除：事先通知工会（劳动合同法第四十三条）",
                "termination confirmed: union notified first (Labour Contract Law art. 43)",
                {"wait_until_ms": until},
            ),
        ]
    proposed = termination_on(s, cal)
    if s.level == 6 and (not p.union_exists or s.union_wait_until_ms is None or now_ms >= (proposed or 0)):
        # with a union, not before the date its letter proposed: after the whole reply window, on a working day
        return [
            Set({"level": 7, "state": STATES[7]}),
            Plan(
                "L7:termination",
                7,
                "termination",
                ("employee",),
                p.termination_channels,
                to_people=True,
                automatic=False,
            ),
            Task(
                "ems_termination",
                "EMS 邮寄解除劳动合同通知书至合同约定地址，运单注明文书名称",
                "post the termination notice by EMS to the contract address; name the document on the waybill",
            ),
            Note("L7", "送达解除劳动合同通知书", "serving the termination notice"),
        ]
    if s.level == 7:
        served = served_at(s, "termination")
        if served is not None:
            return _to_l8(p, served)
    return []


def climb_from(s: Snapshot, p: Policy, cal: Calendar) -> int | None:
    """The earliest moment the case may climb from its rung (L0–L2) to the next, as far as order and spacing go
    (see the module's docstring): None while a step of its rung has not gone out; 0 when nothing holds it."""
    if s.level == 0 or s.level >= 3:
        return 0
    below = [st for st in p.ladder if st.level == s.level]
    if any(s.steps.get(st.key) in NOT_OUT for st in below):
        return None
    since = s.climbed.get(s.level)
    if since is None:
        return 0
    above = [st.after_days for st in p.ladder if st.level == s.level + 1]
    gap = max(0, min(above, default=0) - min((st.after_days for st in below), default=0))
    return cal.day_start(since, gap) if gap else since


def _climb(s: Snapshot, p: Policy, acked: bool, now_ms: int, cal: Calendar) -> list[Action]:
    """L0→L1→L2→L3: due by confirmed absent days (or an ack that ran out at L2), held while acked, and in order:
    not before the rung below has gone out, nor sooner after it than the policy spaces them (``climb_from``)."""
    target = s.level + 1
    steps = [st for st in p.ladder if st.level == target]
    need = min(st.after_days for st in steps)
    if acked or (s.days < need and not (target == 3 and s.ack_expired)):
        return []
    allowed = climb_from(s, p, cal)
    if allowed is None or now_ms < allowed:
        return []
    out: list[Action] = [Set({"level": target, "state": STATES[target]})]
    for st in steps:
        approval = st.notice == "cuigao" and p.approve_cuigao
        out.append(Plan(st.key, st.level, st.notice, st.recipients, st.channels, st.to_people, True, approval))
        if approval:
            out.append(OpenGate("approve_cuigao", 1))
    if target == 3:
        out.append(
            Task(
                "ems_cuigao",
                "EMS 邮寄催告函至合同约定地址，运单注明“关于限期返岗的通知”",
                "post the 催告函 by EMS to the contract address; name the document on the waybill",
            )
        )
    names = {
        1: ("提醒员工本人", "employee reminded"),
        2: ("预警直属主管和人事，请致电员工", "manager and HR warned; call the employee"),
        3: ("失联预警：发出催告函/返岗通知书", "missing-contact warning: notice to return issued"),
    }
    why = "确认超时" if s.ack_expired and target == 3 and s.days < need else f"已确认缺勤 {s.days} 个工作日"
    why_en = "acknowledgement timed out" if why == "确认超时" else f"{s.days} confirmed absent working day(s)"
    out.append(Note(f"L{target}", f"{names[target][0]}（{why}）", f"{names[target][1]} ({why_en})", {"days": s.days}))
    return out


def _deadline(s: Snapshot, p: Policy, cal: Calendar) -> list[Action]:
    """The return deadline from the service achieved: set when service is first known; moved later (and the
    催告函 issued again with it) when the service achieved leaves less than the return days before the deadline
    already stated. Never moved earlier: the employee may rely on the date a notice gave."""
    base = served_at(s, "cuigao")
    if base is None:
        return []
    due = cal.return_deadline(base)
    if s.deadline_ms is not None and due <= s.deadline_ms:
        return []
    out: list[Action] = [
        Set({"deadline_ms": due}),
        Note(
            "deadline",
            f"催告函返岗期限：送达后 {p.return_days} 日（遇休息日、法定节假日顺延）"
            + ("，较已告知的期限顺延，重新发出催告函" if s.deadline_ms is not None else ""),
            f"return deadline: {p.return_days} days after service (moved off rest days and holidays)"
            + ("; later than the one stated, so the notice to return is issued again" if s.deadline_ms else ""),
            {"deadline_ms": due, "served_ms": base, "was_ms": s.deadline_ms},
        ),
    ]
    if s.deadline_ms is not None and s.steps.get("L3") == "sent":
        channels = next((st.channels for st in p.ladder if st.notice == "cuigao"), ("sms", "email", "ems"))
        out.append(Plan("L3:renew", 3, "cuigao", ("employee",), channels, True, False, again=True))
    return out


def _waiting(s: Snapshot, now_ms: int) -> dict[str, bool]:
    """What the 旷工通知书 and the termination draft state has happened: the 催告函 sent, served, its deadline over."""
    return {
        # 催告 before 解除: a hard gate, even where the handbook is silent; a 催告函 issued again (a later deadline)
        # must have gone out too, or 旷工 would be recorded on a deadline the employee was never told
        "cuigao_sent": s.steps.get("L3") == "sent" and s.steps.get("L3:renew") not in (*PENDING, "sending"),
        "cuigao_served": served_at(s, "cuigao") is not None,
        "deadline_passed": s.deadline_ms is not None and now_ms >= s.deadline_ms,
    }


def _held(s: Snapshot, checks: Mapping[str, bool], what_zh: str, what_en: str) -> list[Action]:
    """Held back: an entry once per change of what is missing (waiting for the deadline alone is normal)."""
    missing = sorted(k for k, ok in checks.items() if not ok)
    blocked = ",".join(missing)
    if blocked == s.blocked or set(missing) <= {"deadline_passed"}:
        return []
    return [
        Set({"blocked": blocked}),
        Note(
            "blocked",
            f"尚不能{what_zh}：{'、'.join('未' + CHECKS_ZH.get(k, k) for k in missing)}",
            f"{what_en} held back: {blocked}",
            {"missing": missing},
        ),
    ]


def _to_l4(s: Snapshot, p: Policy, now_ms: int) -> list[Action]:
    """旷工 recorded (and its notice, which says the 催告 deadline is over) only once the 催告函 was served and
    its deadline has passed."""
    if s.welfare == "open" or not basis_met(s, p):
        return []
    waiting = _waiting(s, now_ms)
    if not all(waiting.values()):
        return _held(s, waiting, "记录旷工", "absence record")
    out: list[Action] = [Set({"level": 4, "state": STATES[4], "blocked": ""})]
    for st in p.ladder:
        if st.level == 4:
            out.append(Plan(st.key, 4, st.notice, st.recipients, st.channels, st.to_people, True))
    out.append(
        Note(
            "L4",
            f"催告期限已过，记录旷工：连续 {s.consecutive} 个工作日（本月累计 {s.cumulative_month}，本年 "
            f"{s.cumulative_year}），依据《员工手册》{p.handbook.version} {p.handbook.article}",
            f"deadline passed, absence recorded: {s.consecutive} consecutive working days (month "
            f"{s.cumulative_month}, year {s.cumulative_year}); handbook {p.handbook.version} {p.handbook.article}",
            {
                "handbook": p.handbook.version,
                "article": p.handbook.article,
                "publication_ref": p.handbook.publication_ref,
            },
        )
    )
    return out


def _to_l5(s: Snapshot, p: Policy, now_ms: int) -> list[Action]:
    checks = {
        **_waiting(s, now_ms),
        "welfare_closed": s.welfare != "open",
        "basis_met": basis_met(s, p),
        "handbook_adopted": bool(p.handbook.adoption_ref),
        "handbook_published": bool(p.handbook.publication_ref),
    }
    if not all(checks.values()):
        return _held(s, checks, "起草解除", "termination draft")
    return [
        Set({"level": 5, "state": STATES[5], "blocked": ""}),
        OpenGate("confirm_termination", p.termination_approvers, checks),
        Task(
            "review_termination",
            "审核解除劳动合同通知书草稿（须人事确认）",
            "review the termination draft (HR must confirm)",
        ),
        Note(
            "L5",
            "返岗期限已过：生成解除劳动合同通知书草稿，待人事确认",
            "return deadline passed: termination draft awaits HR's confirmation",
            {"checks": checks},
        ),
    ]


def _to_l8(p: Policy, effective_ms: int) -> list[Action]:
    days = DAY_MS
    return [
        Set({"level": 8, "state": STATES[8], "effective_ms": effective_ms}),
        Task(
            "certificate",
            "出具解除劳动合同证明（实施条例第二十四条）",
            "issue the termination certificate",
            effective_ms,
            True,
        ),
        Task("final_wages", "结清工资", "pay the final wages in full", effective_ms, True),
        Task(
            "unemployment_list",
            f"{p.unemployment_list_days} 日内向社保经办机构报送失业人员名单",
            f"report to the social-insurance office within {p.unemployment_list_days} days",
            effective_ms + p.unemployment_list_days * days,
            True,
        ),
        Task(
            "archive_transfer",
            f"{p.archive_transfer_days} 日内办理档案和社会保险关系转移（劳动合同法第五十条）",
            f"transfer the file and social insurance within {p.archive_transfer_days} days",
            effective_ms + p.archive_transfer_days * days,
            True,
        ),
        Task(
            "social_insurance_stop",
            "社保减员/停保（仅在解除生效后）",
            "stop social insurance (only now that the termination is effective)",
            effective_ms + p.archive_transfer_days * days,
            True,
        ),
        Task(
            "keep_file",
            f"解除的劳动合同文本至少保存 {p.archive_keep_years} 年",
            f"keep the contract at least {p.archive_keep_years} years",
            effective_ms + p.archive_keep_years * 365 * days,
            True,
        ),
        Note(
            "L8",
            "解除已送达生效：离职后续事项开始计时",
            "termination served and effective: post-termination timers start",
            {"effective_ms": effective_ms},
        ),
    ]


def _supersede_unjustified(s: Snapshot, p: Policy) -> list[Action]:
    """Steps not taken yet whose basis went away (leave approved later, a 补卡): superseded, never deleted."""
    out: list[Action] = []
    for st in p.ladder:
        status = s.steps.get(st.key)
        if status not in PENDING:
            continue
        justified = basis_met(s, p) if st.level == 4 else (s.days >= st.after_days or (st.level == 3 and s.ack_expired))
        if not justified:
            out.append(
                Supersede(st.key, f"依据已变：现确认缺勤 {s.days} 天", f"basis changed: {s.days} absent day(s) now")
            )
    if out:
        kept = [
            st.level
            for st in p.ladder
            if s.steps.get(st.key) == "sent"
            or (s.steps.get(st.key) in PENDING and not any(isinstance(a, Supersede) and a.key == st.key for a in out))
        ]
        level = max(kept, default=0)
        if level < s.level <= 4:
            out.append(Set({"level": level, "state": STATES[level]}))
    return out
