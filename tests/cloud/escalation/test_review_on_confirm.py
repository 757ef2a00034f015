"""The termination's review task says what was reviewed, whoever confirms (issue #19 leftovers): a confirmation
through ``actions.approve`` itself — tests, a future CLI — closes it naming each draft's number and the SHA-256 of
its PDF, kept with the case, as the case page's confirmation does; without the notices' settings it says no draft
was reviewed and why, never a bare "gate approved"."""

from __future__ import annotations

import hashlib
from datetime import date

from cloud.escalation import actions
from cloud.escalation.casefiles import CaseDocument
from cloud.escalation.models import AbsenceCase, CaseTask
from cloud.escalation.sender import RecordingSender
from cloud.notices.settings import NoticeSettings
from ledger import SigningKey
from tests.cloud.escalation import wiring
from tests.cloud.escalation.plantfeed import (
    SEED_START,
    local,
    ms,
    new_engine,
    pass_deadline,
    serve_cuigao,
    with_colleague,
)
from tests.cloud.escalation.test_wired_case import CheckpointedFeed

NOTICES = NoticeSettings(
    employer="东莞市某某电子有限公司",
    address="广东省东莞市长安镇振安路 88 号",
    contact_person="王敏（人力资源部）",
    contact_phone="0769-8888 1234",
    link_base="https://hr.example.cn",
    union="东莞市某某电子有限公司工会委员会",
)


def _draft_awaits(clock, approvers: int = 1) -> AbsenceCase:  # type: ignore[no-untyped-def]
    """The seed's case up to the termination draft: the 催告函 served, its deadline passed, the gate open."""
    feed = CheckpointedFeed(clock).start_with(
        SigningKey.generate(),
        gates={"approve_cuigao": False, "termination_approvers": approvers},
        handbook=wiring.HANDBOOK,
    )
    feed.hire("2001")
    wiring.staff("2001")  # contract number and term: what the 解除通知书 states
    feed.hire("2002")
    engine = new_engine(clock, RecordingSender())
    clock.advance_to(local(SEED_START, "06:00"))
    with_colleague(feed, engine, SEED_START, date(2025, 3, 5))
    case = AbsenceCase.get(AbsenceCase.user_id == "2001")
    actions.close_welfare(case.id, "none_found", by="hr-wang", now_ms=ms(clock.now()), note="紧急联系人电话无法接通")
    with_colleague(feed, engine, date(2025, 3, 6), date(2025, 3, 6))
    serve_cuigao(clock, case.id, local(date(2025, 3, 7), "15:00"))
    pass_deadline(clock, engine, case.id)
    assert AbsenceCase.get_by_id(case.id).level == 5
    return case


def _review(case: AbsenceCase) -> CaseTask:
    return CaseTask.get((CaseTask.case == case) & (CaseTask.kind == "review_termination"))


def test_a_direct_confirmation_names_the_drafts_reviewed(db, clock):
    case = _draft_awaits(clock, approvers=2)
    actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()), notices=NOTICES)
    assert _review(case).status == "open" and not CaseDocument.select().exists()  # one of two: nothing reviewed yet
    assert actions.approve(case.id, "confirm_termination", by="hr-li", now_ms=ms(clock.now()), notices=NOTICES)
    task = _review(case)
    assert task.status == "done" and task.done_by == "hr-li"
    assert task.proof.startswith("已审核：") and "gate approved" not in task.proof
    kept = list(CaseDocument.select().where(CaseDocument.case_id == case.id).order_by(CaseDocument.id))
    assert len(kept) == 2  # the union letter and the termination notice, as the gate showed them
    for doc in kept:
        assert f"PDF SHA-256 {hashlib.sha256(bytes(doc.data)).hexdigest()}" in task.proof
    assert "《解除劳动合同通知书》草稿 文号" in task.proof and "工会" in task.proof


def test_a_confirmation_without_the_notices_says_no_draft_was_reviewed_and_why(db, clock):
    case = _draft_awaits(clock)
    assert actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()))
    task = _review(case)
    assert task.status == "done" and task.proof.startswith("未审核草稿：草稿无法生成")
    assert "未配置 [notices]" in task.proof and "gate approved" not in task.proof
    assert AbsenceCase.get_by_id(case.id).level == 6  # confirmed all the same: the union is notified next
