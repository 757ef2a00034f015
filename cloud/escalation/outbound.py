"""The real ``Sender``: a planned step becomes a rendered notice and one message per channel and recipient,
each through the channels' ``Dispatcher`` under a stable idempotency key.

The key is (``case-<id>``, the step's key, the policy's channel kind — "sms", never "sms.aliyun" —, the
address), so a step tried again, or by a second runner, never reaches anyone twice: what went out is
returned from the contact log, not sent. Outcomes for the engine:

* every message accepted (or a person's task opened): the step is sent;
* some failed definitely, and tries are left: ``SendRetry`` (the failed ones go again later, the others
  are not repeated); after ``max_rounds`` the step is sent if anything went out, else ``SendFailed``;
* nothing went out surely but something may have (no answer): ``SendUncertain``, for a person;
* quiet hours for the employee or an emergency contact: ``SendRetry`` at the window's start;
* a channel the step names is not configured (the policy was published before it went, or with "skip"):
  each recipient×channel of it is "无法发送：未配置短信通道", returned with a sent step (its error) or in
  ``SendFailed``, and a task for a person (``no_channel:<step>``); the other channels still go;
* the notice cannot be made (a fact it states is missing: no 催告函 served before a 旷工通知书, no handbook
  text; no Chinese font): ``NoticeUnrenderable``, naming the facts and what a person does — no channel failed.

Each recipient×channel's ``Outcome`` (sent, a person's task, failed, uncertain, no address, not configured)
comes back with the step (``Sent``) or with its failure, for the timeline to say who was reached.

Recipients: ``employee`` and ``manager`` from HR's master data, ``emergency_contact`` by SMS, call or post
only (they are no members of the company's WeCom/DingTalk), ``hr`` and ``union`` from ``[notices]``; the
group robots post to their group whoever the recipient. A recipient with no address for a channel is
skipped and said so in the error of a step that reached nobody.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from cloud.channels import contact_log, names
from cloud.channels.base import Attachment, Attempt, OutboundMessage, Status
from cloud.channels.contact_log import ContactAttempt
from cloud.channels.dispatch import DispatchBusy, Dispatcher, one_writer
from cloud.channels.writer import together
from cloud.clock import Clock, to_ms
from cloud.escalation import bulk, cases, notice_facts
from cloud.escalation.cases import policy_of
from cloud.escalation.engine import next_window
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.policy import NOTICE_NAMES, PEOPLE, ROLE_NAMES
from cloud.escalation.sender import (
    MissingFact,
    NoticeUnrenderable,
    Outcome,
    PlannedStep,
    SendFailed,
    SendRetry,
    SendUncertain,
    Sent,
)
from cloud.hr.models import EmergencyContact, Employee
from cloud.notices import records, templates
from cloud.notices.links import Links
from cloud.notices.render import MissingFacts, NoticeWords, RenderedNotice, render_pdf, render_words
from cloud.notices.settings import NoticeSettings
from cloud.report_font import CjkFont, ReportFontMissing, find_font
from cloud.store import Plant

log = logging.getLogger(__name__)
ROBOTS = ("wecom_robot", "dingtalk_robot")
EMERGENCY = ("sms", "voice", "ems")  # an emergency contact is no member of the company's WeCom/DingTalk
RETRY_AFTER_S = (600, 3600)  # after the first and the second round of definite failures
BUSY_RETRY_S = 60
PARALLEL = 16  # steps at once: a provider answering in 100 ms, 5,000 steps in well under a minute
PDF_BUDGET_S = 120.0  # the PDF pass of one tick: PDFs are started for this long at most


FACTS = {  # a fact a notice cannot go out without: what it is and what a person does (zh, en, todo zh, todo en)
    "earlier_notices": (
        "此前送达的催告函记录",
        "the notice to return served before it",
        "请先发出催告函并登记其送达（EMS 妥投、签收或公告）",
        "send the notice to return first and record its service (EMS delivery, a signature, or publication)",
    ),
    "handbook": (
        "员工手册条款（条款、原文、通过及公示日期）",
        "the handbook clause (article, text, adoption and publication dates)",
        "请在政策中发布员工手册条款原文及其通过、公示日期",
        "publish the handbook clause's text and its adoption and publication dates in the policy",
    ),
    "contract_clause": (
        "劳动合同条款",
        "the contract clause",
        "请在 cloud.toml 的 [notices] 中填写 contract_clause",
        "set contract_clause in [notices] of cloud.toml",
    ),
    "deadline": ("返岗期限", "the return deadline", "请核对本案的返岗期限", "check the case's return deadline"),
    "absent_days": (
        "缺勤日期",
        "the absent days",
        "请核对本案的缺勤记录（已无计入的缺勤日）",
        "check the case's days: none is counted any more",
    ),
    "employee.contract_no": (
        "劳动合同编号",
        "the contract number",
        "请在人事资料中补充员工的劳动合同编号",
        "add the employee's contract number to the HR records",
    ),
    "employee.contract_term": (
        "劳动合同期限",
        "the contract term",
        "请在人事资料中补充员工的合同起止日期",
        "add the employee's contract dates to the HR records",
    ),
    "union_notified_on": (
        "事先通知工会的日期",
        "the date the union was notified",
        "请先发出工会通知函",
        "send the letter to the union first",
    ),
    "union_opinion": (
        "工会意见",
        "the union's opinion",
        "请登记工会的书面意见",
        "record the union's written opinion",
    ),
    "termination_date": (
        "解除日期",
        "the termination date",
        "请核对工会答复期限",
        "check the union's reply window",
    ),
    "font": (
        "中文字体（服务器未安装）",
        "a Chinese font (none on the server)",
        "请在服务器安装中文字体（如 Noto Sans CJK）或在配置中指定字体文件",
        "install a Chinese font (e.g. Noto Sans CJK) on the server or name a font file in the configuration",
    ),
}
OTHER_FACT = ("", "", "请在 cloud.toml 的 [notices] 中补充后重试", "complete [notices] in cloud.toml and try again")


def missing_fact(path: str) -> MissingFact:
    zh, en, todo_zh, todo_en = FACTS.get(path, OTHER_FACT)
    return MissingFact(path, zh or f"通知书事实 {path}", en or f"the fact {path}", todo_zh, todo_en)


@dataclass(frozen=True)
class Target:
    role: str
    channel: str  # the policy's kind
    address: str


def _of_person(emp: Employee, channel: str) -> str:
    return {
        "sms": emp.phone,
        "voice": emp.phone,
        "email": emp.email,
        "wecom": emp.wecom_id,
        "dingtalk": emp.dingtalk_id,
        "ems": emp.service_address or emp.contract_address,
    }.get(channel, "")


def _of_office(settings: NoticeSettings, who: str, channel: str) -> str:
    field = {"sms": "phone", "voice": "phone", "email": "email", "wecom": "wecom", "dingtalk": "dingtalk"}
    name = field.get(channel, "address" if channel == "ems" else "")
    return str(getattr(settings, f"{who}_{name}", "")) if name else ""


def targets(
    step: PlannedStep, settings: NoticeSettings, dispatcher: Dispatcher, employee: Employee | None = None
) -> tuple[list[Target], list[str], list[Outcome]]:
    """Every (recipient, channel, address) the step reaches; who has no address (said, and as outcomes). A
    channel that is not configured reaches nobody (``unconfigured`` says so). ``employee``: the step's, read
    already."""
    emp = employee if employee is not None else Employee.get_by_id(step.employee_id)
    found: list[Target] = []
    missing: list[str] = []
    nowhere: list[Outcome] = []
    for channel in step.channels:
        if not dispatcher.has(channel):
            continue
        robot = dispatcher.channel_for(channel).name if channel in ROBOTS else ""
        for role in step.recipients:
            if robot:
                if role in ("hr", "manager") and not any(t.channel == channel for t in found):
                    found.append(Target(role, channel, robot))
                continue
            addresses: list[str] = []
            if role == "employee":
                addresses = [_of_person(emp, channel)]
            elif role == "manager":
                addresses = [_of_person(emp.manager, channel) if emp.manager_id else ""]
            elif role in ("hr", "union"):
                addresses = [_of_office(settings, role, channel)]
            elif role == "emergency_contact" and channel in EMERGENCY:
                for contact in EmergencyContact.select().where(EmergencyContact.employee == emp):
                    if channel == "ems":
                        addresses.append(contact.address if contact.may_receive_notices else "")
                    else:
                        addresses.append(contact.phone)
            addresses = [a for a in addresses if a]
            if not addresses:
                missing.append(f"{role}/{channel}: 无地址 / no address on file")
                nowhere.append(Outcome(role, channel, "no_address"))
            found += [Target(role, channel, a) for a in dict.fromkeys(addresses)]
    return found, missing, nowhere


def _reached_by(recipients: tuple[str, ...], channel: str) -> list[str]:
    """The recipients a channel would reach: a group robot posts once to its group; emergency contacts are
    reached by phone or post only."""
    if channel in ROBOTS:
        return [""]
    return [r for r in recipients if r != "emergency_contact" or channel in EMERGENCY]


def _who(role: str, channel: str) -> str:
    return f"{ROLE_NAMES[role][0]}·{names.zh(channel)}" if role else names.zh(channel)


def _who_en(role: str, channel: str) -> str:
    return f"{ROLE_NAMES[role][1]} by {names.en(channel)}" if role else names.en(channel)


def unconfigured(step: PlannedStep, dispatcher: Dispatcher) -> tuple[list[str], list[str]]:
    """The step's channels that are not configured, and for each recipient×channel of them what a person reads:
    "员工·短信：无法发送：未配置短信通道 / employee by SMS: not sent, no SMS channel is configured"."""
    kinds = [c for c in step.channels if not dispatcher.has(c)]
    return kinds, [not_configured(role, c) for c in kinds for role in _reached_by(step.recipients, c)]


def not_configured(role: str, channel: str) -> str:
    """A recipient×channel that cannot be tried: "员工·短信：无法发送：未配置短信通道 / employee by SMS: ..."."""
    return (
        f"{_who(role, channel)}：无法发送：未配置{names.zh(channel)}通道 / "
        f"{_who_en(role, channel)}: not sent, no {names.en(channel)} channel is configured"
    )


def open_task(step: PlannedStep, unconfigured: list[str], now_ms: int) -> None:
    """A person's task for a step that named channels the cloud does not configure (once per step)."""
    notice_zh, notice_en = NOTICE_NAMES.get(step.notice, (step.notice, step.notice))
    said_zh = "、".join(names.zh(c) for c in unconfigured)
    said_en = ", ".join(names.en(c) for c in unconfigured)
    with one_writer(), cases.locked_case(step.case_id) as case:
        CaseTask.insert(
            case=case,
            kind=f"no_channel:{step.key}",
            title_zh=f"{step.key}（{notice_zh}）未能经{said_zh}发出（未配置{said_zh}通道）："
            "请改用其他方式通知并在此记录；并在 cloud.toml 配置该通道或在政策中去掉它",
            title_en=f"{step.key} ({notice_en}) could not go by {said_en} (not configured): reach them another "
            "way and record it here; configure the channel in cloud.toml or drop it from the policy",
            created_ms=now_ms,
        ).on_conflict_ignore().execute()


