"""#21 head office: HR edits the escalation policy as a Chinese form, and previews it day by day.

The database is a plant whose worker stayed away from Monday 2025-03-31 (清明节 on Friday 04-04), run by the
real engine on the appliance's signed day facts under the version the form starts from: the preview of that
version must say what the runner did, day by day, and the deadline it stored.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from appliance import rules
from cloud.channels.email_smtp import SmtpSettings
from cloud.channels.settings import ChannelSettings
from cloud.config import CloudSettings
from cloud.escalation import actions, cases
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import PolicyVersion
from cloud.escalation.sender import RecordingSender
from cloud.store import Account, database, open_db
from cloud.web import create_app, policy_form
from tests.cloud.escalation.plantfeed import TZ, PlantFeed, day_passes, local, ms, new_engine
from tests.cloud.web.conftest import PASSWORD, Browser
from tests.harness.browser import chromium, shoot, sign_in
from tests.harness.clock import FrozenClock
from tests.harness.raw_codes import raw_codes, visible_text

MONDAY = date(2025, 3, 31)  # 清明节: Friday 04-04 is a public holiday
HANDBOOK = {
    "version": "2025版",
    "article": "第六章第十二条",
    "text": "连续旷工三个工作日及以上的，视为严重违反规章制度，公司可解除劳动合同。",
    "adopted_on": "2025-01-10",
    "adoption_ref": "职代会决议-2025-01",
    "publication_ref": "公示签收-2025-01",
    "published_on": "2025-01-15",
}
EMAIL_ONLY = ChannelSettings(email=SmtpSettings(host="127.0.0.1", port=2525, sender="hr@factory.example.cn"))


def _local_day(at_ms: int) -> date:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(TZ).date()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The engine's own account of the week: (db file, what the runner sent each local day, the stored deadline,
    the day the termination draft was made and the absent days counted by then)."""
    path = tmp_path_factory.mktemp("policy_form") / "cloud.sqlite3"
    db = open_db(f"sqlite:///{path}")
    cases._policies.clear()
    clock = FrozenClock(datetime(2025, 3, 1, tzinfo=UTC))
    sender = RecordingSender()
    feed = PlantFeed(clock).start(handbook=HANDBOOK, deadlines__return_by="18:00", deadlines__service_allowance_days=3)
    shift = rules.make_shift("D", "08:00-17:00", checkout_after=timedelta(hours=1))  # confirmed at 18:00
    feed.plant = rules.Plant(TZ, rules.package_calendar(), {"D": shift}, ("ZK1",))
    feed.hire("2001")
    engine = new_engine(clock, sender)
    clock.advance_to(local(MONDAY, "06:00"))
    served: set[str] = set()
    sent: dict[date, list[tuple]] = {}
    day = MONDAY
    while day <= date(2025, 4, 8):  # Monday to the next Tuesday, the 催告函's return deadline
        before = len(sender.sent)
        day_passes(feed, engine, day, until="18:30")
        for step in sender.sent[before:]:
            sent.setdefault(_local_day(step.planned_ms), []).append(
                (step.key, tuple(step.recipients), tuple(step.channels))
            )
        case = AbsenceCase.get_or_none()
        if case is not None and case.welfare == "open":  # nobody reached him: HR closes the welfare check
            actions.close_welfare(case.id, "none_found", by="hr", now_ms=ms(clock.now()), note="紧急联系人电话无法接通")
        issued = next((s.planned_ms for s in sender.sent if s.key == "L3"), None)
        if issued is not None and "cuigao" not in served and ms(clock.now()) >= issued + 3 * 86_400_000:
            served.add("cuigao")  # served when the policy expects the post to deliver it: 3 days after issue
            actions.record_service(
                case.id,
                "cuigao",
                by="hr",
                now_ms=ms(clock.now()),
                served_ms=issued + 3 * 86_400_000,
                method="EMS",
                proof="EMS 妥投",
            )
        day += timedelta(days=1)
    deadline = datetime.fromtimestamp(AbsenceCase.get().deadline_ms / 1000, UTC).astimezone(TZ)
    case = AbsenceCase.get()
    assert case.level == 5, case.state
    draft_day = clock.now().astimezone(TZ).date()
    Account.create(
        username="admin", password_hash=generate_password_hash(PASSWORD), role="hr_admin", plant="", created_ms=0
    )
    db.close()
    return path, clock.now(), sent, deadline, draft_day, case.days


