"""A plant as the cloud sees it: the appliance's real rules engine decides each day, its facts and
punches are signed into a real log and stored by the cloud's real ingest. Only the MQTT hop is left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from appliance import rules
from cloud.appliances import registry
from cloud.escalation import actions, workdays
from cloud.escalation.engine import Engine
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import DEFAULT_BODY, publish
from cloud.escalation.sender import RecordingSender
from cloud.hr.models import Employee, PlantBadge
from cloud.hr.records import record_leave
from cloud.ingest.verifier import BatchIngest
from cloud.store import Plant
from ledger import GENESIS_PREV, SigningKey, make_record, topics
from ledger.messages import Batch
from ledger.ownertags import TagKeys, appliance_owner, new_key
from ledger.record import b64

TZ = ZoneInfo("Asia/Shanghai")
SHIFTS = {
    "D": rules.make_shift("D", "08:00-17:00"),
    "N": rules.make_shift("N", "18:00-07:00"),
    "A": rules.make_shift("A", "14:00-22:00"),
}
WEEKDAYS = rules.WeeklyRoster("W", (("D",),) * 5 + ((), ()))


def local(day: date, hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(h), int(m), tzinfo=TZ).astimezone(UTC)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def policy_body(**changes: object) -> dict:
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_BODY.items()}
    body["handbook"] = {
        "version": "2025版",
        "article": "第六章第十二条",
        "adoption_ref": "职代会决议-2025-01",
        "publication_ref": "公示签收-2025-01",
        "published_on": "2025-01-15",
    }
    body["gates"] = {"approve_cuigao": False, "termination_approvers": 1}
    for path, value in changes.items():
        section, _, name = path.partition("__")
        if name:
            body[section] = {**body[section], name: value}
        else:
            body[section] = value
    return body


@dataclass
class PlantFeed:
    clock: object
    plant_id: str = "p1"
    name: str = "pi-01"
    key: SigningKey = field(default_factory=SigningKey.generate)
    seq: int = 0
    prev: bytes = GENESIS_PREV
    rosters: dict[str, rules.EmployeeRoster] = field(default_factory=dict)
    punches: list[rules.Punch] = field(default_factory=list)
    leaves: list[rules.Leave] = field(default_factory=list)
    facts: dict[str, dict] = field(default_factory=dict)  # the appliance's latest fact per key
    watermark: datetime | None = None  # None: the terminal has been read up to "now"
    tag_keys: TagKeys = field(default_factory=lambda: TagKeys(appliance_owner))  # owner tags, as LogWriter's

    def owner_tag(self, body: dict[str, object]) -> dict[str, object]:
        """The owner tag (and, in a worker's first record, the worker's tag key) the appliance gives a record."""
        owner, extra = appliance_owner(body), {}
        if owner is not None and owner not in self.tag_keys:
            self.tag_keys.add(owner, new_key())
            extra["tagkey"] = b64(self.tag_keys.key(owner))
        return {**extra, "tag": self.tag_keys.tag(self.log, self.seq, owner)}

    @property
    def log(self) -> str:
        return f"punchproof/{self.plant_id}/{self.name}/1"

    def start(self, **policy_changes: object) -> PlantFeed:
        registry.register(
            {
                "plant": self.plant_id,
                "appliance": self.name,
                "log": self.log,
                "public_key": self.key.verify_key.pem(),
                "kid": self.key.kid,
            },
            self.clock,
        )
        self.ingest = BatchIngest(self.clock)
        self.plant = rules.Plant(TZ, rules.package_calendar(), SHIFTS, ("ZK1",))
        publish("*", policy_body(**policy_changes), by="hr-admin", now_ms=ms(self.clock.now()))
        return self

    def hire(
        self, user_id: str, *, roster: rules.WeeklyRoster | None = WEEKDAYS, explicit=None, since=None
    ) -> Employee:
        emp = Employee.create(employee_no=f"E{user_id}", name=f"员工{user_id}", phone="13800138000")
        PlantBadge.create(plant=Plant.get_by_id(self.plant_id), user_id=user_id, employee=emp, roster="W")
        self.rosters[user_id] = rules.EmployeeRoster(user_id, roster, explicit=explicit or {}, valid_from=since)
        return emp

    def leave(
        self, user_id: str, ref: str, start: datetime, end: datetime, kind: str = "病假", *, appliance=True
    ) -> None:
        emp = PlantBadge.get(PlantBadge.user_id == user_id).employee
        record_leave(emp, ref, kind, ms(start), ms(end), now_ms=ms(self.clock.now()), approved_by="hr")
        if appliance:
            self.leaves.append(rules.Leave(ref, user_id, start, end, kind))

    def punch(self, user_id: str, at: datetime) -> None:
        p = rules.Punch(user_id, "ZK1", at, ref=f"seq{self.seq}")
        self.punches.append(p)
        term = {
            "sn": "ZK1",
            "t": at.astimezone(TZ).replace(tzinfo=None).isoformat(),
            "tz": "Asia/Shanghai",
            "state": 255,
            "verify": 1,
            "name": "1号机",
        }
        self._append("punch", emp=user_id, src="zk", term=term)

    def evaluate(self, day: date) -> list[dict]:
        """What the appliance's evaluator appends for ``day`` now: confirmed, new or changed facts."""
        now = self.clock.now()
        marks = {"ZK1": self.watermark or now}
        out = []
        for user_id, roster in self.rosters.items():
            for ev in rules.evaluate_day(
                self.plant, roster, day, punches=self.punches, leaves=self.leaves, now=now, watermarks=marks
            ):
                if ev.confirmation is not rules.Confirmation.CONFIRMED or ev.status is rules.Status.NOT_SCHEDULED:
                    continue
                fact = rules.supersede(self.facts.get(f"{user_id}/{day}/{ev.shift_id}"), ev, self.plant)
                if fact is not None:
                    self.facts[str(fact["key"])] = fact
                    self._append("dayfact", fact=fact)
                    out.append(fact)
        return out

    def _append(self, type_: str, **body: object) -> None:
        body = {**body, **self.owner_tag(body)}
        record = make_record(
            key=self.key, log=self.log, seq=self.seq, type=type_, prev=self.prev, t_wall_ms=ms(self.clock.now()), **body
        )
        ack = self.ingest.handle(
            topics.batch(self.plant_id, self.name), Batch(self.log, self.seq, (record,)).encode()
        ).ack
        assert ack.status == "ok", ack
        self.seq, self.prev = self.seq + 1, record.leaf