class OutboundSender:
    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: NoticeSettings,
        clock: Clock,
        *,
        font: str | CjkFont = "",
        max_rounds: int = 3,
        parallel: int = PARALLEL,
        pdf_workers: int | None = None,
    ) -> None:
        self.parallel = parallel  # steps sent at once, each on its own thread; each channel keeps its own limits
        self._dispatcher = dispatcher
        self._settings = settings
        self._clock = clock
        self._font_config = font
        self._font: CjkFont | None = font if isinstance(font, CjkFont) else None
        self._max_rounds = max_rounds
        self.pdf_workers = pdf_workers or os.cpu_count() or 1  # processes drawing the PDF pass's PDFs

    def font(self) -> CjkFont:
        """The Chinese font notices embed (found once); ``ReportFontMissing`` when the server has none."""
        if self._font is None:
            self._font = find_font(str(self._font_config))
        return self._font

    def _notice(self, step: PlannedStep, case: AbsenceCase) -> RenderedNotice | NoticeWords:
        """The step's notice, kept before anything goes out. A formal notice is rendered whole, its PDF with it (it is
        attached, posted, and the documents a person produces next name it); any other notice goes out by its words and
        link, so only its words are rendered and kept now, with what its PDF will draw: the PDF is made after the
        tick's sends (``make_pdfs``) or when its link is opened first, the same bytes either way."""
        try:
            font = self.font()
        except ReportFontMissing as err:
            raise NoticeUnrenderable(step.notice, [missing_fact("font")]) from err
        template = templates.get(notice_facts.TEMPLATE_OF[step.notice])
        links = Links(self._clock, self._settings.link_days)
        facts = notice_facts.build(step, case, self._settings, links, template=template)
        try:
            words = render_words(template, facts)
        except MissingFacts as err:
            raise NoticeUnrenderable(step.notice, [missing_fact(path) for path in err.missing]) from err
        case_ref = notice_facts.case_ref(case.id)
        if step.notice in notice_facts.FORMAL:
            rendered = words.with_pdf(render_pdf(words.source, font))
            together(lambda: records.keep(case_ref, rendered, self._clock))  # committed with other senders' writes
            return rendered
        together(lambda: records.keep_words(case_ref, words, font, self._clock))
        return words

    def make_pdfs(self, *, limit: int | None = None) -> int:
        """The PDFs of the notices that went out by their words alone (``records.make_pdfs``), for at most
        ``PDF_BUDGET_S`` a pass: a tick's sends and its PDFs stay well within the runner's watchdog (300 s), and
        what is left is made by the next tick's pass."""
        return records.make_pdfs(limit=limit, workers=self.pdf_workers, budget_s=PDF_BUDGET_S)

    def message(self, step: PlannedStep, target: Target, notice: RenderedNotice | NoticeWords) -> OutboundMessage:
        formal = step.notice in notice_facts.FORMAL
        full = target.channel in ("email", "ems")
        pdf = notice.pdf if isinstance(notice, RenderedNotice) else None
        attach = (Attachment(notice.file_name, pdf),) if formal and full and pdf is not None else ()
        return OutboundMessage(
            case_ref=notice_facts.case_ref(step.case_id),
            step_id=step.key,
            recipient=target.address,
            channel=target.channel,
            template_id=notice.template_id,
            template_version=notice.template_version,
            subject=f"{notice.title}（{notice.doc_no}）",
            text=notice.text if full else notice.sms_text,
            attachments=attach,
            params=notice.sms_params,
        )

    def send(self, step: PlannedStep) -> Sent:
        now = to_ms(self._clock.now())
        case = _case_of(step)
        policy = policy_of(case)
        if PEOPLE & set(step.recipients):
            later = next_window(now, case.plant.timezone, policy.quiet_start, policy.quiet_end)
            if later is not None:
                raise SendRetry(f"{step.key}: quiet hours for people; due again at the window", later)
        found, missing, nowhere = targets(step, self._settings, self._dispatcher, case.employee)
        kinds, unsent = unconfigured(step, self._dispatcher)
        outcomes = [Outcome(role, c, "not_configured") for c in kinds for role in _reached_by(step.recipients, c)]
        if kinds:  # a policy published before the channel went, or with "skip": a person does it instead
            log.warning("case %s %s: no channel configured for %s", step.case_id, step.key, ", ".join(kinds))
            open_task(step, kinds, now)
            missing = unsent + missing
        outcomes += nowhere
        if not found:
            raise SendFailed("; ".join(missing) or "no recipient", _in_order(step, outcomes))
        notice = self._notice(step, case)
        attempts: list[tuple[Target, Attempt]] = []
        busy = False
        for target in found:
            try:
                attempts.append((target, self._dispatcher.dispatch(self.message(step, target, notice))))
            except DispatchBusy:
                busy = True
        if busy:
            raise SendRetry(f"{step.key}: another dispatcher is sending part of it", now + BUSY_RETRY_S * 1000)
        failed = [a for _, a in attempts if a.status is Status.FAILED]
        if failed:
            rounds = max(ContactAttempt.get_by_id(a.attempt_id).attempt_no for a in failed if a.attempt_id)
            if rounds < self._max_rounds:
                wait = RETRY_AFTER_S[min(rounds, len(RETRY_AFTER_S)) - 1]
                reasons = "; ".join(f"{a.channel}→{a.recipient}: {a.reason}" for a in failed)
                raise SendRetry(f"{step.key} round {rounds} failed in part ({reasons})", now + wait * 1000)
        tried = [_outcome(target, attempt) for target, attempt in attempts]
        outcomes = _in_order(step, [*tried, *outcomes])
        if any(a.ok for _, a in attempts):
            if failed or missing:
                log.warning("case %s %s went out, but not everywhere: %s", step.case_id, step.key, missing)
            short = [_not_reached(o) for o in outcomes if not o.reached and o.result != "not_configured"]
            return Sent(tuple(outcomes), "; ".join(unsent + short))
        why = "; ".join([f"{a.channel}→{a.recipient}: {a.status.value} {a.reason}" for _, a in attempts] + missing)
        if any(a.status is Status.UNCERTAIN for _, a in attempts):
            raise SendUncertain(why, outcomes)
        raise SendFailed(why, outcomes)


