"""Emergency contacts, verified before they are needed: several per employee, each asked by SMS to reply "确认".

A contact counts once the person at that number replied "确认" (also 确定, 是, Y; spaces, full-width letters and
a closing mark of punctuation do not matter) to our verification SMS. Any other reply fails it, with the reply kept;
no reply leaves it 已发送核验短信 for as long as it takes, and HR sees that on the employee page, on the case page
and in its reconfirmation list (``records.contacts_to_reconfirm``). Every six months (``records.FRESHNESS``) a
verified contact is asked again.

The SMS goes through the channels' dispatcher (``cloud.channels.dispatch``) as a message of its own case reference,
``contact-<id>``, so it lands in the contact log and the signed evidence log like any other; its step is
``verify-<when the number was set>`` or ``reconfirm-<when it was last confirmed>``, so a tick run twice, or two
runners, send it once. ``tick`` sends what is due (a new or changed number, a stale confirmation) within the
plant's waking hours and applies the replies the providers pushed (``cloud.channels.inbound``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cloud.channels import contact_log, inbound
from cloud.channels.base import Attempt, Channel, OutboundMessage, Status
from cloud.channels.contact_log import DeliveryReceipt
from cloud.channels.dispatch import DispatchBusy, Dispatcher, UnknownChannel
from cloud.clock import Clock, to_ms
from cloud.hr.models import EmergencyContact, Employee
from cloud.hr.records import FRESHNESS, HrError, set_verification

log = logging.getLogger(__name__)
MOBILE = re.compile(r"(\+?86)?1[3-9]\d{9}")
LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")
YES = frozenset({"确认", "确定", "是", "Y", "YES"})
TEMPLATE = "contact_verify"  # the approved SMS template's id in [channels.sms_*.templates]
WAKING = (9, 20)  # local hours in which a verification SMS may go to a family member
RETRY_MS = 3600 * 1000  # a send the provider refused is tried again after an hour
PER_TICK = 200
STATES = ("unverified", "pending", "verified", "failed", "stale")  # as shown; stale = verified over six months ago
STATE_ZH = {
    "unverified": "未核验",
    "pending": "已发送核验短信",
    "verified": "已确认",
    "failed": "核验失败",
    "stale": "需重新确认",
}


def is_confirmation(text: str) -> bool:
    """ "确认" and its equivalents, however typed: full-width Ｙ, spaces, a closing 。 or ！."""
    word = unicodedata.normalize("NFKC", text).strip().rstrip("。.!！~～").strip().upper()
    return word in YES


def check_phone(phone: str) -> str:
    """The number without spaces, or ``HrError`` when it is neither a mobile nor a landline number."""
    text = unicodedata.normalize("NFKC", phone).replace(" ", "")
    if not (MOBILE.fullmatch(text) or LANDLINE.fullmatch(text)):
        raise HrError(f"{phone!r} 不是有效的电话号码 / {phone!r} is not a phone number")
    return text


def e164(phone: str) -> str:
    digits = phone.replace("-", "")
    return digits if digits.startswith("+") else f"+86{digits.removeprefix('86') if len(digits) == 13 else digits}"


def listed(employee: Employee | int) -> list[EmergencyContact]:
    """The employee's contacts in HR's order (removed ones are kept as rows, not listed)."""
    return list(
        EmergencyContact.select()
        .where((EmergencyContact.employee == employee) & EmergencyContact.removed_ms.is_null())
        .order_by(EmergencyContact.position, EmergencyContact.id)
    )


def add(
    employee: Employee, *, name: str, phone: str, now_ms: int, relation: str = "", position: int | None = None
) -> EmergencyContact:
    name, relation = name.strip()[:64], relation.strip()[:32]
    if not name:
        raise HrError("请填写紧急联系人姓名 / the contact's name is required")
    number = check_phone(phone)
    if any(c.phone == number for c in listed(employee)):
        raise HrError(f"{number} 已是该员工的紧急联系人 / {number} is one of this employee's contacts already")
    if position is None:
        position = max((c.position for c in listed(employee)), default=0) + 1
    return EmergencyContact.create(
        employee=employee,
        name=name,
        relation=relation,
        phone=number,
        position=position,
        phone_since_ms=now_ms,
        updated_ms=now_ms,
    )


def edit(contact: EmergencyContact, *, name: str, relation: str, phone: str, position: int | None, now_ms: int) -> bool:
    """Change a contact; a new number is unverified again (and asked). Whether the number changed."""
    name = name.strip()[:64]
    if not name:
        raise HrError("请填写紧急联系人姓名 / the contact's name is required")
    number = check_phone(phone)
    changed = number != contact.phone
    if changed and any(c.phone == number and c.id != contact.id for c in listed(contact.employee_id)):
        raise HrError(f"{number} 已是该员工的紧急联系人 / {number} is one of this employee's contacts already")
    contact.name, contact.relation = name, relation.strip()[:32]
    if position is not None:
        contact.position = position
    if changed:
        contact.phone, contact.phone_since_ms = number, now_ms
        contact.verification, contact.verified_ms, contact.verification_ref = "unverified", None, ""
        contact.requested_ms, contact.reply_text, contact.reply_ms = None, "", None
    contact.updated_ms = now_ms
    contact.save()
    return changed


def ask_again(contact: EmergencyContact, *, now_ms: int) -> None:
    """HR asks for a new verification now (after a failed one, or a number HR rang and corrected by phone)."""
    contact.verification, contact.phone_since_ms, contact.requested_ms = "unverified", now_ms, None
    contact.updated_ms = now_ms
    contact.save()


def remove(contact: EmergencyContact, *, now_ms: int) -> None:
    contact.removed_ms = contact.updated_ms = now_ms
    contact.save()


@dataclass(frozen=True)
class Shown:
    """A contact's state as HR reads it: the key of ``STATE_ZH``, since when, and the reply if one failed it."""

    state: str
    at_ms: int | None
    reply: str = ""

    @property
    def zh(self) -> str:
        return STATE_ZH[self.state]

    @property
    def counts(self) -> bool:
        """Whether the number may be relied on (confirmed within six months)."""
        return self.state == "verified"


