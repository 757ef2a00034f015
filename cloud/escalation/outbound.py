"""The real ``Sender``: a planned step becomes a rendered notice and one message per channel and recipient,
each through the channels' ``Dispatcher`` under a stable idempotency key.

The key is (``case-<id>``, the step's key, the policy's channel kind — "sms", never "sms.aliyun" —, the
address), so a step tried again, or by a second runner, never reaches anyone twice: what went out is
returned from the contact log, not sent. Outcomes for the engine:

* every message accepted (or a person's task opened): the step is sent;
* some failed definitely, and tries are left: ``SendRetry`` (the failed ones go again later, the others
  are not repeated); after ``max_rounds`` the step is sent if anything went out, else ``SendFailed``;
* nothing went out surely but something may have (no answer): ``SendUncertain``, for a person;
* quiet hours for the employee or an emergency contact: ``SendRetry`` at the window's start.

Recipients: ``employee`` and ``manager`` from HR's master data, ``emergency_contact`` by SMS, call or post
only (they are no members of the company's WeCom/DingTalk), ``hr`` and ``union`` from ``[notices]``; the
group robots post to their group whoever the recipient. A recipient with no address for a channel is
skipped and said so in the error of a step that reached nobody.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cloud.channels.base import Attachment, Attempt, OutboundMessage, Status
from cloud.channels.contact_log import ContactAttempt
from cloud.channels.dispatch import DispatchBusy, Dispatcher, UnknownChannel
from cloud.clock import Clock, to_ms
from cloud.escalation import notice_facts
from cloud.escalation.cases import policy_of
from cloud.escalation.engine import next_window
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import PEOPLE
from cloud.escalation.sender import PlannedStep, SendFailed, SendRetry, SendUncertain
from cloud.hr.models import EmergencyContact, Employee
from cloud.notices import records, templates
from cloud.notices.render import MissingFacts, RenderedNotice, render_notice
from cloud.notices.settings import NoticeSettings
from cloud.report_font import CjkFont, ReportFontMissing, find_font

log = logging.getLogger(__name__)
ROBOTS = ("wecom_robot", "dingtalk_robot")
RETRY_AFTER_S = (600, 3600)  # after the first and the second round of definite failures
BUSY_RETRY_S = 60


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


def targets(step: PlannedStep, settings: NoticeSettings, dispatcher: Dispatcher) -> tuple[list[Target], list[str]]:
    """Every (recipient, channel, address) the step reaches, and what it cannot reach (no address, no channel)."""
    emp = Employee.get_by_id(step.employee_id)
    found: list[Target] = []
    missing: list[str] = []
    for channel in step.channels:
        try:
            robot = dispatcher.channel_for(channel).name if channel in ROBOTS else ""
        except UnknownChannel:
            missing.append(f"{channel}: 未配置该渠道 / no {channel} channel is configured")
            continue
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
            elif role == "emergency_contact" and channel in ("sms", "voice", "ems"):
                for contact in EmergencyContact.select().where(EmergencyContact.employee == emp):
                    if channel == "ems":
                        addresses.append(contact.address if contact.may_receive_notices else "")
                    else:
                        addresses.append(contact.phone)
            addresses = [a for a in addresses if a]
            if not addresses:
                missing.append(f"{role}/{channel}: 无地址 / no address on file")
            found += [Target(role, channel, a) for a in dict.fromkeys(addresses)]
    return found, missing


class OutboundSender:
    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: NoticeSettings,
        clock: Clock,
        *,
        font: str | CjkFont = "",
        max_rounds: int = 3,
    ) -> None:
        self._dispatcher = dispatcher
        self._settings = settings
        self._clock = clock
        self._font_config = font
        self._font: CjkFont | None = font if isinstance(font, CjkFont) else None
        self._max_rounds = max_rounds

    def _notice(self, step: PlannedStep, case: AbsenceCase) -> RenderedNotice:
        if self._font is None:
            try:
                self._font = find_font(str(self._font_config))
            except ReportFontMissing as err:
                raise SendFailed(f"no Chinese font to render notices: {err}") from err
        facts = notice_facts.build(step, case, self._settings)
        try:
            rendered = render_notice(templates.get(notice_facts.TEMPLATE_OF[step.notice]), facts, self._font)
        except MissingFacts as err:
            raise SendFailed(f"通知书缺少必要事实 / the notice cannot be rendered: {err}") from err
        records.keep(notice_facts.case_ref(case.id), rendered, self._clock)
        return rendered

    def message(self, step: PlannedStep, target: Target, notice: RenderedNotice) -> OutboundMessage:
        formal = step.notice in notice_facts.FORMAL
        attach = (Attachment(notice.file_name, notice.pdf),) if formal and target.channel in ("email", "ems") else ()
        full = target.channel in ("email", "ems")
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

    def send(self, step: PlannedStep) -> None:
        now = to_ms(self._clock.now())
        case = AbsenceCase.get_by_id(step.case_id)
        policy = policy_of(case)
        if PEOPLE & set(step.recipients):
            later = next_window(now, case.plant.timezone, policy.quiet_start, policy.quiet_end)
            if later is not None:
                raise SendRetry(f"{step.key}: quiet hours for people; due again at the window", later)
        found, missing = targets(step, self._settings, self._dispatcher)
        if not found:
            raise SendFailed("; ".join(missing) or "no recipient")
        notice = self._notice(step, case)
        attempts: list[Attempt] = []
        busy = False
        for target in found:
            try:
                attempts.append(self._dispatcher.dispatch(self.message(step, target, notice)))
            except DispatchBusy:
                busy = True
        if busy:
            raise SendRetry(f"{step.key}: another dispatcher is sending part of it", now + BUSY_RETRY_S * 1000)
        failed = [a for a in attempts if a.status is Status.FAILED]
        if failed:
            rounds = max(ContactAttempt.get_by_id(a.attempt_id).attempt_no for a in failed if a.attempt_id)
            if rounds < self._max_rounds:
                wait = RETRY_AFTER_S[min(rounds, len(RETRY_AFTER_S)) - 1]
                reasons = "; ".join(f"{a.channel}→{a.recipient}: {a.reason}" for a in failed)
                raise SendRetry(f"{step.key} round {rounds} failed in part ({reasons})", now + wait * 1000)
        if any(a.ok for a in attempts):
            if failed or missing:
                log.warning("case %s %s went out, but not everywhere: %s", step.case_id, step.key, missing)
            return
        why = "; ".join([f"{a.channel}→{a.recipient}: {a.status.value} {a.reason}" for a in attempts] + missing)
        if any(a.status is Status.UNCERTAIN for a in attempts):
            raise SendUncertain(why)
        raise SendFailed(why)