MORNING = "09:00"  # a tick inside the sending window: what quiet hours held overnight goes out


def day_passes(feed: PlantFeed, engine: Engine, day: date, *, until: str = "23:30") -> list[dict]:
    """The runner's day: a tick at 09:00 (what waited overnight for the sending window goes out, as a runner
    ticking all day sends it), then the clock at ``until`` (plant time), the appliance evaluates, a tick."""
    morning = local(day, MORNING)
    if feed.clock.now() < morning < local(day, until):
        feed.clock.advance_to(morning)
        engine.tick()
    target = local(day, until)
    if target > feed.clock.now():
        feed.clock.advance_to(target)
    facts = feed.evaluate(day - timedelta(days=1)) + feed.evaluate(day)  # a night shift confirms the next day
    engine.tick()
    return facts


def run_days(feed: PlantFeed, engine: Engine, first: date, last: date) -> None:
    day = first
    while day <= last:
        day_passes(feed, engine, day)
        day += timedelta(days=1)


def new_engine(clock: object, sender: RecordingSender | None = None, runner_id: str = "r1") -> Engine:
    return Engine(clock, sender or RecordingSender(), runner_id=runner_id)


def serve_cuigao(
    clock: object, case_id: int, signed: datetime, *, by: str = "hr-wang", proof: str = "EMS 妥投 EA100200300CN"
) -> None:
    """HR records the 催告函's EMS 妥投, signed for at ``signed``, as the tracking shows it: an hour later at
    the earliest (the clock is moved there when it is earlier), never before it was signed for."""
    if clock.now() < signed + timedelta(hours=1):
        clock.advance_to(signed + timedelta(hours=1))
    actions.record_service(
        case_id, "cuigao", by=by, now_ms=ms(clock.now()), served_ms=ms(signed), method="EMS", proof=proof
    )


