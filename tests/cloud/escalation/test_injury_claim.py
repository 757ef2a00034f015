"""The family claims 工伤 (issue #19, item 11), engine-level on the seed's case: a 10-day sick leave ends, the
worker never comes back, the ladder runs to the termination, and two weeks after it took effect his father says
he was hurt in an accident on the second day of the absence. The claim holds 停保 (and the move of his social
insurance) while it is undecided, opens the 工伤认定 task and a review of the termination that says what
第四十二条 bars and what it does not, and yields the evidence bundle for the accident's date, verified for real.
Before the termination is served, a claim holds the 解除通知书: no tick sends it. The terminated worker is off
the roster the appliance receives and no later day of his is counted."""

from __future__ import annotations

import io
import json
import re
import zipfile
from contextlib import redirect_stdout
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from appliance import rules
from appliance.roster import store as appliance_roster
from appliance.store import open_db as open_appliance_db
from appliance.sync import config_apply
from cloud.escalation import actions, timeline
from cloud.escalation.cases import CaseError
from cloud.escalation.models import AbsenceCase, CaseDay, CaseStep, CaseTask
from cloud.escalation.sender import RecordingSender
from cloud.evidence.export import export_bundle, injury_purpose
from cloud.evidence.witness_log import WitnessLog
from cloud.hr.models import RosterDef, ShiftDef
from cloud.plantconfig.push import sections_for
from cloud.store import Plant
from cloud.web import caseview
from ledger import SigningKey
from ledger.config_message import ConfigDocument
from ledger.evidence import MANIFEST, verify_bundle
from punchproof.cli import main as punchproof
from tests.cloud.escalation.plantfeed import (
    SEED_START,
    local,
    ms,
    new_engine,
    seed_case_to_draft,
    serve_termination,
    with_colleague,
)
from tests.cloud.escalation.test_wired_case import CheckpointedFeed

DAY = 86_400_000
START = SEED_START
ACCIDENT = date(2025, 3, 14)  # Friday, the second day of the absence


def _to_union_wait(clock, witness: SigningKey, sender: RecordingSender):  # type: ignore[no-untyped-def]
    """The seed's case up to the union's wait: the 催告函 served, its deadline passed, the termination confirmed."""
    feed = CheckpointedFeed(clock).start_with(witness)
    feed.hire("2001")
    feed.hire("2002")
    engine = new_engine(clock, sender)
    case = seed_case_to_draft(feed, engine)
    actions.approve(case.id, "confirm_termination", by="hr-wang", now_ms=ms(clock.now()))
    engine.tick()
    assert AbsenceCase.get_by_id(case.id).level == 6 and "L6:union" in sender.step_keys()
    return feed, engine, case


def _terminated(clock, witness: SigningKey, sender: RecordingSender):  # type: ignore[no-untyped-def]
    """...and on to the termination served by EMS and in effect (L8)."""
    feed, engine, case = _to_union_wait(clock, witness, sender)
    served = serve_termination(clock, engine, sender, case.id)
    case = AbsenceCase.get_by_id(case.id)
    assert case.level == 8 and case.effective_ms == served
    return feed, engine, case


def _task(case: AbsenceCase, kind: str) -> CaseTask:
    return CaseTask.get((CaseTask.case == case) & (CaseTask.kind == kind))


def _now(clock) -> int:  # type: ignore[no-untyped-def]
    return ms(clock.now())