def _app(built, tmp_path, channels: ChannelSettings):
    source, now, *_ = built
    shutil.copy(source, tmp_path / "cloud.sqlite3")
    cases._policies.clear()
    settings = CloudSettings(
        database_url=f"sqlite:///{tmp_path}/cloud.sqlite3", state_dir=str(tmp_path), channels=channels
    )
    application = create_app(settings)
    application.config["CLOCK"] = FrozenClock(now)
    return application


@pytest.fixture
def app(built, tmp_path):
    """cloud.toml configures e-mail only."""
    yield _app(built, tmp_path, EMAIL_ONLY)
    if not database.is_closed():
        database.close()


@pytest.fixture
def open_app(built, tmp_path):
    """cloud.toml configures no channel yet: every channel may be chosen (steps wait until one is)."""
    yield _app(built, tmp_path, ChannelSettings())
    if not database.is_closed():
        database.close()


def _newest() -> PolicyVersion:
    with database.connection_context():
        return PolicyVersion.select().order_by(PolicyVersion.id.desc()).first()


def _posted(values: policy_form.Values, **changes: object) -> dict:
    """The form as the browser posts it, from its values."""
    data: dict = {"editor": "form", "scope": "*", "note": "2026 修订", "base": values["base"]}
    for name, _path, kind in policy_form.SCALARS:
        value = values[name]
        if kind == "bool":
            if value:
                data[name] = "on"
        else:
            data[name] = value
    data["step_count"] = str(len(values["steps"]))
    for i, step in enumerate(values["steps"]):
        for field in ("key", *policy_form.STEP_FIELDS):
            data[f"step-{i}-{field}"] = step[field]
    data.update(changes)
    return data


def _beside(page: str, name: str) -> str:
    return " ".join(html.unescape(m) for m in re.findall(rf'data-for="{re.escape(name)}"[^>]*>([^<]*)<', page))


def test_a_body_read_into_the_form_builds_the_same_body():
    body = json.loads(json.dumps(policy_form_body()))
    checked = policy_form.check(policy_form.values_of(body))
    assert checked.errors == {}
    assert checked.body == body


def test_the_ladders_own_rules_are_said_in_chinese_at_the_steps_and_ranges_beside_their_field():
    values = policy_form.values_of(policy_form_body())
    values["steps"][4]["after_days"] = "4"  # the 旷工 step no longer at the threshold (3)
    values["th_year"] = "400"
    values["quiet_end"] = "九点"
    checked = policy_form.check(values)
    assert checked.errors["ladder"] == ["第4级（旷工）天数须等于连续旷工阈值"], checked.errors
    assert checked.errors["th_year"] == ["请填写 0–366 之间的整数"]
    assert checked.errors["quiet_end"] == ["请按 时:分 填写，如 08:00"]
    assert all(raw_codes(said) == [] for lines in checked.errors.values() for said in lines), checked.errors


