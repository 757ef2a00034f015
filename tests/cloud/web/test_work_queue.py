"""Head office's first page is HR's work queue (#21 "Head office", #20.3): replies, approvals, tasks due, failed
and uncertain sends, new cases — in that order, counted, each linking to its case; the appliances moved to
/devices. On the module's database the engine filled (conftest: a case per plant at the 催告函's gate)."""

from __future__ import annotations

import re
import threading
from datetime import date

from werkzeug.serving import make_server

from cloud.escalation import replies
from cloud.escalation.models import AbsenceCase, CaseStep, CaseTask, Gate, GateApproval
from cloud.notices.links import NoticeLink
from cloud.store import database
from tests.cloud.web.conftest import PASSWORD, the_case
from tests.harness.browser import chromium, shoot, sign_in

ORDER = ("replies", "approvals", "tasks", "sends", "new-cases")


def sections(page: str) -> dict[str, str]:
    """Each section's HTML by its id, asserting they come in the queue's order."""
    found = {m.group(1): m.start() for m in re.finditer(r'<section class="queue" id="([a-z-]+)"', page)}
    assert list(found) == list(ORDER), list(found)
    ends = [*list(found.values())[1:], len(page)]
    return {name: page[start:end] for (name, start), end in zip(found.items(), ends, strict=True)}


def count(section: str) -> int:
    return int(re.search(r'data-count="(\d+)"', section).group(1))


def keys(section: str) -> list[str]:
    return re.findall(r'data-key="([^"]+)"', section)


def add_work(app) -> tuple[AbsenceCase, AbsenceCase]:
    """A reply from 2001 by the notice link, and 3001's reminder failed on every channel."""
    c1, c2 = the_case("2001"), the_case("3001")
    with app.app_context(), database.connection_context():
        at = int(app.config["CLOCK"].now().timestamp() * 1000)
        link = NoticeLink.create(
            case_id=c1.id, key="L1", doc_no="人通〔2025〕2-L1", token_sha256="a" * 64, issued_ms=at, expires_ms=at + 1
        )
        visit = replies.Visit("203.0.113.9", "", "Mozilla/5.0 (iPhone)")
        replies.replied(
            link,
            None,
            visit,
            at,
            reason="sick",
            return_on="",
            text="发烧住院",
            attachment=None,
            today=date(2025, 3, 18),
        )
        step = CaseStep.get((CaseStep.case == c2) & (CaseStep.key == "L1"))
        CaseStep.update(status="failed", error="no address").where(CaseStep.id == step.id).execute()
        CaseTask.create(
            case=c2, kind="send_failed:L1", title_zh="第1级 提醒各渠道均发送失败", title_en="L1 failed", created_ms=at
        )
    return c1, c2


def test_the_queue_lists_each_kind_of_work_in_order_with_counts_and_links(app, login):
    c1, c2 = add_work(app)
    page = login("admin").get("/").get_data(as_text=True)
    s = sections(page)
    assert count(s["replies"]) == 1 and f'href="/cases/{c1.id}"' in s["replies"]
    assert "员工回复了通知" in s["replies"] and "原因：病假；说明：发烧住院" in s["replies"]
    assert "核实后确认原因、登记假期或结案" in s["replies"]
    assert count(s["approvals"]) == 2 and s["approvals"].count("审批催告函（批准后发出）") == 2
    assert [k.split(":")[0] for k in keys(s["approvals"])] == ["gate", "gate"]
    # tasks: the overdue welfare check first (days left), the one due today next, then the undated EMS tasks
    tasks = s["tasks"]
    assert count(tasks) == 4
    assert tasks.index("逾期 12 天") < tasks.index("今天到期") < tasks.index("无期限")
    assert "福利核查" in tasks and "2025-03-06 23:30" in tasks, "the due time in the plant's zone"
    assert count(s["sends"]) == 1 and f'data-case="{c2.id}"' in s["sends"]
    assert "第1级 提醒 发送失败" in s["sends"] and "核对联系方式后在案件页手动重发" in s["sends"]
    assert count(s["new-cases"]) == 1 and "新案件：假期结束未返岗，自 2025-03-13 起" in s["new-cases"]
    assert 'id="nav-devices"' in page and 'href="/devices"' in page
    assert '<meta http-equiv="refresh" content="60">' in page, "left open, the queue shows new work within a minute"
    english = login("admin").get("/?lang=en").get_data(as_text=True)
    assert "Replies from employees" in english and "12 days overdue" in english and "resend by hand" in english


