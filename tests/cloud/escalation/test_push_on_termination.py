"""The appliance hears at once that a terminated worker is gone (issue #19 leftovers): once the 解除通知书's
service is recorded, the escalation runner's next tick pushes the plant's configuration — the badge ending at the
termination's date, signed, retained on a real Mosquitto — without waiting for the next HR import; a tick after
it publishes nothing new. A broker that is down stops nothing: the tick says so, the log says what to do, and the
push goes out at a later tick."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from cloud import witness
from cloud.config import CloudSettings
from cloud.escalation import actions
from cloud.escalation.models import AbsenceCase
from cloud.escalation.sender import RecordingSender
from cloud.plantconfig.config_push import ConfigVersion
from cloud.plantconfig.push import push_plant
from cloud.workers.escalate import EscalationService
from ledger import SigningKey, topics
from ledger.config_message import SignedConfig
from tests.cloud.escalation.plantfeed import local, ms
from tests.cloud.escalation.test_injury_claim import DAY, _to_union_wait
from tests.cloud.test_config_push import retained

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def settings(tmp_path, broker, db):  # type: ignore[no-untyped-def]
    settings = CloudSettings(
        database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path), mqtt_port=broker.port
    )
    witness.create(settings)
    return settings


def _valid_to(settings: CloudSettings, port: int, user_id: str) -> str:
    """The badge's end in the configuration the appliance gets now (the retained message), its signature checked."""
    signed = SignedConfig.decode(retained(port, topics.config("p1", "pi-01")))
    document = signed.verify(witness.load(settings).verify_key)
    (row,) = [e for e in document.sections["employees"] if e["user_id"] == user_id]
    return row["valid_to"]


def _terminated_after_hr_push(clock, settings):  # type: ignore[no-untyped-def]
    """The seed's case to the union's wait; the plant's configuration as HR's import pushed it meanwhile (the
    worker still expected); then the 解除通知书 served by EMS and in effect (L8), recorded by HR on the case page."""
    _feed, engine, case = _to_union_wait(clock, SigningKey.generate(), RecordingSender())
    (result,) = push_plant("p1", by="hr-wang", settings=settings, clock=clock)
    assert result.pushed is not None and result.pushed.version == 1
    clock.advance_to(local(date(2025, 3, 31), "08:30"))
    engine.tick()
    served = ms(clock.now()) + 2 * DAY
    clock.advance(days=2, hours=1)
    actions.record_service(
        case.id, "termination", by="hr-li", now_ms=ms(clock.now()), served_ms=served, method="EMS", proof="EMS 妥投"
    )
    assert AbsenceCase.get_by_id(case.id).effective_ms == served
    return engine, datetime.fromtimestamp(served / 1000, UTC).astimezone(TZ).date().isoformat()


def test_the_tick_after_the_termination_is_served_ends_the_badge_on_the_appliance(db, clock, settings, broker):
    engine, ended = _terminated_after_hr_push(clock, settings)
    assert _valid_to(settings, broker.port, "2001") == ""  # the old code's state: the appliance still expects him
    service = EscalationService(engine, clock, settings=settings)
    report = service.tick()
    assert not [n for n in report.notes if "not pushed" in n]
    assert _valid_to(settings, broker.port, "2001") == ended
    assert _valid_to(settings, broker.port, "2002") == ""  # the other worker runs on
    assert [(v.version, v.by) for v in ConfigVersion.select().order_by(ConfigVersion.version)] == [
        (1, "hr-wang"),
        (2, "escalation"),
    ]
    clock.advance(minutes=1)
    service.tick()
    assert ConfigVersion.select().count() == 2, "pushed once: the appliance has it"


def test_a_broker_that_is_down_is_logged_and_the_push_goes_out_later(db, clock, settings, broker, caplog):
    engine, ended = _terminated_after_hr_push(clock, settings)
    service = EscalationService(engine, clock, settings=settings)
    broker.kill()
    with caplog.at_level(logging.ERROR, logger="cloud.workers.escalate"):
        report = service.tick()  # never raises: the runner goes on
    assert any("plant p1: configuration not pushed" in n for n in report.notes)
    (said,) = [r.getMessage() for r in caplog.records if r.name == "cloud.workers.escalate"]
    assert "2001" in said and "MQTT broker" in said and "punchproof cloud push-plant-config --plant p1" in said
    broker.restart()
    clock.advance(minutes=1)
    service.tick()  # a moment later: not hammered at every tick
    assert ConfigVersion.select().where(ConfigVersion.published_ms.is_null(False)).count() == 1
    clock.advance(minutes=5)
    report = service.tick()
    assert not [n for n in report.notes if "not pushed" in n]
    assert _valid_to(settings, broker.port, "2001") == ended
