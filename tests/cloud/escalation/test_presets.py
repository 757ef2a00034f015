"""The seed's timeline as a preset ("休假到期未归岗（参考流程）"), run by the real engine on a plant's signed day facts:
the leave ends on a Monday, the worker never comes back; each notice goes out on the seed's day, to its people."""

from __future__ import annotations

import json
from datetime import date, timedelta

from appliance import rules
from cloud.escalation import actions, presets
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import parse, publish
from cloud.escalation.sender import RecordingSender
from tests.cloud.escalation.plantfeed import TZ, PlantFeed, day_passes, local, ms, new_engine, pass_deadline

TUESDAY = date(2025, 3, 4)
HANDBOOK = {
    "version": "2025版",
    "article": "第六章第十二条",
    "adoption_ref": "职代会决议-2025-01",
    "publication_ref": "公示签收-2025-01",
    "published_on": "2025-01-15",
}


def test_the_preset_is_a_valid_policy_named_in_chinese():
    preset = presets.find(presets.SEED_LEAVE_END)
    assert preset is not None and presets.find(preset.name_en) is preset
    policy = parse(preset.policy_body())
    assert (policy.approve_cuigao, policy.termination_approvers, policy.consecutive_days) == (False, 1, 3)
    preset.policy_body()["ladder"].clear()
    assert preset.body["ladder"], "a caller's copy is its own"


def test_the_seed_days_reminder_warning_cuigao_then_termination_draft_after_day_seven(db, clock):
    sender = RecordingSender()
    feed = PlantFeed(clock).start()
    shift = rules.make_shift("D", "08:00-17:00", checkout_after=timedelta(hours=1))  # confirmed at 18:00
    feed.plant = rules.Plant(TZ, rules.package_calendar(), {"D": shift}, ("ZK1",))
    body = presets.PRESETS[presets.SEED_LEAVE_END].policy_body()
    body["handbook"] = HANDBOOK
    publish("*", body, by="hr-admin", now_ms=ms(clock.now()))
    feed.hire("2001")
    engine = new_engine(clock, sender)
    # 病假 until Monday: Tuesday 03-04 is day 1, Thursday day 3, the next Monday day 7
    feed.leave("2001", "QJ-1", local(TUESDAY - timedelta(days=10), "00:00"), local(TUESDAY, "00:00"))
    clock.advance_to(local(TUESDAY - timedelta(days=1), "06:00"))
    sent: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
    day, n = TUESDAY, 0
    while day <= date(2025, 3, 7):  # days 1-4, Tuesday to Friday
        n += 1
        before = len(sender.sent)
        day_passes(feed, engine, day, until="18:30")  # the day shift confirmed: its notices go out that evening
        sent[n] = [(s.key, tuple(s.recipients)) for s in sender.sent[before:]]
        day += timedelta(days=1)
    assert sent[1] == [("L1", ("employee",))]  # day 1: the reminder to the employee
    assert sent[2] == [("L2", ("hr",))]  # day 2: the warning to HR
    assert sent[3][0] == ("L3", ("employee", "emergency_contact"))  # day 3: the 催告函, without an approval
    case = AbsenceCase.get()
    assert case.level == 3 and case.trigger == "leave_end"
    step = next(s for s in sender.sent if s.key == "L3")
    assert set(step.channels) == {"sms", "email", "wecom"}
    # served on day 3 (its SMS delivered): four days to return, the end of day 7 (Monday 03-10, 18:00); the
    # termination draft only after it, on day 8
    actions.record_service(
        case.id,
        "cuigao",
        by="hr",
        now_ms=ms(clock.now()),
        served_ms=ms(local(date(2025, 3, 6), "18:40")),
        method="短信",
        proof="短信回执：已送达",
    )
    # nobody reached him (the seed: 紧急联系人电话无法接通): HR closes the welfare check, as on the case page
    actions.close_welfare(case.id, "none_found", by="hr", now_ms=ms(clock.now()), note="紧急联系人电话无法接通")
    deadline = pass_deadline(clock, engine, case.id)
    assert deadline == local(date(2025, 3, 10), "18:00"), deadline  # the end of day 7
    case = AbsenceCase.get()
    assert case.level == 5 and case.state == "L5_TERMINATION_DRAFT", case.state
    assert clock.now().astimezone(TZ).date() == date(2025, 3, 11)  # day 8: after the seventh day
    assert "L4" in sender.step_keys() and "L7:termination" not in sender.step_keys()  # HR confirms first


def test_the_cli_prints_the_preset_and_publishes_it_with_the_handbook(tmp_path, capsys):
    from punchproof.cli import main

    assert main(["cloud", "policy-preset", presets.SEED_LEAVE_END]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == presets.PRESETS[presets.SEED_LEAVE_END].body
    assert main(["cloud", "policy-preset", "没有的模板"]) == 1
    assert "没有这个模板" in capsys.readouterr().err
    config = tmp_path / "cloud.toml"
    assert main(["cloud", "init", "-o", str(config), "--state-dir", str(tmp_path / "state")]) == 0
    handbook = tmp_path / "handbook.json"
    handbook.write_text(json.dumps(HANDBOOK, ensure_ascii=False), encoding="utf-8")
    args = ["cloud", "policy-preset", presets.SEED_LEAVE_END, "--publish", "-c", str(config), "--by", "hr-wang"]
    assert main([*args, "--handbook", str(handbook)]) == 0
    assert "第1版" in capsys.readouterr().out
    from cloud.escalation.policy import current
    from cloud.store import open_db

    with open_db(f"sqlite:///{tmp_path}/state/cloud.sqlite3").connection_context():
        row = current("any-plant")
    assert row is not None and row.note == presets.SEED_LEAVE_END and row.created_by == "hr-wang"
    assert row.parsed().handbook.article == "第六章第十二条" and row.parsed().return_days == 4