def shown(contact: EmergencyContact, now_ms: int) -> Shown:
    state = contact.verification
    if state == "verified":
        stale = contact.verified_ms is None or contact.verified_ms < now_ms - int(FRESHNESS.total_seconds() * 1000)
        return Shown("stale" if stale else "verified", contact.verified_ms)
    if state == "pending":
        return Shown("pending", contact.requested_ms)
    if state == "failed":
        return Shown("failed", contact.reply_ms or contact.updated_ms, contact.reply_text)
    return Shown("unverified", None)


def text(employee_name: str, company: str) -> str:
    return (
        f"【{company}】{employee_name}将您登记为紧急联系人，请回复“确认”。回复其他内容或不回复视为未确认。"
        if company
        else f"{employee_name}将您登记为紧急联系人，请回复“确认”。回复其他内容或不回复视为未确认。"
    )


def _step(contact: EmergencyContact, now_ms: int) -> str | None:
    """The verification step due for this contact now, or None."""
    if not MOBILE.fullmatch(contact.phone):  # a landline gets no SMS: HR rings it and records the call
        return None
    if contact.verification == "unverified" and (
        contact.requested_ms is None or contact.requested_ms < contact.phone_since_ms
    ):
        return f"verify-{contact.phone_since_ms}"
    if shown(contact, now_ms).state == "stale":
        return f"reconfirm-{contact.verified_ms or 0}"
    return None


def message(contact: EmergencyContact, step: str, company: str) -> OutboundMessage:
    name = contact.employee.name or contact.employee.employee_no
    return OutboundMessage(
        case_ref=f"{inbound.EXPECTS_REPLY}{contact.id}",
        step_id=step,
        recipient=e164(contact.phone),
        channel="sms",
        template_id=TEMPLATE,
        template_version="1",
        subject="紧急联系人核验",
        text=text(name, company),
        params={"name": name},
    )


def _company(dispatcher: Dispatcher) -> str:
    try:
        settings = getattr(dispatcher.channel_for("sms"), "settings", None)
    except UnknownChannel:
        return ""
    return str(getattr(settings, "sign_name", "") or "")


def request(contact: EmergencyContact, dispatcher: Dispatcher, *, now_ms: int) -> Attempt | None:
    """Send the verification SMS due for ``contact`` (None when none is due, or another sender has it now)."""
    step = _step(contact, now_ms)
    if step is None or not dispatcher.has("sms"):
        return None
    outbound = message(contact, step, _company(dispatcher))
    key = contact_log.idempotency_key(outbound.case_ref, outbound.step_id, outbound.channel, outbound.recipient)
    last = contact_log.last_attempt(key)
    if last is not None and last.status == Status.FAILED.value and last.at_ms > now_ms - RETRY_MS:
        return None
    try:
        attempt = dispatcher.dispatch(outbound)
    except DispatchBusy:
        return None
    fresh = EmergencyContact.get_by_id(contact.id)
    if attempt.ok and fresh.phone == contact.phone and fresh.removed_ms is None:
        fresh.verification, fresh.requested_ms, fresh.updated_ms = "pending", to_ms(attempt.at), now_ms
        fresh.save()
    elif not attempt.ok:  # to the back of the queue (due() goes by updated_ms): a refused number starves no other
        EmergencyContact.update(updated_ms=now_ms).where(EmergencyContact.id == contact.id).execute()
    return attempt


_told_no_template: list[bool] = []  # said once per process


def waking(now_ms: int, zone: str, hours: tuple[int, int] = WAKING) -> bool:
    hour = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(zone)).hour
    return hours[0] <= hour < hours[1]