def test_a_cuigao_that_needs_hr_approval_waits_for_it_in_the_preview(built):
    from cloud.escalation import policy_preview
    from cloud.escalation.policy import parse

    body = policy_form_body()
    body["gates"]["approve_cuigao"] = True
    open_db(f"sqlite:///{built[0]}", create=False)  # the calendar's published years (none): only read
    try:
        days = {d.day: d for d in policy_preview.simulate(parse(body), MONDAY, "Asia/Shanghai")}
    finally:
        database.close()
    wednesday, thursday = days[date(2025, 4, 2)], days[date(2025, 4, 3)]
    assert [e.kind for e in wednesday.events if e.kind in ("gate", "send")] == ["gate", "send"]  # welfare goes
    assert [e.key for e in wednesday.sends()] == ["L3:welfare"]
    assert [e.key for e in thursday.sends()] == ["L3"], "approved the next morning, then it goes"
    assert thursday.sends()[0].at_ms == ms(local(date(2025, 4, 3), "08:00"))


def policy_form_body() -> dict:
    from tests.cloud.escalation.plantfeed import policy_body

    body = policy_body(handbook=HANDBOOK)
    body["deadlines"] = {**body["deadlines"], "return_by": "18:00", "service_allowance_days": 3}
    body["termination"] = {"channels": ["sms", "email", "ems"]}
    body["extra_note"] = "kept as it was"  # a field the form does not own goes through unchanged
    return body


def test_a_missing_article_text_is_said_beside_it_and_nothing_typed_is_lost(app):
    admin = Browser(app, "admin")
    values = policy_form.values_of(json.loads(_newest().body))
    before = _newest().id
    data = _posted(values, hb_text="", th_month="6", hb_adopted_on="")
    data["step-1-after_days"] = "两天"
    refused = admin.post("/policy/new", data)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "条款原文" in _beside(page, "hb_text") and "引用" in _beside(page, "hb_text"), _beside(page, "hb_text")
    assert "通过日期" in _beside(page, "hb_adopted_on")
    assert _beside(page, "step-1-after_days") == "请填写整数"
    assert 'name="th_month" value="6"' in page and 'name="step-1-after_days" value="两天"' in page
    assert 'value="2026 修订"' in page and HANDBOOK["article"] in page
    assert "Traceback" not in page and _newest().id == before
    assert raw_codes(visible_text(page), {"admin"}) == []


def test_a_step_is_added_and_one_removed_without_javascript_keeping_what_was_typed(app):
    admin = Browser(app, "admin")
    values = policy_form.values_of(json.loads(_newest().body))
    data = _posted(values, action="add_step", hb_text="新的条款原文")
    data["step-3-remove"] = "on"  # the welfare message
    page = admin.post("/policy/new", data).get_data(as_text=True)
    assert 'name="step_count" value="5"' in page and 'name="step-4-notice"' in page and "新的条款原文" in page
    assert 'value="L3:welfare"' not in page


def test_the_unconfigured_channels_are_greyed_and_cannot_be_chosen(app):
    admin = Browser(app, "admin")
    page = admin.get("/policy/new").get_data(as_text=True)
    # step 2 (the warning) names WeCom and e-mail: e-mail is configured, SMS is not and was not chosen
    sms = re.search(
        r'<label class="box off"><input type="checkbox" name="step-1-channels" value="sms"[^>]*>([^<]*)', page
    )
    assert sms and "disabled" in sms.group(0) and "checked" not in sms.group(0), sms
    email = re.search(r'<label class="box"><input type="checkbox" name="step-1-channels" value="email"[^>]*>', page)
    assert email and "checked" in email.group(0) and "disabled" not in email.group(0)
    wecom = re.search(r'<label class="box off"><input type="checkbox" name="step-1-channels" value="wecom"[^>]*>', page)
    assert wecom and "checked" in wecom.group(0) and "disabled" not in wecom.group(0), "chosen before: kept"
    assert '短信 <span class="unconfigured">（未配置）</span>' in page
    assert "docs/channels.md" in page and '高级：直接编辑 <span translate="no">JSON</span>' in page
    assert raw_codes(visible_text(page), {"admin"}) == []
    english = admin.get("/policy/new?lang=en").get_data(as_text=True)
    assert 'SMS <span class="unconfigured">(not configured)</span>' in english and "Escalation steps" in english