def deadline_of(case_id: int) -> datetime:
    """The return deadline stored on the case (the one its 催告函 states), in plant time."""
    deadline_ms = AbsenceCase.get_by_id(case_id).deadline_ms
    assert deadline_ms is not None, "no 催告函 has gone out: no deadline yet"
    return datetime.fromtimestamp(deadline_ms / 1000, UTC).astimezone(TZ)


class Ticks(Protocol):
    def tick(self) -> object: ...


def pass_deadline(clock: object, engine: Ticks, case_id: int, *, hhmm: str = "08:30") -> datetime:
    """Let the clock run past the case's stored return deadline to ``hhmm`` on the next working day (formal
    notices go out on working days, inside the quiet hours' window) and tick; returns that deadline."""
    deadline = deadline_of(case_id)
    target = local(workdays.first_workday(deadline.date() + timedelta(days=1)), hhmm)
    if target > clock.now():
        clock.advance_to(target)
    engine.tick()
    return deadline


SEED_START = date(2025, 3, 3)  # the seed's case: a Monday; ten days of 病假 end Thursday 03-13 at midnight


def with_colleague(feed: PlantFeed, engine: Engine, first: date, last: date) -> None:
    """The plant's days, 2002 working every weekday (so the log records each day with or without 2001)."""
    day = first
    while day <= last:
        if day.weekday() < 5:
            feed.punch("2002", local(day, "07:55"))
            feed.punch("2002", local(day, "17:05"))
        day_passes(feed, engine, day)
        day += timedelta(days=1)


def seed_case_to_draft(feed: PlantFeed, engine: Engine) -> AbsenceCase:
    """The seed's case, 2001 and 2002 hired on ``feed``, up to the termination draft (L5): the sick leave ends,
    2001 never comes back, nobody reaches him (the welfare check finds nothing), the 催告函 is served by EMS and
    its deadline passes."""
    clock = feed.clock
    feed.leave("2001", "BJ-2025-031", local(SEED_START, "00:00"), local(SEED_START + timedelta(days=10), "00:00"))
    clock.advance_to(local(SEED_START, "06:00"))
    with_colleague(feed, engine, SEED_START, date(2025, 3, 17))
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    clock.advance(hours=9)
    engine.tick()
    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人电话无法接通")
    with_colleague(feed, engine, date(2025, 3, 18), date(2025, 3, 18))
    serve_cuigao(clock, case.id, local(date(2025, 3, 19), "15:00"))
    pass_deadline(clock, engine, case.id)
    case = AbsenceCase.get_by_id(case.id)
    assert case.level == 5, case.state
    return case


def serve_termination(clock: object, engine: Ticks, sender: RecordingSender, case_id: int) -> int:
    """From the union's wait of the seed's case: the 解除通知书 goes out on Monday 03-31 (the first working day
    after the union's window), EMS delivers it two days later and HR records it; returns when it was served."""
    clock.advance_to(local(date(2025, 3, 31), "08:30"))
    engine.tick()
    assert sender.step_keys()[-1] == "L7:termination"
    served = ms(clock.now()) + 2 * 86_400_000
    clock.advance(days=2, hours=1)
    actions.record_service(
        case_id, "termination", by="hr-li", now_ms=ms(clock.now()), served_ms=served, method="EMS", proof="EMS 妥投"
    )
    return served