def test_a_claim_two_weeks_after_the_termination_holds_stop_insurance_and_asks_for_a_review(db, clock, tmp_path):
    witness = SigningKey.generate()
    feed, engine, case = _terminated(clock, witness, RecordingSender())
    for kind in ("certificate", "final_wages", "unemployment_list"):  # what HR did at once
        actions.complete_task(case.id, kind, by="hr-li", now_ms=_now(clock), proof="已办理")
    stop_due = _task(case, "social_insurance_stop").due_ms
    clock.advance(days=14)
    accident_ms = ms(local(ACCIDENT, "00:00"))
    claim = actions.claim_injury(
        case.id,
        by="hr-li",
        now_ms=_now(clock),
        accident_ms=accident_ms,
        claimant="员工父亲张某",
        note="称 3 月 14 日上班途中遭遇交通事故，住院治疗",
    )
    assert claim.pending and claim.terminated and claim.accident_day == "2025-03-14"

    # 停保 and the move of his social insurance are held, with why; nothing else owed to him is
    stop = _task(case, "social_insurance_stop")
    assert stop.status == "held" and "工伤认定申请待定" in stop.proof
    assert _task(case, "archive_transfer").status == "held"
    assert _task(case, "keep_file").status == "open"

    # the 工伤认定 task: 30 days from the accident, long gone; it says what is left and who may still apply
    report = _task(case, "injury_report")
    assert report.statutory and report.status == "open" and report.due_ms == accident_ms + 30 * DAY
    assert "30 日期限已过" in report.title_zh and "1 年内" in report.title_zh and "第十七条" in report.title_zh
    assert "配合" in report.title_zh

    # the review of the termination, and why, in the timeline: §42 bars §40/41 only; the §39 ground is 旷工
    review = _task(case, "review_injury")
    assert review.status == "open" and review.title_zh.startswith("复核解除决定：")
    assert "2025-03-14" in review.title_zh and "第三十九条" in review.title_zh
    entry = next(i for i in timeline.items(case) if i.kind == "injury_claim")
    assert entry.actor == "hr-li" and entry.data["claimant"] == "员工父亲张某"
    assert entry.data["accident_ms"] == accident_ms and "住院治疗" in entry.text_zh
    for words in ("第四十二条第（二）项", "第四十二条第（三）项", "并不禁止依照第三十九条解除", "不构成旷工"):
        assert words in entry.text_zh, words
    assert timeline.verify(case) == []

    # the same claim again changes nothing
    tasks, entries = CaseTask.select().where(CaseTask.case == case).count(), len(timeline.items(case))
    actions.claim_injury(
        case.id,
        by="hr-li",
        now_ms=_now(clock) + 60_000,
        accident_ms=accident_ms,
        claimant="员工父亲张某",
        note="称 3 月 14 日上班途中遭遇交通事故，住院治疗",
    )
    assert (CaseTask.select().where(CaseTask.case == case).count(), len(timeline.items(case))) == (tasks, entries)

    # 停保's date passes: the ladder neither re-opens nor re-creates it, and the case list does not call it due
    clock.advance_to(clock.now() + timedelta(milliseconds=stop_due - _now(clock) + 3 * DAY))
    engine.tick()
    assert _task(case, "social_insurance_stop").status == "held"
    assert CaseTask.select().where((CaseTask.case == case) & (CaseTask.kind == "social_insurance_stop")).count() == 1
    (row,) = caseview.page_of_cases(caseview.Filters(), None)[0]
    assert "停保" not in row.next.label_zh and "社会保险关系转移" not in row.next.label_zh, row.next

    # the bundle for the accident's date: his day (absent) and the plant's whole day, verified
    scope, day, purpose = injury_purpose(case.id)
    assert (scope.employee, scope.plant, day) == ("2001", "p1", ACCIDENT)
    bundle = export_bundle(
        scope.employee,
        day,
        day,
        witness=witness.verify_key,
        clock=clock,
        plant_id=scope.plant,
        witness_log=WitnessLog(witness, clock),
        purpose=purpose,
    )
    report_ = verify_bundle(bundle, witness_key=witness.verify_key)
    assert report_.ok, [c for c in report_.checks if not c.ok]
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    manifest = json.loads(files[MANIFEST])
    assert manifest["period"] == {"from": "2025-03-14", "to": "2025-03-14"}
    assert manifest["purpose"]["kind"] == "injury_claim" and manifest["purpose"]["case"] == f"case-{case.id}"
    assert manifest["purpose"]["accident_date"] == "2025-03-14" and "工伤认定申请" in manifest["purpose"]["zh"]
    own = [json.loads(d) for n, d in files.items() if re.fullmatch(r"logs/0/records/\d+\.json", n)]
    own = [r for r in own if r["seq"] >= manifest["logs"][0]["from_seq"]]  # not the earlier one giving his tag key
    facts = [(r["fact"]["emp"], r["fact"]["date"], r["fact"]["status"]) for r in own]
    assert facts == [("2001", "2025-03-14", "missing")]  # his day: absent, and nothing else of his that day
    (log,) = manifest["logs"]
    leaves = files["logs/0/leaves.txt"].decode().splitlines()  # a leaf hash, or an owner tag and a record hash
    assert len(leaves) == log["to_size"] - log["from_seq"] > len(own)  # the day's other records (2002's), hashed
    path = tmp_path / "accident-day.zip"
    path.write_bytes(bundle)
    pin = tmp_path / "witness.pem"
    pin.write_text(witness.verify_key.pem(), encoding="utf-8")
    out = io.StringIO()
    with redirect_stdout(out):
        code = punchproof(["verify", str(path), "--witness-key", str(pin)])
    assert code == 4 and "RESULT: signatures and hashes OK" in out.getvalue(), out.getvalue()  # no TSA here

    # not recognised: what was held is released, 停保 due again from now; the review stays
    decided = actions.decide_injury_claim(case.id, "rejected", by="hr-li", now_ms=_now(clock), note="不予认定书 18 号")
    assert decided.outcome == "rejected"
    stop = _task(case, "social_insurance_stop")
    assert stop.status == "open" and stop.due_ms == _now(clock) and stop.proof == ""
    assert _task(case, "archive_transfer").status == "open"
    assert _task(case, "review_injury").status == "open"
    assert _task(case, "injury_report").status == "done"
    assert timeline.kinds(case)[-1] == "injury_decision"
    with pytest.raises(CaseError):
        actions.decide_injury_claim(case.id, "recognised", by="hr-li", now_ms=_now(clock))  # decided already