def _case_of(step: PlannedStep) -> AbsenceCase:
    """The step's case with its plant and employee (and the employee's manager when the step goes to them), read
    by id as rows: a peewee query joining the three cost milliseconds of building per step, more than the reads."""
    [case] = bulk.instances(AbsenceCase, "id", [step.case_id])
    [plant] = bulk.instances(Plant, "id", [case.plant_id])
    [emp] = bulk.instances(Employee, "id", [case.employee_id])
    case.__rel__.update(plant=plant, employee=emp)
    if "manager" in step.recipients and emp.manager_id is not None:
        emp.__rel__.update(manager=bulk.instances(Employee, "id", [emp.manager_id])[0])
    return case


def _in_order(step: PlannedStep, outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes in the step's order of recipients, then of channels."""

    def rank(o: Outcome) -> tuple[int, int]:
        roles, kinds = step.recipients, step.channels
        return (
            roles.index(o.role) if o.role in roles else len(roles),
            kinds.index(o.channel) if o.channel in kinds else 0,
        )

    return sorted(outcomes, key=rank)


def _outcome(target: Target, attempt: Attempt) -> Outcome:
    """What one message did: its status, or its delivery receipt when one came already (a step sent before)."""
    result = attempt.status.value
    if attempt.ok and attempt.attempt_id is not None:
        row = contact_log.execute("SELECT receipt_status FROM contact_attempt WHERE id = ?", [attempt.attempt_id])
        receipt = (row.fetchone() or (None,))[0]
        if receipt in ("delivered", "read", "failed"):
            result = receipt
    return Outcome(target.role, target.channel, result, attempt.reason if not attempt.ok else "")


def _not_reached(outcome: Outcome) -> str:
    """A recipient×channel not reached, as the step's error says it: "主管·邮件 无联系方式，未发送 / manager by ..."."""
    return f"{outcome.zh()} / {outcome.en()}"
