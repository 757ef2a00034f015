"""A union letter sent in a later round ("L6:union#2", the key ``machine`` gives a key's next round) is the union's
notification all the same: the 解除劳动合同通知书 states the day the first letter that went out was sent, never
that the union was not notified (issue #19 leftovers)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cloud.escalation import notice_facts, preview
from cloud.escalation.models import AbsenceCase, CaseStep
from cloud.escalation.sender import RecordingSender
from ledger import SigningKey
from tests.cloud.escalation.plantfeed import ms
from tests.cloud.escalation.test_injury_claim import _to_union_wait
from tests.cloud.escalation.test_outbound import NOTICES

DAY = 86_400_000
TZ = ZoneInfo("Asia/Shanghai")


def _day(at_ms: int):  # type: ignore[no-untyped-def]
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(TZ).date()


def _termination_facts(case: AbsenceCase, now_ms: int):  # type: ignore[no-untyped-def]
    case = AbsenceCase.get_by_id(case.id)
    return notice_facts.build(preview.planned(case, "termination", now_ms), case, NOTICES)


def test_the_termination_notice_finds_a_union_letter_sent_in_a_second_round(db, clock):
    _feed, _engine, case = _to_union_wait(clock, SigningKey.generate(), RecordingSender())
    sent = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L6:union"))
    assert sent.status == "sent" and sent.sent_ms is not None
    # the first round never went out (superseded); the letter that did is the second round
    CaseStep.update(key="L6:union#2").where(CaseStep.id == sent.id).execute()
    CaseStep.create(
        case=case,
        key="L6:union",
        level=6,
        notice="union_letter",
        recipients="union",
        channels="email",
        to_people=False,
        automatic=False,
        status="superseded",
        planned_ms=sent.planned_ms - DAY,
        due_ms=sent.planned_ms - DAY,
    )
    facts = _termination_facts(case, ms(clock.now()))
    assert facts.union_notified_on == _day(sent.sent_ms)
    assert facts.union_opinion == "工会在答复期限内未提出意见"


def test_of_the_rounds_sent_the_first_is_the_day_the_union_was_notified(db, clock):
    _feed, _engine, case = _to_union_wait(clock, SigningKey.generate(), RecordingSender())
    first = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L6:union"))
    CaseStep.update(status="failed", sent_ms=None).where(CaseStep.id == first.id).execute()  # every channel failed
    for n, later in ((2, 1), (3, 3)):  # the second round went out a day later, a third two days after that
        CaseStep.create(
            case=case,
            key=f"L6:union#{n}",
            level=6,
            notice="union_letter",
            recipients="union",
            channels="email",
            to_people=False,
            automatic=False,
            status="sent",
            planned_ms=first.planned_ms + later * DAY,
            due_ms=first.planned_ms + later * DAY,
            sent_ms=first.planned_ms + later * DAY,
        )
    assert _termination_facts(case, ms(clock.now())).union_notified_on == _day(first.planned_ms + DAY)