def test_recognised_keeps_the_holds_and_asks_counsel_to_review_the_termination(db, clock):
    _feed, _engine, case = _terminated(clock, SigningKey.generate(), RecordingSender())
    clock.advance(days=3)
    accident_ms = ms(local(date(2025, 3, 20), "00:00"))
    actions.claim_injury(case.id, by="hr-li", now_ms=_now(clock), accident_ms=accident_ms, claimant="员工母亲")
    assert _task(case, "injury_report").due_ms == accident_ms + 30 * DAY  # inside the window: the 30 days
    assert "30 日内" in _task(case, "injury_report").title_zh
    actions.decide_injury_claim(case.id, "recognised", by="hr-li", now_ms=_now(clock), note="认定工伤决定书 2025-7")
    assert _task(case, "social_insurance_stop").status == "held"
    recognised = _task(case, "injury_recognised")
    assert recognised.status == "open" and "撤销解除" in recognised.title_zh and "律师" in recognised.title_zh
    with pytest.raises(CaseError):
        actions.claim_injury(case.id, by="hr-li", now_ms=_now(clock), accident_ms=accident_ms, claimant="员工母亲")


def test_a_claim_before_the_termination_is_served_holds_the_notice_and_no_tick_sends_it(db, clock):
    sender = RecordingSender()
    _feed, engine, case = _to_union_wait(clock, SigningKey.generate(), sender)
    clock.advance_to(local(date(2025, 3, 31), "06:00"))  # the union's date: the notice is due, quiet hours first
    engine.tick()
    step = CaseStep.get((CaseStep.case == case) & (CaseStep.key == "L7:termination"))
    assert AbsenceCase.get_by_id(case.id).level == 7 and step.status == "due"
    accident_ms = ms(local(date(2025, 3, 20), "00:00"))
    actions.claim_injury(case.id, by="hr-wang", now_ms=_now(clock), accident_ms=accident_ms, claimant="员工父亲")
    assert CaseStep.get_by_id(step.id).status == "held"
    assert "复核解除决定" in _task(case, "review_injury").title_zh
    clock.advance_to(local(date(2025, 3, 31), "09:00"))
    engine.tick()
    clock.advance(days=2)
    engine.tick()
    assert "L7:termination" not in sender.step_keys()
    assert CaseStep.get_by_id(step.id).status == "held"
    assert CaseStep.select().where((CaseStep.case == case) & (CaseStep.key.startswith("L7"))).count() == 1
    assert AbsenceCase.get_by_id(case.id).effective_ms is None

    actions.decide_injury_claim(case.id, "rejected", by="hr-wang", now_ms=_now(clock), note="不予认定")
    assert AbsenceCase.get_by_id(case.id).state == "L7_TERMINATION_SERVED"
    engine.tick()
    assert sender.step_keys()[-1] == "L7:termination"  # released: the notice goes out now


