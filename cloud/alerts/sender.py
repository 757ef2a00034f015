"""Missed check-in alerts sent to the line managers and the plant's HR, once each (#20.1).

Each escalation tick (``cloud.workers.escalate``), before the ladder, reads the plants' new ``alert`` records
(``cloud.alerts.reader``) and sends every alert due:

* to the line manager (``Employee.manager``) of each worker it lists, and to the plant's HR (the ``hr_*`` contacts
  of ``[notices]``), one message each, listing who is still missing, with a link to the plant's board;
* by the first channel of the plant's policy (``alerts.channels``: 企业微信, 钉钉, 短信) that is configured and for
  which the person has an address (``wecom_id``, ``dingtalk_id``, ``phone``); the next one when it fails;
* not in the policy's quiet hours (``alerts.quiet_hours``): held, and sent when they end;
* leaving out a listed worker who has punched since (the cloud holds the punch): nobody left, no message.

Once: the alert is claimed (``status`` new/held → sending, with a ``sending`` row per recipient) in one transaction
before anything is sent, so a second runner, or this one restarted mid-send, sends nothing twice (a message that
may have gone out is never sent again). A plant's answer on the board (已在产线看到 / 已联系 / 请假) is a plant action
(``cloud.escalation.plant_actions``), filed on the worker's case.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import peewee as pw

from cloud.alerts import reader
from cloud.alerts.models import AlertMessage, MissedAlert
from cloud.channels.base import Attempt, Channel, OutboundMessage, Status
from cloud.channels.dispatch import one_writer
from cloud.clock import Clock, to_ms
from cloud.escalation.policy import ALERT_CHANNELS, Handbook, Policy, PolicyError, current
from cloud.hr.models import Employee, PlantBadge
from cloud.notices.settings import NoticeSettings
from cloud.store import Appliance, LogRecord, Plant, Punch, write_transaction

log = logging.getLogger(__name__)
_NO_HANDBOOK = Handbook(version="", article="", adoption_ref="", publication_ref="")
TEMPLATE = "missed_alert"  # an SMS provider's approved template for it: [channels.sms_*.templates] missed_alert
EARLY_MS = 2 * 3_600_000  # a punch this long before the shift's start counts as checking in for it
CAUGHT_UP_MS = 90_000  # the plant's stored log holds a record this recent (it seals every minute): caught up
WAIT_MS = 180_000  # an alert waits at most this long after it was read for the plant's log to catch up
ADDRESS = {"wecom": "wecom_id", "dingtalk": "dingtalk_id", "sms": "phone"}
HR_ADDRESS = {"wecom": "hr_wecom", "dingtalk": "hr_dingtalk", "sms": "hr_phone"}
CHANNEL_ZH = {"wecom": "企业微信", "dingtalk": "钉钉", "sms": "短信"}


@dataclass(frozen=True)
class Person:
    role: str  # manager | hr
    name: str
    addresses: dict[str, str]  # channel kind -> address


def quiet_until(now_ms: int, tz: str, start: time | None, end: time | None) -> int | None:
    """When the quiet hours [start, end) (local, across midnight when start > end) end, if ``now`` is in them."""
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    now = local.time()
    inside = start <= now < end if start < end else (now >= start or now < end)
    if not inside:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return int(datetime.combine(day, end, tzinfo=zone).timestamp() * 1000)


class AlertSender:
    """Reads and sends the alerts; ``run`` is called once per tick. No I/O until ``run``."""

    def __init__(self, channels: Sequence[Channel], notices: NoticeSettings | None, clock: Clock) -> None:
        self._channels = list(channels)
        self._notices = notices
        self._clock = clock

    def run(self) -> list[str]:
        now = to_ms(self._clock.now())
        with one_writer():  # on SQLite the runner's threads take turns to write (cloud.channels.dispatch)
            read = reader.read_new(now)
        notes = [f"{read} missed check-in alert(s) read"] if read else []
        due = (
            MissedAlert.select()
            .where(
                (MissedAlert.status == "new") | ((MissedAlert.status == "held") & (MissedAlert.hold_until_ms <= now))
            )
            .order_by(MissedAlert.id)
        )
        for alert in list(due):
            note = self.handle(alert, now)
            if note:
                notes.append(note)
        return notes

    # -- one alert -----------------------------------------------------------------------------
    def handle(self, alert: MissedAlert, now: int) -> str:
        plant = Plant.get_or_none(Plant.id == alert.plant)
        tz = plant.timezone if plant else "Asia/Shanghai"
        policy = _policy(alert.plant)
        held = quiet_until(now, tz, policy.alert_quiet_start, policy.alert_quiet_end)
        if held is not None:
            if alert.status != "held" or alert.hold_until_ms != held:
                with one_writer():
                    MissedAlert.update(status="held", hold_until_ms=held).where(MissedAlert.id == alert.id).execute()
                return f"alert {alert.id}: held for the quiet hours, until {_local(held, tz):%H:%M}"
            return ""
        if not self.caught_up(alert, now):
            return ""  # after an outage: the punches made since the alert may still be on their way
        missing = self.still_missing(alert, now)
        if not missing:
            claimed = self._finish(
                alert, "nobody", now, note="名单上的员工均已打卡，未发送 / everyone listed has punched"
            )
            return f"alert {alert.id}: everyone listed punched; nothing sent" if claimed else ""
        people = self.recipients(alert, missing)
        routes = [(p, self.route(p, policy)) for p in people]
        routes = [(p, r) for p, r in routes if r]
        if not routes:
            why = "没有可用的通道或联系方式 / no channel or address for the line manager or HR"
            if self._finish(alert, "failed", now, note=why):
                log.error(
                    "missed check-in alert %d (%s %s) reached nobody: set the managers' WeCom/DingTalk ids or "
                    "phones on the employee pages and hr_wecom/hr_dingtalk/hr_phone in [notices], and the "
                    "channels in [channels] and the policy's alerts.channels",
                    alert.id,
                    alert.plant,
                    alert.line,
                )
            return f"alert {alert.id}: no one to send to"
        subject, text = self.compose(alert, missing, plant, policy)
        with one_writer(), write_transaction():  # claim before send: never twice
            claimed = (
                MissedAlert.update(status="sending", missing=json.dumps(missing, ensure_ascii=False))
                .where((MissedAlert.id == alert.id) & MissedAlert.status.in_(("new", "held")))
                .execute()
            )
            if not claimed:
                return ""
            rows = [
                AlertMessage.create(
                    alert=alert.id,
                    role=person.role,
                    person=person.name,
                    recipient=route[0][1],
                    channel=route[0][0].kind,
                    status="sending",
                    at_ms=now,
                    text=text,
                )
                for person, route in routes
            ]
        sent = 0
        for row, (_person, route) in zip(rows, routes, strict=True):
            sent += self._send(alert, row, route, subject, text, len(missing), self.link(alert, policy))
        self._finish(alert, "sent" if sent else "failed", to_ms(self._clock.now()), claimed_as="sending")
        return f"alert {alert.id}: {len(missing)} missing on {alert.line or '—'}, sent to {sent} of {len(rows)}"

    def caught_up(self, alert: MissedAlert, now: int) -> bool:
        """Whether the plant's stored log is recent enough that a punch made after the alert would be here: it holds
        a record of the last ``CAUGHT_UP_MS`` (the appliance seals every minute), or the alert waited ``WAIT_MS``.
        An alert raised while the plant was cut off comes with the backlog; the worker who punched meanwhile is in
        a later batch, and is left out once it is stored."""
        if now - alert.received_ms >= WAIT_MS:
            return True
        newest = (
            LogRecord.select(pw.fn.MAX(LogRecord.t_wall_ms)).where(LogRecord.appliance == alert.appliance_id).scalar()
        )
        return newest is not None and newest >= now - CAUGHT_UP_MS

    def still_missing(self, alert: MissedAlert, now: int) -> list[list[str]]:
        """The workers listed who have not punched since (as far as the cloud has their punches)."""
        who = json.loads(alert.who)
        badges = [b for b, _ in who]
        punched = {
            e
            for (e,) in Punch.select(Punch.employee)
            .join(Appliance, on=(Appliance.id == Punch.appliance))
            .where(
                (Appliance.plant == alert.plant)
                & Punch.employee.in_(badges)
                & (Punch.at_utc_ms >= alert.start_ms - EARLY_MS)
                & (Punch.at_utc_ms <= now)
            )
            .tuples()
        }
        return [[b, n] for b, n in who if b not in punched]

    def recipients(self, alert: MissedAlert, missing: list[list[str]]) -> list[Person]:
        """The line managers of the workers listed (each once), then the plant's HR."""
        people: list[Person] = []
        badges = [b for b, _ in missing]
        seen: set[int] = set()
        rows = (
            PlantBadge.select(PlantBadge, Employee)
            .join(Employee)
            .where((PlantBadge.plant == alert.plant) & PlantBadge.user_id.in_(badges))
        )
        for badge in rows:
            manager = badge.employee.manager
            if manager is None or manager.id in seen or not manager.active:
                continue
            seen.add(manager.id)
            addresses = {kind: str(getattr(manager, field) or "") for kind, field in ADDRESS.items()}
            people.append(Person("manager", manager.name or manager.employee_no, addresses))
        if self._notices is not None:
            addresses = {kind: str(getattr(self._notices, field, "") or "") for kind, field in HR_ADDRESS.items()}
            people.append(Person("hr", "人事", addresses))
        return people

    def route(self, person: Person, policy: Policy) -> list[tuple[Channel, str]]:
        """(channel, address) to reach the person by, in the policy's order."""
        found = []
        for kind in policy.alert_channels:
            address = person.addresses.get(kind, "")
            channel = next((c for c in self._channels if c.kind == kind), None)
            if address and channel is not None:
                found.append((channel, address))
        return found

    def compose(
        self, alert: MissedAlert, missing: list[list[str]], plant: Plant | None, policy: Policy
    ) -> tuple[str, str]:
        """Subject and text: Chinese first, then English; who is missing, since when, and the board's link."""
        tz = plant.timezone if plant else "Asia/Shanghai"
        where = (plant.name or plant.id) if plant else alert.plant
        line = alert.line or "未分产线"
        shift = alert.shift_name or alert.shift
        start, due = _local(alert.start_ms, tz), _local(alert.due_ms, tz)
        names = "\n".join(f"· {name or badge}（工号 {badge}）" for badge, name in missing)
        names_en = "\n".join(f"- {name or badge} (badge {badge})" for badge, name in missing)
        link = self.link(alert, policy)
        n = len(missing)
        subject = f"【未打卡预警】{where} {line} {n} 人未打卡 / {n} not checked in on {line}"
        text = (
            f"{where} {line} {alert.work_date} {shift}（{start:%H:%M} 上班，宽限至 {due:%H:%M}）"
            f"以下 {n} 人至今未打卡：\n"
            f"{names}\n"
            "请到产线确认，并在考勤看板上答复（已在产线看到 / 已联系 / 请假）"
            + (f"：{link}" if link else "。")
            + "\n\n—— English ——\n"
            f"{where} {line}, {alert.work_date} {shift} (starts {start:%H:%M}, grace until {due:%H:%M}): "
            f"{n} not checked in yet:\n{names_en}\n"
            "Please check on the line and answer on the attendance board (seen on the line / contacted / on leave)"
            + (f": {link}" if link else ".")
            + "\n"
        )
        return subject, text

    def link(self, alert: MissedAlert, policy: Policy) -> str:
        """The plant board's address for the alert's day and line (the policy's ``alerts.board_url``), else head
        office's devices page."""
        query = urllib.parse.urlencode({"date": alert.work_date, "line": alert.line})
        if policy.alert_board_url:
            return f"{policy.alert_board_url}/?{query}#alerts"
        base = (self._notices.link_base if self._notices is not None else "").rstrip("/")
        return f"{base}/devices" if base else ""

    def _send(
        self,
        alert: MissedAlert,
        row: AlertMessage,
        route: list[tuple[Channel, str]],
        subject: str,
        text: str,
        n: int,
        link: str,
    ) -> int:
        reasons = []
        for channel, address in route:
            attempt = channel.send(
                OutboundMessage(
                    case_ref=f"alert-{alert.id}",
                    step_id=f"alert-{alert.id}-{row.id}",
                    recipient=address,
                    channel=channel.kind,
                    template_id=TEMPLATE,
                    template_version="1",
                    subject=subject,
                    text=text,
                    params={
                        "line": (alert.line or "未分产线")[:20],
                        "count": str(n),
                        "date": alert.work_date,
                        "link": link,
                    },
                )
            )
            if attempt.ok or attempt.status is Status.UNCERTAIN:  # uncertain: it may have gone; never sent again
                with one_writer():
                    self._sent(row, attempt, address, channel)
                return 1
            reasons.append(f"{CHANNEL_ZH.get(channel.kind, channel.kind)}→{address}: {attempt.reason}")
        why = "; ".join(reasons)
        with one_writer():
            AlertMessage.update(status="failed", reason=why).where(AlertMessage.id == row.id).execute()
        log.warning("missed check-in alert %d to %s (%s) not sent: %s", alert.id, row.person, row.role, why)
        return 0

    def _sent(self, row: AlertMessage, attempt: Attempt, address: str, channel: Channel) -> None:
        AlertMessage.update(
            status="sent" if attempt.ok else "uncertain",
            recipient=address,
            channel=channel.kind,
            sent_ms=to_ms(self._clock.now()),
            reason=attempt.reason,
            provider_message_id=attempt.provider_message_id,
        ).where(AlertMessage.id == row.id).execute()

    def _finish(
        self, alert: MissedAlert, status: str, now: int, *, note: str = "", claimed_as: tuple[str, ...] | str = ""
    ) -> bool:
        states = (claimed_as,) if isinstance(claimed_as, str) and claimed_as else ("new", "held")
        with one_writer():
            return bool(
                MissedAlert.update(status=status, done_ms=now, note=note)
                .where((MissedAlert.id == alert.id) & MissedAlert.status.in_(states))
                .execute()
            )


def _policy(plant_id: str) -> Policy:
    """The plant's policy's alert settings; the defaults (every channel, never quiet) when it has none yet."""
    version = current(plant_id)
    if version is not None:
        try:
            return version.parsed()
        except PolicyError as err:  # a stored version always parsed when published; an older body may not now
            log.error("plant %s: the policy's alert settings could not be read (%s); defaults used", plant_id, err)
    return Policy(ladder=(), handbook=_NO_HANDBOOK, alert_channels=ALERT_CHANNELS)


def _local(ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz))