def test_an_empty_section_says_so_in_one_line(app, login):
    s = sections(login("admin").get("/").get_data(as_text=True))
    assert count(s["replies"]) == 0 and '<p class="muted empty">没有待审核的员工回复。</p>' in s["replies"]
    assert "<table>" not in s["replies"] and "<table>" not in s["sends"]
    assert '<p class="muted empty">没有发送失败或结果不明的通知。</p>' in s["sends"]


def test_an_approval_waits_only_for_those_who_have_not_given_it(app, login):
    case = the_case("2001")
    with database.connection_context():
        gate = Gate.get(Gate.case == case)
        Gate.update(required=2).where(Gate.id == gate.id).execute()
        GateApproval.create(gate=gate, by="staff2", at_ms=gate.opened_ms + 1)
    mine = sections(login("staff2").get("/").get_data(as_text=True))["approvals"]
    theirs = sections(login("staff").get("/").get_data(as_text=True))["approvals"]
    assert count(mine) == 1 and f'data-case="{case.id}"' not in mine
    assert count(theirs) == 2 and "确认" not in theirs and "（已 1/2 人）" in theirs


def test_a_plant_manager_sees_their_plant_and_no_approvals(app, login):
    c1, c2 = add_work(app)
    s = sections(login("pm1").get("/").get_data(as_text=True))
    assert f'data-case="{c2.id}"' not in "".join(s.values()), "3001 is at p2"
    assert count(s["replies"]) == 1 and count(s["sends"]) == 0 and count(s["tasks"]) == 2
    assert count(s["approvals"]) == 0 and "审批由人事负责，您的角色无需审批。" in s["approvals"]


def test_new_cases_stay_until_marked_seen(app, login):
    browser = login("admin")
    assert count(sections(browser.get("/").get_data(as_text=True))["new-cases"]) == 1
    assert count(sections(browser.get("/").get_data(as_text=True))["new-cases"]) == 1, "a reload loses nothing"
    response = browser.post("/queue/seen")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    s = sections(browser.get("/").get_data(as_text=True))
    assert count(s["new-cases"]) == 0 and "自上次查看以来没有新案件。" in s["new-cases"]
    other = sections(login("staff").get("/").get_data(as_text=True))
    assert count(other["new-cases"]) == 1, "each person's own 'seen'"


def test_the_appliances_and_sync_are_on_the_devices_page(app, login):
    page = login("admin").get("/devices").get_data(as_text=True)
    assert 'id="plants"' in page and 'data-appliance="p1/pi-01"' in page and 'data-appliance="p2/pi-02"' in page
    assert 'id="punches"' in page and 'class="punch"' in page and 'id="nav-devices" class="on"' in page
    heads = re.findall(r'class="head-seq" data-seq="(\d+)">(\d+) 条<', page)
    assert heads and all(int(n) == int(seq) + 1 for seq, n in heads), "the verified log's length, no raw 'seq'"
    assert 'data-appliance="p2/pi-02"' not in login("pm1").get("/devices").get_data(as_text=True)
    assert 'data-appliance="' not in login("admin").get("/").get_data(as_text=True), "not on the first page"


def test_hr_sees_the_queue_first_in_chromium_at_office_and_laptop_sizes(app):
    c1, c2 = add_work(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    sizes = {"office": (1920, 1080), "laptop": (1366, 768)}
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
            page.goto(f"http://127.0.0.1:{server.server_port}/login")
            sign_in(page, "admin", PASSWORD)
            page.locator("section#replies").wait_for(state="visible", timeout=15_000)
            assert page.url.endswith("/"), "signed in, HR lands on the work queue"
            for label, (width, height) in sizes.items():
                page.set_viewport_size({"width": width, "height": height})
                heads = page.locator("section.queue h2").all_inner_texts()
                assert [h.split()[0] for h in heads] == [
                    "员工回复（待审核）",
                    "待您审批",
                    "今日到期及逾期的待办",
                    "发送失败或结果不明",
                    "新案件",
                ], heads
                assert page.evaluate("document.documentElement.scrollWidth") <= width, f"no sideways scroll ({label})"
                first = page.locator(f"section#replies tr.item[data-case='{c1.id}']").bounding_box()
                assert first is not None and first["y"] + first["height"] <= height, f"the reply in view ({label})"
                due = page.locator("section#tasks td.left.bad").first
                assert due.inner_text() == "逾期 12 天"
            shoot(page, "work-queue", sizes)
            page.locator(f"section#sends tr.item[data-case='{c2.id}'] a").first.click()
            page.wait_for_url(f"**/cases/{c2.id}", timeout=15_000)
    finally:
        server.shutdown()
