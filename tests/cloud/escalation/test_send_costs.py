"""What sending costs us, counted in statements (the 09:00 tick sends 50,000 reminders, a plant's bad morning 5,000
warnings in a minute): a batch of due steps is read from the steps' own table and its cases, employees and plants
by id, never joined (PostgreSQL joined every due step, then sorted them, for each batch of 500); a warning through
the real sender, dispatcher and contact log costs a bounded number of statements. And the benchmark's provider
answers from a process of its own, as a real provider is another machine, each message accepted once.

The database is bench/escalation_sends.py's (cases whose L2 warning to the manager by SMS is due), built once."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

from bench.escalation_sends import KEY_ID, KEY_SECRET, NOTICES, TEMPLATES, build
from cloud.channels.dispatch import Dispatcher
from cloud.channels.ratelimit import RateLimit
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.escalation import cases
from cloud.escalation.engine import Engine
from cloud.escalation.models import CaseStep
from cloud.escalation.outbound import OutboundSender
from cloud.escalation.sender import RecordingSender
from cloud.store import database, open_db
from tests.harness.clock import FrozenClock
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.process import ProviderProcess

STEPS = 30  # L2 warnings due at once
# statements one warning costs through the real sender (21 measured): its claim, its case, employee, manager and
# plant, its notice's words kept, the dispatcher's claim and the contact log's attempt (each write committed, with
# other senders' on SQLite), and its share of the engine's batch reads and records
PER_WARNING = 22


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # type: ignore[no-untyped-def]
    return build(tmp_path_factory.mktemp("costs"), 2, STEPS, STEPS)


@pytest.fixture
def world(built, tmp_path):  # type: ignore[no-untyped-def]
    path, clock = built
    copy = tmp_path / "cloud.sqlite3"
    shutil.copy(path, copy)
    open_db(f"sqlite:///{copy}")
    cases._policies.clear()
    yield FrozenClock(clock.now())
    database.close()


def traced(run):  # type: ignore[no-untyped-def]
    """The statements this thread's connection runs during ``run()``, and what it returned."""
    seen: list[str] = []
    database.connection().set_trace_callback(seen.append)
    try:
        result = run()
    finally:
        database.connection().set_trace_callback(None)
    return seen, result


def test_a_batch_of_due_steps_is_read_by_id_never_joined_to_the_employees(world):
    clock = world
    sender = RecordingSender()
    seen, report = traced(lambda: Engine(clock, sender).tick(pdfs=False))
    assert report.sent == STEPS and len(sender.sent) == STEPS
    assert {s.employee_no for s in sender.sent} == {e for (e,) in _employee_nos()}  # each with its own employee
    joined = [q for q in seen if "FROM case_step" in q and "JOIN" in q.upper()]
    assert joined == []
    assert any("FROM employee WHERE id IN" in q for q in seen)


def _employee_nos():  # type: ignore[no-untyped-def]
    return database.execute_sql(
        "SELECT e.employee_no FROM case_step s, absence_case c, employee e "
        "WHERE s.case_id = c.id AND c.employee_id = e.id AND s.key = 'L2'"
    ).fetchall()


def test_a_warning_through_the_real_sender_costs_a_bounded_number_of_statements_each_sent_once(world):
    clock = world
    with ProviderProcess(AliyunSmsServer, FrozenClock(clock.now()), KEY_ID, KEY_SECRET) as provider:
        settings = AliyunSmsSettings(KEY_ID, KEY_SECRET, "某某电子", TEMPLATES, endpoint=f"{provider.url}/")
        sms = AliyunSms(settings, clock=clock, limit=RateLimit(per_s=5000, burst=100))
        sender = OutboundSender(Dispatcher([sms], clock=clock), NOTICES, clock, parallel=1)  # sent on this thread
        seen, report = traced(lambda: Engine(clock, sender).tick(pdfs=False))
        told = provider.report()
    assert report.sent == STEPS and report.failed == 0
    assert len(told.out_ids) == STEPS and set(Counter(told.out_ids).values()) == {1}
    assert told.pid != os.getpid()  # the provider's CPU is not ours
    assert CaseStep.select().where((CaseStep.status == "sent") & (CaseStep.key == "L2")).count() == STEPS
    assert len(seen) <= PER_WARNING * STEPS, (len(seen), Counter(q.split(" ")[0] for q in seen))