def test_the_terminated_worker_leaves_the_roster_and_no_later_day_counts(db, clock, tmp_path):
    feed, engine, case = _terminated(clock, SigningKey.generate(), RecordingSender())
    plant = Plant.get_by_id("p1")
    ShiftDef.create(plant=plant, shift_id="D", spans="08:00-17:00", terminals="ZK1")
    RosterDef.create(plant=plant, roster_id="W", pattern="D,D,D,D,D,-,-")
    zone = ZoneInfo("Asia/Shanghai")
    ended = clock.now().astimezone(zone).date()  # served by EMS this morning: employment ends today
    assert case.effective_ms <= _now(clock)

    # the configuration pushed to the plant ends his roster at the termination's date; 2002's runs on
    sections = sections_for(plant, _now(clock))
    employees = {e["user_id"]: e for e in sections["employees"]}
    assert employees["2001"]["valid_to"] == ended.isoformat() and employees["2002"]["valid_to"] == ""
    # ...and the appliance, applying it, no longer expects him after that date
    appliance_db = open_appliance_db(tmp_path / "appliance.sqlite3")
    try:
        document = ConfigDocument("p1", "pi-01", 1, _now(clock), "hr-li", sections)
        config_apply.apply(document, zone, ("ZK1",), _now(clock))
        master = appliance_roster.load(zone, ("ZK1",))
        roster = next(r for r in master.rosters if r.employee == "2001")
        after = ended + timedelta(days=1)
        while after.weekday() >= 5:
            after += timedelta(days=1)
        now = local(after + timedelta(days=1), "06:00")
        facts = rules.evaluate_day(master.plant, roster, after, now=now, watermarks={"ZK1": now})
        assert {e.status for e in facts} == {rules.Status.NOT_SCHEDULED}
        other = next(r for r in master.rosters if r.employee == "2002")
        assert rules.Status.NOT_SCHEDULED not in {
            e.status for e in rules.evaluate_day(master.plant, other, after, now=now, watermarks={"ZK1": now})
        }
    finally:
        appliance_db.close()

    # an appliance that has not had the new roster yet still reports him missing that day: the cloud counts nothing
    with_colleague(
        feed, engine, ended, ended
    )  # the termination's own date still counts (the shift began before service)
    days = AbsenceCase.get_by_id(case.id).days
    with_colleague(feed, engine, ended + timedelta(days=1), after)
    assert feed.facts.get(f"2001/{after}/D", {}).get("status") == "missing"
    engine.tick()
    assert AbsenceCase.get_by_id(case.id).days == days
    assert not CaseDay.select().where((CaseDay.case == case) & (CaseDay.work_date == after.isoformat())).exists()
