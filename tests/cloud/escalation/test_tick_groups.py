"""The tick's group work: a superseding fact through the one-statement upsert, a sender that goes
away in the middle of a claimed group, and a tick over more cases than one group costing statements
per group rather than per case, with every case's timeline as one case alone would have it."""

from __future__ import annotations

from datetime import date, timedelta

from cloud.escalation import engine, facts, timeline
from cloud.escalation.models import AbsenceCase, AttendanceDay, CaseStep, CaseTask
from cloud.escalation.sender import PlannedStep, RecordingSender, SenderUnavailable
from cloud.store import database, open_db
from tests.cloud.escalation.plantfeed import PlantFeed, day_passes, local, new_engine

MON = date(2025, 3, 3)


def test_a_superseding_fact_replaces_its_key_and_counts_a_version(cloud_db_url, clock):
    db = open_db(cloud_db_url)
    try:
        feed = PlantFeed(clock).start()
        feed.hire("1001")
        clock.advance_to(local(MON, "23:30"))
        feed.evaluate(MON)  # missing: no punch
        first = facts.read_new()
        assert first.touched == {("p1", "1001")} and first.facts == 1
        feed.punch("1001", local(MON, "07:58"))  # a punch the terminal held comes in; the fact is superseded
        feed.punch("1001", local(MON, "17:03"))
        feed.evaluate(MON)
        second = facts.read_new()
        row = AttendanceDay.get()
        assert (row.status, row.versions) == ("present", 2)
        assert second.touched == {("p1", "1001")}  # a changed fact is looked at even though attended
        assert facts.read_new().facts == 0  # nothing read twice
    finally:
        db.close()


class GoesAway(RecordingSender):
    """Sends ``ok`` steps, then the provider is down."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def send(self, step: PlannedStep) -> None:
        if len(self.sent) >= self.ok:
            raise SenderUnavailable("provider down")
        super().send(step)


def test_a_sender_going_away_mid_claim_leaves_the_rest_due_and_sends_each_once_later(db, clock):
    feed = PlantFeed(clock).start()
    for n in range(6):
        feed.hire(f"40{n:02d}")
    sender = GoesAway(ok=6)
    eng = new_engine(clock, sender)
    clock.advance_to(local(MON, "06:00"))
    day_passes(feed, eng, MON)
    clock.advance(hours=9)  # Tuesday 08:30: the reminders held overnight go out (L2 waits for them)
    eng.tick()
    sender.ok = 8
    clock.advance(hours=15)  # Tuesday 23:30: D2, the L2 warnings (to manager and HR, no quiet hours) are due
    feed.evaluate(MON + timedelta(days=1))
    report = eng.tick()
    assert len(sender.sent) == 8 and report.sent == 2 and report.notes == ["provider down"]
    statuses = [s for (s,) in CaseStep.select(CaseStep.status).where(CaseStep.key == "L2").tuples()]
    assert sorted(statuses) == ["due"] * 4 + ["sent"] * 2  # none left "sending"
    sender.ok = 100
    eng.tick()
    assert sorted(s.key for s in sender.sent) == ["L1"] * 6 + ["L2"] * 6
    assert len({s.step_id for s in sender.sent}) == 12


def test_a_tick_over_more_cases_than_a_group_costs_statements_per_group(db, clock, monkeypatch):
    monkeypatch.setattr(engine, "GROUP", 40)  # three groups, and dispatch records in three
    monkeypatch.setattr(engine, "FINISH_EVERY", 40)
    feed = PlantFeed(clock).start()
    people = [f"5{n:03d}" for n in range(100)]
    for user in people:
        feed.hire(user)
    sender = RecordingSender()
    eng = new_engine(clock, sender)
    clock.advance_to(local(MON, "06:00"))
    day_passes(feed, eng, MON)
    clock.advance(hours=9)  # Tuesday 08:30: the reminders held overnight go out (L2 waits for them)
    eng.tick()
    clock.advance(hours=15)
    feed.evaluate(MON + timedelta(days=1))
    count = [0]
    database.connection().set_trace_callback(lambda _sql: count.__setitem__(0, count[0] + 1))
    try:
        report = eng.tick()
    finally:
        database.connection().set_trace_callback(None)
    assert report.recounted == 100 and report.sent == 100
    assert count[0] < 2 * 100, count[0]  # row at a time it was some fifty a case
    cases = list(AbsenceCase.select())
    assert len(cases) == 100 and {c.level for c in cases} == {2}
    kinds = {tuple(timeline.kinds(c)) for c in cases}
    assert kinds == {("opened", "day", "L1", "sent", "day", "L2", "sent")}, kinds
    assert all(timeline.verify(c) == [] for c in cases)


def test_a_step_a_dead_runner_left_sending_becomes_a_task_for_a_person_and_is_not_resent(db, clock):
    feed = PlantFeed(clock).start()
    feed.hire("4100")
    down = new_engine(clock, GoesAway(ok=1))  # the runner that will die: it sends L1, plans L2 but sends nothing
    clock.advance_to(local(MON, "06:00"))
    day_passes(feed, down, MON)
    clock.advance(hours=9)  # Tuesday 08:30: the reminder held overnight goes out
    down.tick()
    clock.advance(hours=15)
    feed.evaluate(MON + timedelta(days=1))
    down.tick()
    claimed = (
        CaseStep.update(status="sending", claimed_by="dead-runner", claimed_ms=int(clock.now().timestamp() * 1000))
        .where((CaseStep.key == "L2") & (CaseStep.status == "due"))
        .execute()
    )  # as a runner killed between its claim and recording the send leaves it
    assert claimed == 1
    sender = RecordingSender()
    eng = new_engine(clock, sender)
    eng.tick()
    assert CaseStep.get(CaseStep.key == "L2").status == "sending", "a fresh claim may still be in progress"
    clock.advance(minutes=16)
    report = eng.tick()
    step = CaseStep.get(CaseStep.key == "L2")
    assert step.status == "uncertain" and report.failed == 1
    assert [s for s in sender.sent if s.key == "L2"] == [], "never sent again automatically"
    (task,) = CaseTask.select().where(CaseTask.kind == "check_send:L2")
    assert "核实" in task.title_zh and task.status == "open"
    eng.tick()
    assert CaseTask.select().where(CaseTask.kind == "check_send:L2").count() == 1
    # and /metrics shows it: one open case at its level, one step a person must check
    from cloud.escalation.metrics import metrics
    from opskit.metrics import exposition

    text = exposition(metrics(clock.now().timestamp()))
    assert "punchproof_cloud_steps_uncertain 1" in text
    case = AbsenceCase.get()
    assert f'punchproof_cloud_open_cases{{plant="{case.plant_id}",level="{case.level}"}} 1' in text