def test_the_preview_goes_as_the_runner_went_around_the_holiday(app, built):
    _source, _now, sent, deadline, draft_day, counted = built
    admin = Browser(app, "admin")
    values = policy_form.values_of(json.loads(_newest().body))
    before = _newest().id
    shown = admin.post("/policy/new", _posted(values, action="preview", preview_plant="p1", preview_from="2025-03-31"))
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200, visible_text(page)
    assert _newest().id == before, "a preview never publishes"
    assert "若员工自某周一起缺勤，将按以下时间推进" in page
    rows = dict(re.findall(r'<tr class="[a-z]+" data-day="([\d-]+)">(.*?)</tr>', page, flags=re.S))
    previewed = {
        date.fromisoformat(day): re.findall(r'data-step="(L[^"]+)"><span class="at">', row) for day, row in rows.items()
    }
    runner = {day: [key for key, _to, _by in steps] for day, steps in sent.items()}
    for day in sorted(runner):
        assert previewed[day] == runner[day], (day, previewed[day], runner[day])
    assert previewed[date(2025, 4, 4)] == [] and "法定节假日" in rows["2025-04-04"]
    assert [d for d, keys in previewed.items() if keys and d <= draft_day] == sorted(runner)
    said = visible_text(rows["2025-04-02"])
    assert f"催告函写明的返岗期限：{deadline.date().isoformat()}（周二）{deadline.strftime('%H:%M')}" in said, said
    assert "第3级 催告函 → 员工：短信、邮件、企业微信、EMS 邮寄" in said
    assert f"第{counted}天" in rows[draft_day.isoformat()] and "等待人事确认解除" in rows[draft_day.isoformat()]
    assert raw_codes(visible_text(page), {"admin"}) == []


def test_hr_fills_the_form_in_chromium_and_the_version_published_is_what_was_filled(open_app):
    base = json.loads(_newest().body)
    server = make_server("127.0.0.1", 0, open_app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_port}"
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{site}/login")
            sign_in(page, "admin", PASSWORD)
            page.goto(f"{site}/policy/{_newest().id}")
            page.click("#edit-version")
            page.fill("input[name=note]", "2026 修订：工会答复五个工作日")
            page.fill("input[name=union_wait]", "5")
            page.fill("textarea[name=hb_text]", "连续旷工三个工作日及以上的，公司可解除劳动合同。")
            page.uncheck("input[name=step-1-recipients][value=manager]")
            page.check("input[name=step-0-channels][value=email]")
            page.select_option("select[name=termination_approvers]", "2")
            page.click("#preview-button")
            page.wait_for_selector("#policy-preview")
            assert page.input_value("input[name=union_wait]") == "5", "the preview keeps what was typed"
            form_text = visible_text(page.content())
            assert raw_codes(form_text, {"admin"}) == [], raw_codes(form_text, {"admin"})
            page.evaluate("window.scrollTo(0, 0)")
            shoot(page, "policy-form", {"laptop": (1366, 768)})
            page.locator("#policy-preview").scroll_into_view_if_needed()
            shoot(page, "policy-form-preview", {"laptop": (1366, 768), "office": (1920, 1080)})
            page.set_viewport_size({"width": 1366, "height": 768})
            page.click("#publish-button")
            page.wait_for_url(re.compile(r".*/policy/\d+$"))
    finally:
        server.shutdown()
    expected = json.loads(json.dumps(base))
    expected["union"]["wait_working_days"] = 5
    expected["handbook"]["text"] = "连续旷工三个工作日及以上的，公司可解除劳动合同。"
    expected["ladder"][1]["recipients"] = ["hr"]
    expected["ladder"][0]["channels"] = ["sms", "wecom", "email"]  # the version's order, the new one after
    expected["gates"]["termination_approvers"] = 2
    published = _newest()
    assert published.note.startswith("2026 修订") and json.loads(published.body) == expected
