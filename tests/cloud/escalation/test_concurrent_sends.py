"""Escalation sends run several at once through the real sender, dispatcher, Aliyun channel and the local Aliyun
server (signatures checked) answering in 50 ms: they overlap, each step goes out once, a case's steps go one after
the other, "rate limited" backs the channel off without failing a step, and an uncertain send stays uncertain.

The database is bench/escalation_sends.py's (the escalation_tick seed: cases whose L2 warning to the manager by SMS
is due), built once for the module and copied for each test. Each step's notice is the bench's stand-in (rendering
a notice's PDF takes seconds, and is not what is tested here)."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from bench.escalation_sends import KEY_ID, KEY_SECRET, NOTICES, TEMPLATES, PreRendered, build
from cloud.channels.base import Status
from cloud.channels.contact_log import ContactAttempt
from cloud.channels.dispatch import Dispatcher
from cloud.channels.ratelimit import ChannelLimiter, RateLimit
from cloud.channels.settings import parse
from cloud.channels.sms_aliyun import AliyunSms, AliyunSmsSettings
from cloud.channels.transport import Backoff
from cloud.escalation import cases
from cloud.escalation.engine import Engine
from cloud.escalation.models import CaseStep, CaseTask
from cloud.escalation.sender import PlannedStep
from cloud.store import database, open_db
from tests.harness.clock import FrozenClock
from tests.harness.providers.aliyun import AliyunSmsServer
from tests.harness.providers.base import Fault

STEPS = 120  # L2 warnings due at once
DELAY_S = 0.05


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("sends")
    path, clock = build(folder, 2, STEPS, STEPS, second_step=True)
    return path, clock


@pytest.fixture
def world(built, tmp_path):  # type: ignore[no-untyped-def]
    """A copy of the built database, open; the clock at the moment the warnings are due; the Aliyun server."""
    path, clock = built
    copy = tmp_path / "cloud.sqlite3"
    shutil.copy(path, copy)
    open_db(f"sqlite:///{copy}")
    cases._policies.clear()
    clock = FrozenClock(clock.now())
    with AliyunSmsServer(FrozenClock(clock.now()), KEY_ID, KEY_SECRET) as server:
        server.delay_s = DELAY_S
        yield clock, server
    database.close()


class Watching(PreRendered):
    """Notes, for each step as it is sent, the case's other steps then at a sender, and the status of its earlier
    step (read on this thread's own connection)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.at_sender: dict[int, str] = {}
        self.overlapping: list[tuple[int, str, str]] = []
        self.earlier_status: dict[int, str] = {}

    def send(self, step: PlannedStep):  # type: ignore[no-untyped-def]
        with self._lock:
            if step.case_id in self.at_sender:
                self.overlapping.append((step.case_id, self.at_sender[step.case_id], step.key))
            self.at_sender[step.case_id] = step.key
        if step.key == "L2:hr":
            earlier = CaseStep.get((CaseStep.case == step.case_id) & (CaseStep.key == "L2"))
            self.earlier_status[step.case_id] = earlier.status
        try:
            return super().send(step)
        finally:
            with self._lock:
                del self.at_sender[step.case_id]


def sender(server: AliyunSmsServer, clock: FrozenClock, *, parallel: int, **channel) -> Watching:  # type: ignore[no-untyped-def]
    settings = AliyunSmsSettings(KEY_ID, KEY_SECRET, "某某电子", TEMPLATES, endpoint=f"{server.url}/", **channel)
    sms = AliyunSms(settings, clock=clock, limit=RateLimit(per_s=5000, burst=100), backoff=Backoff(first_s=0.05))
    return Watching(Dispatcher([sms], clock=clock), NOTICES, clock, parallel=parallel)


def out_ids(server: AliyunSmsServer) -> Counter[str]:
    return Counter(s["out_id"] for s in server.sent)


def test_sends_overlap_each_step_goes_once_and_a_case_takes_its_steps_in_turn(world):
    clock, server = world
    watching = sender(server, clock, parallel=8)
    report = Engine(clock, watching).tick()
    assert server.most_in_flight > 1  # one after another before: never more than one
    assert report.sent == 2 * STEPS and report.failed == 0
    assert len(server.sent) == 2 * STEPS and set(out_ids(server).values()) == {1}
    assert CaseStep.select().where(CaseStep.status == "sent", CaseStep.key.startswith("L2")).count() == 2 * STEPS
    assert watching.overlapping == []  # never two steps of one case at the senders at once
    assert set(watching.earlier_status.values()) == {"sent"}  # the manager's warning recorded before HR's went
    Engine(clock, sender(server, clock, parallel=8)).tick()  # a tick again: nothing more goes out
    assert len(server.sent) == 2 * STEPS


def test_the_providers_rate_limited_answer_backs_the_channel_off_and_every_step_still_goes_once(world):
    clock, server = world
    server.inject(*[Fault.RATE_LIMIT] * 6)  # the first six requests: 触发号码分钟级流控
    report = Engine(clock, sender(server, clock, parallel=8)).tick()
    assert report.failed == 0 and report.sent == 2 * STEPS
    assert len(server.sent) == 2 * STEPS and set(out_ids(server).values()) == {1}
    assert len(server.requests) == 2 * STEPS + 6  # the six were asked again, after the pause
    assert not ContactAttempt.select().where(ContactAttempt.status != Status.SENT.value).exists()


def test_an_uncertain_send_stays_uncertain_and_is_not_sent_again(world):
    clock, server = world
    server.inject(Fault.HANG)  # the first request: read, never answered
    watching = sender(server, clock, parallel=8, timeout_s=0.5)
    report = Engine(clock, watching).tick()
    assert report.failed == 1 and report.sent == 2 * STEPS - 1
    uncertain = CaseStep.get(CaseStep.status == "uncertain")
    assert CaseTask.select().where(CaseTask.kind == f"check_send:{uncertain.key}").count() == 1
    Engine(clock, sender(server, clock, parallel=8)).tick()
    assert CaseStep.get_by_id(uncertain.id).status == "uncertain"
    assert len(server.requests) == 2 * STEPS  # the hung one was never asked again
    assert set(out_ids(server).values()) == {1}


class Sleeps:
    def __init__(self, clock: FrozenClock) -> None:
        self.clock, self.waits = clock, []

    def __call__(self, seconds: float) -> None:
        self.waits.append(round(seconds, 3))
        self.clock.advance(seconds=seconds)


def test_the_token_bucket_the_minute_window_and_a_back_off_that_holds_every_sender():
    clock = FrozenClock()
    sleeps = Sleeps(clock)
    bucket = ChannelLimiter(RateLimit(per_s=10, burst=2), clock, sleeps)
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0.1]  # two at once, then one each 100 ms
    bucket.back_off(5)  # the provider said "too many" to one sender
    assert bucket.acquire() == 5  # another sender waits it out too
    assert bucket.acquire() == 0.1  # and the bucket fills again from there, not at once
    window = ChannelLimiter(RateLimit(per_minute=3), clock, sleeps)
    assert [window.acquire() for _ in range(4)] == [0, 0, 0, 60]  # a provider's "3 a minute", counted as it counts
    frozen = ChannelLimiter(RateLimit(per_s=1, burst=1), FrozenClock(), lambda s: None)  # a clock that never moves
    assert [frozen.acquire() for _ in range(3)] == [0, 1, 1]  # waits what it slept, never for ever


def test_rate_limits_are_configured_per_channel_with_the_providers_published_ones_by_default(tmp_path: Path):
    (tmp_path / "k").write_text("secret")
    (tmp_path / "k").chmod(0o600)
    table = {
        "sms_aliyun": {
            "access_key_id": "LTAI",
            "access_key_secret_file": "k",
            "sign_name": "某某",
            "templates": {"warning": "SMS_1"},
            "per_second": 50,
            "concurrency": 4,
        },
        "wecom_robot": {"key_file": "k"},
        "dingtalk_robot": {"access_token_file": "k", "secret_file": "k", "burst": 0},
    }
    settings, problems = parse(table, tmp_path)
    assert problems == ["channels.dingtalk_robot.burst: at least 1"]
    assert settings.limit("sms_aliyun") == RateLimit(per_s=50.0, burst=100, concurrency=4)
    assert settings.limit("wecom_robot") == RateLimit(per_minute=20, concurrency=1)  # WeCom's 20 a minute a robot
    sms = settings.build(FrozenClock())[0]
    assert sms.limiter.limit == RateLimit(per_s=50.0, burst=100, concurrency=4)
