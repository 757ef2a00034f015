"""``punchproof cloud escalate``'s loop body: the engine's tick, then delivery reports pulled when due, then
the plant configuration pushed where a termination took effect, then the cloud's evidence log brought up to date
(contacts, receipts and people's actions since the last tick). Two round trips with the plants happen here too,
without a command: HR's changes pushed to the plants' appliances, and the plants' signed actions filed on cases.

Pulling is the fallback for pushed reports that never arrived (Tencent's queue, Aliyun's per-message query,
DingTalk's read lists); a provider that fails to answer is logged and asked again at the next pull, and never
stops the escalation itself.

A termination in effect (a case's ``effective_ms``: the 解除通知书 served, or a 公告 deemed served — set by a tick
or by a person's action on the case page) ends the worker's badge in the plant's configuration
(``config_doc.terminations``). The appliances hear it at once rather than at the next HR import: after each tick the
plants of terminated workers whose appliances' latest configuration still expects them (``push.behind``) are pushed
(``push.push_plant``, which publishes nothing to an appliance that has it already). A push that fails (the broker
down, no witness key) is logged with what to do and tried again ``pull_every_s`` later; it never stops the runner.

HR's changes at head office (leave, trips, 补卡 on the pages, a spreadsheet import: ``cloud.hr.plant_changes``)
reach the plant the same way, debounced: a marked plant is pushed once HR has been quiet for ``[cloud]
config_push_quiet_s`` (30 s), or ``config_push_within_s`` (120 s) after its first change, whichever comes first. A
failed push stays marked with its error, shown on head office's pages as "待推送", and is tried again.

HR hears of what waits for them without opening a page (``cloud.escalation.hr_digest``): after each tick, one
message by HR's channel lists the approvals that started waiting, the tasks two working days from due and on their
due day, the sends that failed or may have gone out, and employees' replies, each item once.

A worker who has not punched at their shift's start plus grace reaches the line manager and HR within two minutes
(``cloud.alerts``): the plant's signed ``alert`` records are read and sent first in each tick and, as deployed (the
system clock), every ``ALERT_EVERY_S`` between ticks on a thread of their own, so that neither the runner's interval
(60 s in its systemd unit) nor a long tick delays them; by the channel the plant's policy names, outside its quiet
hours, once each (claimed before sending: the tick's pass and the thread's never send one twice).

The other way, the plant's signed ``action`` records ("已在产线看到", "考勤机故障", "已让其回家") are read from the
stored logs and filed on the open case that counts that day (``cloud.escalation.plant_actions``), once each.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import peewee as pw

from cloud.alerts.sender import AlertSender
from cloud.channels import dingtalk, sms_aliyun, sms_tencent
from cloud.channels.base import Channel
from cloud.channels.receipts import pull_receipts
from cloud.channels.transport import NoAnswer, TokenFailed, Unreachable
from cloud.clock import Clock, SystemClock, to_ms
from cloud.config import CloudSettings
from cloud.escalation import plant_actions
from cloud.escalation.engine import Engine, TickReport
from cloud.escalation.hr_digest import HrDigest
from cloud.escalation.models import AbsenceCase
from cloud.evidence.log import EvidenceLog
from cloud.hr import contacts, plant_changes
from cloud.hr.models import Employee, PlantBadge
from cloud.plantconfig import push
from cloud.plantconfig.config_doc import terminations
from cloud.plantconfig.config_push import ConfigPushError
from cloud.store import Plant, database

log = logging.getLogger(__name__)
ALERT_EVERY_S = 5.0  # the alert pass between ticks, as deployed
PULL_ERRORS = (
    sms_aliyun.QueryFailed,
    sms_tencent.QueryFailed,
    dingtalk.QueryFailed,
    TokenFailed,
    NoAnswer,
    Unreachable,
)


class EscalationService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        channels: Sequence[Channel] = (),
        pull_every_s: int = 300,
        evidence: EvidenceLog | None = None,
        settings: CloudSettings | None = None,
        digest: HrDigest | None = None,
        alert_every_s: float | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._channels = list(channels)
        self._every = timedelta(seconds=pull_every_s)
        self._evidence = evidence
        self._pulled: datetime | None = None
        self.failing: set[str] = set()  # channels whose last pull failed (logged once per episode)
        self._settings = settings  # None: no configuration pushed from here (tests of the ladder alone)
        self._carried: set[tuple[int, int]] = set()  # (case, effective_ms) its plants' appliances have
        self._push_after: dict[str, datetime] = {}  # plants whose push failed: not before then
        if digest is None and settings is not None and self._channels:  # as deployed: HR hears by their channel
            digest = HrDigest(self._channels, settings.notices, clock)
        self._digest = digest
        # missed check-in alerts: as deployed (channels configured), to the line managers and HR
        self._alerts = AlertSender(self._channels, settings.notices if settings else None, clock) if channels else None
        if alert_every_s is None:  # on the system clock: a thread of its own too (tests tick a frozen clock themselves)
            alert_every_s = ALERT_EVERY_S if isinstance(clock, SystemClock) and self._alerts is not None else 0.0
        self._alert_every = alert_every_s
        self._alert_lock = threading.Lock()  # the tick's pass and the thread's take turns
        self._alert_thread: threading.Thread | None = None

    def tick(self) -> TickReport:
        self._start_alert_thread()
        alerted = self.alert()  # first: a missed check-in is news for minutes, the ladder's steps for days
        report = self._engine.tick()
        report.notes += alerted
        now = self._clock.now()
        if self._channels and (self._pulled is None or now - self._pulled >= self._every):
            self._pulled = now
            report.notes += self.pull()
        report.notes += self.push_terminations()
        report.notes += self.push_changed()
        report.notes += plant_actions.file_new(self._clock)
        if self._digest is not None:
            report.notes += self._digest.run()
        zone = self._settings.timezone if self._settings is not None else "Asia/Shanghai"
        report.notes += contacts.runner_pass(self._channels, self._clock, zone=zone)  # emergency contacts asked
        if self._evidence is not None:
            self._evidence.catch_up()
        return report

    def alert(self) -> list[str]:
        """Send the plants' new missed check-in alerts; notes for the tick. A failure is logged, never raised: the
        ladder's tick goes on (the alerts are read again at the next tick)."""
        if self._alerts is None:
            return []
        with self._alert_lock:
            try:
                return self._alerts.run()
            except Exception as err:  # the top of the runner's alert pass: the escalation must not stop for it
                log.exception("missed check-in alerts: the pass failed; tried again in a moment")
                return [f"alerts: {err}"]

    def _start_alert_thread(self) -> None:
        if self._alert_every <= 0 or self._alert_thread is not None:
            return
        self._alert_thread = threading.Thread(target=self._alert_loop, name="alerts", daemon=True)
        self._alert_thread.start()

    def _alert_loop(self) -> None:
        """Between ticks: the alert pass every ``alert_every_s``, on this thread's own database connection."""
        idle = threading.Event()
        while not idle.wait(self._alert_every):
            try:
                with database.obj.connection_context():
                    notes = self.alert()
            except pw.DatabaseError as err:  # the database went away: the tick logs it too; tried again shortly
                log.warning("missed check-in alerts: no database connection (%s); tried again shortly", err)
                continue
            for note in notes:
                log.info("%s", note)

    def pull(self) -> list[str]:
        notes = []
        for channel in self._channels:
            try:
                stored = pull_receipts([channel], self._clock)
            except PULL_ERRORS as err:
                if channel.name not in self.failing:
                    log.warning("delivery reports from %s could not be pulled: %s", channel.name, err)
                self.failing.add(channel.name)
                notes.append(f"{channel.name}: {err}")
                continue
            if channel.name in self.failing:
                log.info("delivery reports from %s are pulled again", channel.name)
                self.failing.discard(channel.name)
            if stored:
                notes.append(f"{channel.name}: {len(stored)} delivery reports")
        return notes

    def push_terminations(self) -> list[str]:
        """Push the configuration of each plant whose appliances still expect a worker whose termination took
        effect; notes for the tick's report. Failures are logged and tried again later, never raised."""
        if self._settings is None:
            return []
        cases = [
            (case_id, effective_ms, employee_id)
            for case_id, effective_ms, employee_id in AbsenceCase.select(
                AbsenceCase.id, AbsenceCase.effective_ms, AbsenceCase.employee
            )
            .where(AbsenceCase.effective_ms.is_null(False))
            .tuples()
            if (case_id, effective_ms) not in self._carried
        ]
        if not cases:
            return []
        now = self._clock.now()
        badges = list(
            PlantBadge.select(PlantBadge, Employee)
            .join(Employee)
            .where(PlantBadge.employee.in_(sorted({e for _, _, e in cases})))
        )
        plants = {p.id: p for p in Plant.select().where(Plant.id.in_(sorted({b.plant_id for b in badges})))}
        failed: set[int] = set()  # employees whose badge some plant's appliances still lack
        notes = []
        for plant_id, plant in sorted(plants.items()):
            here = [b for b in badges if b.plant_id == plant_id]
            ended = terminations([b.employee for b in here], plant.timezone)
            ends = {  # the badge's end as the configuration carries it: the earlier of HR's and the termination's
                b.user_id: min(d for d in (b.valid_to, ended[b.employee_id]) if d)
                for b in here
                if b.employee_id in ended
            }
            if not ends:
                continue
            if now < self._push_after.get(plant_id, now):  # failed a moment ago: tried again later
                failed.update(b.employee_id for b in here)
                continue
            if not push.behind(plant, ends):
                self._push_after.pop(plant_id, None)
                continue
            note = self._push(plant, sorted(ends), self._settings)
            if note:
                notes.append(note)
                failed.update(b.employee_id for b in here)
        self._carried.update((c, at) for c, at, employee in cases if employee not in failed)
        return notes

    def push_changed(self) -> list[str]:
        """Push each plant HR changed (``plant_changes``) once HR has been quiet for ``config_push_quiet_s``, or
        ``config_push_within_s`` after the first change; notes for the tick's report. A failed push stays marked
        with its error (head office's pages show it) and is tried again, sooner at first; never raised."""
        if self._settings is None:
            return []
        settings = self._settings
        now = to_ms(self._clock.now())
        notes = []
        rows = plant_changes.due(
            now, quiet_ms=settings.config_push_quiet_s * 1000, within_ms=settings.config_push_within_s * 1000
        )
        moment = self._clock.now()
        for row in rows:
            if moment < self._push_after.get(row.plant_id, moment):
                continue  # a termination's push to it failed this moment (logged): both go out when it is retried
            try:
                results = push.push_plant(row.plant_id, by="hr-change", settings=settings, clock=self._clock)
                errors = [f"{r.appliance}: {r.error}" for r in results if r.error]
            except ConfigPushError as err:
                results, errors = [], [str(err)]
            if not errors:
                plant_changes.pushed(row)
                if row.attempts:
                    log.info("plant %s: HR's changes are pushed now, after %d failed tries", row.plant_id, row.attempts)
                pushed = [f"{r.appliance} v{r.pushed.version}" for r in results if r.pushed]
                if pushed:
                    notes.append(f"plant {row.plant_id}: HR's changes pushed ({', '.join(pushed)})")
                continue
            error = "; ".join(errors)
            wait_s = plant_changes.failed(row, error, now) // 1000
            if not row.attempts:  # once per episode; the page shows every later one
                log.error(
                    "plant %s: HR's changes were not pushed to its appliances (%s). Check that the MQTT broker is "
                    "running and the witness key exists ('punchproof cloud init'); tried again in %d s, or push now "
                    "with 'punchproof cloud push-plant-config --plant %s'",
                    row.plant_id,
                    error,
                    wait_s,
                    row.plant_id,
                )
            notes.append(f"plant {row.plant_id}: HR's changes not pushed ({error}); again in {wait_s} s")
        return notes

    def _push(self, plant: Plant, users: list[str], settings: CloudSettings) -> str:
        """Push one plant's configuration; "" when every appliance has it, else what failed (logged)."""
        try:
            results = push.push_plant(plant.id, by="escalation", settings=settings, clock=self._clock)
            errors = [f"{r.appliance}: {r.error}" for r in results if r.error]
        except ConfigPushError as err:
            errors = [str(err)]
        if not errors:
            if plant.id in self._push_after:
                log.info("plant %s: the configuration is pushed again", plant.id)
            self._push_after.pop(plant.id, None)
            pushed = [f"{r.appliance} v{r.pushed.version}" for r in results if r.pushed]
            if pushed:
                log.info("plant %s: badge(s) %s end at the termination: %s", plant.id, ", ".join(users), pushed)
            return ""
        retry_s = int(self._every.total_seconds())
        if plant.id not in self._push_after:  # once per episode
            log.error(
                "plant %s: the configuration ending badge(s) %s at their termination was not pushed (%s); its "
                "appliances still expect them. Check that the MQTT broker is running and the witness key exists "
                "('punchproof cloud init'); tried again in %d s, or push now with 'punchproof cloud "
                "push-plant-config --plant %s'",
                plant.id,
                ", ".join(users),
                "; ".join(errors),
                retry_s,
                plant.id,
            )
        self._push_after[plant.id] = self._clock.now() + self._every
        return f"plant {plant.id}: configuration not pushed ({'; '.join(errors)}); again in {retry_s} s"