def due(now_ms: int, limit: int = PER_TICK) -> list[EmergencyContact]:
    """Contacts of active employees whose verification SMS is due: a new number, or a confirmation six months old."""
    stale_before = now_ms - int(FRESHNESS.total_seconds() * 1000)
    query = (
        EmergencyContact.select(EmergencyContact, Employee)
        .join(Employee)
        .where(
            (Employee.active == True)  # noqa: E712
            & EmergencyContact.removed_ms.is_null()
            & (EmergencyContact.phone != "")
            & (
                (
                    (EmergencyContact.verification == "unverified")
                    & (
                        EmergencyContact.requested_ms.is_null()
                        | (EmergencyContact.requested_ms < EmergencyContact.phone_since_ms)
                    )
                )
                | (
                    (EmergencyContact.verification == "verified")
                    & (EmergencyContact.verified_ms.is_null() | (EmergencyContact.verified_ms < stale_before))
                )
            )
        )
        .order_by(EmergencyContact.updated_ms, EmergencyContact.id)
        .limit(limit)
    )
    return list(query)


def has_template(dispatcher: Dispatcher) -> bool:
    """Whether the SMS channel has an approved template for the verification SMS ([channels.sms_*.templates]
    contact_verify): without one every send would be refused, so none is tried and the contacts stay 未核验."""
    try:
        settings = getattr(dispatcher.channel_for("sms"), "settings", None)
    except UnknownChannel:
        return False
    known = getattr(settings, "template_codes", None) or getattr(settings, "templates", None) or {}
    return TEMPLATE in known


def tick(dispatcher: Dispatcher, clock: Clock, *, zone: str, hours: tuple[int, int] = WAKING) -> list[Attempt]:
    """The escalation runner's share: apply the replies stored since, then send what is due (in waking hours)."""
    apply_replies()
    now = to_ms(clock.now())
    if not dispatcher.has("sms") or not waking(now, zone, hours):
        return []
    if not has_template(dispatcher):
        if not _told_no_template:
            _told_no_template.append(True)
            log.warning(
                "emergency contacts are not asked: the SMS channel has no %s template ([channels.sms_*.templates], "
                "docs/contacts.md); they stay unverified",
                TEMPLATE,
            )
        return []
    sent = []
    for contact in due(now):
        attempt = request(contact, dispatcher, now_ms=now)
        if attempt is not None:
            sent.append(attempt)
    return sent


def runner_pass(channels: Sequence[Channel], clock: Clock, *, zone: str) -> list[str]:
    """The escalation runner's call after each tick: ``tick`` over its channels; notes for the tick's report. A
    failure is logged and the pass tried again at the next tick, never raised (the runner must go on)."""
    if not channels:
        return []
    try:
        sent = tick(Dispatcher(channels, clock=clock), clock, zone=zone)
    except Exception as err:  # the top of a runner's pass, as its other passes: the escalation must not stop for it
        log.exception("emergency contact verification: the pass failed; tried again at the next tick")
        return [f"contacts: {err}"]
    failed = sum(1 for a in sent if not a.ok)
    return [f"contacts: {len(sent) - failed} verification SMS sent, {failed} failed"] if sent else []


def apply_replies(replies: Iterable[DeliveryReceipt] | None = None) -> int:
    """Each stored reply not applied yet sets its contact's state: 确认 verified, anything else failed (the text
    kept). A reply to an earlier number, or to a contact since removed, changes nothing. How many were applied."""
    rows = list(replies) if replies is not None else inbound.replies_since(_applied_up_to())
    applied = 0
    for reply in rows:
        attempt = reply.attempt
        if attempt is None or not attempt.case_ref.startswith(inbound.EXPECTS_REPLY):
            continue
        contact = EmergencyContact.get_or_none(
            EmergencyContact.id == int(attempt.case_ref[len(inbound.EXPECTS_REPLY) :])
        )
        if contact is None or contact.removed_ms is not None or (contact.reply_receipt or 0) >= reply.id:
            continue
        if e164(contact.phone) != attempt.recipient:
            continue  # the number changed since this SMS was sent: the reply is evidence, not the new number's
        said = reply.detail
        contact.reply_text, contact.reply_ms, contact.reply_receipt = said[:255], reply.received_ms, reply.id
        contact.save()
        ref = f"短信回复 / SMS reply #{reply.id}: {said[:64]}"
        set_verification(contact, "verified" if is_confirmation(said) else "failed", now_ms=reply.received_ms, ref=ref)
        applied += 1
    return applied


def _applied_up_to() -> int:
    """Replies after the oldest one any contact still waits for could be new: read from the last applied anywhere,
    less a margin for replies stored out of order by two web workers."""
    newest = EmergencyContact.select(EmergencyContact.reply_receipt).order_by(EmergencyContact.reply_receipt.desc())
    row = newest.where(EmergencyContact.reply_receipt.is_null(False)).first()
    return max(0, (row.reply_receipt if row else 0) - 1000)


inbound.listen(apply_replies)
