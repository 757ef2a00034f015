"""No raw codes on head office's Chinese pages and in its notices (#21): every page HR and a plant manager open,
and every notice an employee gets, read in zh-CN as a person reads them, shows none of the program's identifiers
(``tests.harness.raw_codes``: snake_case, status and channel codes, English outside the English half, Python's
own text). The pages are rendered on a case that went up the ladder for real (the wired cloud of
``test_notice_link_page``: the 催告函 approved, sent by SMS, e-mail and WeCom, opened on its link, served, the
deadline past, the termination draft waiting); the case page is also read in Chromium, as HR sees it."""

from __future__ import annotations

import email
import io
import re
import threading
from datetime import timedelta
from email import policy as email_policy
from pathlib import Path

from openpyxl import load_workbook
from pypdf import PdfReader
from werkzeug.serving import make_server

from cloud.escalation import actions
from cloud.escalation.models import AbsenceCase
from cloud.escalation.policy import PolicyVersion
from cloud.evidence import export
from cloud.hr.models import Employee
from cloud.notices import render, templates
from cloud.notices.records import NoticeDocument
from cloud.web.exports import progress_shown
from tests.cloud.escalation.plantfeed import local, ms, pass_deadline, serve_cuigao
from tests.cloud.escalation.wiring import PEOPLE
from tests.cloud.web.conftest import CUIGAO_WEEK, PASSWORD, USERS
from tests.cloud.web.test_notice_link_page import sent_cuigao
from tests.harness.browser import chromium, sign_in
from tests.harness.raw_codes import has_chinese, raw_codes, visible_text

# what people typed, shown as typed: the accounts' user names (the policy was published as hr-admin, the EMS
# recorded by hr-wang) and the WeCom ids of the people a message went to
DATA = frozenset(USERS) | {"hr-admin", "hr-wang"} | set(PEOPLE.values())
PAGES = (
    "/login",
    "/",
    "/devices",
    "/cases",
    "/cases?status=all",
    "/cases/{case}",
    "/cases/{case}/injury",
    "/employees",
    "/employees/{employee}",
    "/import",
    "/policy",
    "/policy/{policy}",
    "/policy/new",
    "/reports",
    "/evidence",
    "/accounts",
    "/no/such/page",  # the 404 page
)


def pdf_text(data: bytes) -> str:
    # a line wraps anywhere in Chinese text, a link included: lines are joined as they were before the wrap
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).replace("\n", "")


def codes_on_pages(site, case: AbsenceCase) -> dict[str, list[str]]:
    admin = site.login("admin")
    ids = {
        "case": case.id,
        "employee": Employee.get(Employee.name == "张三").id,
        "policy": PolicyVersion.select().order_by(PolicyVersion.id.desc()).first().id,
    }
    found = {}
    for path in PAGES:
        response = admin.get(path.format(**ids))
        assert response.status_code in (200, 404), (path, response.status_code)
        text = visible_text(response.get_data(as_text=True))
        assert has_chinese(text), (path, text[:300])
        found[path] = raw_codes(text, DATA)
    # the monthly report HR downloads from /reports: its sheet, and its legend but the legend's English column
    report = load_workbook(io.BytesIO(admin.get("/reports/attendance.xlsx?plant=p1&month=2025-03").data))
    month, legend = report.worksheets
    cells = [*month.iter_rows(values_only=True), *legend.iter_rows(max_col=2, values_only=True)]
    found["/reports/attendance.xlsx"] = raw_codes("\n".join(" ".join(str(v) for v in row if v) for row in cells), DATA)
    return found


def shown_in_chromium(site, path: str) -> str:
    """What ``path`` shows a person signed in as HR in Chromium: the English halves and the marked data left out."""
    server = make_server("127.0.0.1", 0, site.app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
            page.goto(f"http://127.0.0.1:{server.server_port}/login")
            sign_in(page, "staff", PASSWORD)
            page.goto(f"http://127.0.0.1:{server.server_port}{path}")
            return page.evaluate(
                "() => { const copy = document.body.cloneNode(true);"
                " copy.querySelectorAll('[lang^=en], [translate=no], script, style').forEach(e => e.remove());"
                " document.body.replaceWith(copy); return document.body.innerText; }"
            )
    finally:
        server.shutdown()


def test_pages_and_notices_of_a_case_up_the_ladder_show_no_codes(site):
    case, token = sent_cuigao(site)
    # the case page in Chromium once the 催告函 went out: its timeline (who, which channel, what came of it), steps,
    # the EMS task for a person
    shown = shown_in_chromium(site, f"/cases/{case.id}")
    assert "短信" in shown and "阿里云短信" in shown and "EMS" in shown, shown[:500]
    problems = {"/cases/{case} in Chromium": raw_codes(shown, DATA)}
    opened = site.app.test_client().get(f"/n/{token}")  # the employee reads the 催告函 on its link
    problems["/n/<token>"] = raw_codes(visible_text(opened.get_data(as_text=True)), DATA)
    wrong = site.app.test_client().get("/n/" + "A" * 22)
    problems["/n/<wrong token>"] = raw_codes(visible_text(wrong.get_data(as_text=True)), DATA)

    serve_cuigao(site.clock, case.id, local(CUIGAO_WEEK + timedelta(days=4), "10:00"))
    if AbsenceCase.get_by_id(case.id).welfare == "open":
        actions.close_welfare(case.id, "none_found", by="staff", now_ms=ms(site.clock.now()), note="无人接听")
    pass_deadline(site.clock, site.engine(), case.id)
    assert AbsenceCase.get_by_id(case.id).level == 5  # the termination draft waits: its previews are on the page
    problems.update(codes_on_pages(site, case))

    for notice in NoticeDocument.select():
        for part, text in (("text", notice.text), ("sms", notice.sms_text), ("pdf", pdf_text(notice.pdf))):
            problems[f"notice {notice.template_id} {part}"] = raw_codes(text, DATA)
    for envelope in site.wired.mailbox.envelopes:
        message = email.message_from_bytes(envelope.content, policy=email_policy.default)
        body = message.get_body(preferencelist=("plain",)).get_content()
        problems[f"mail {message['Subject']}"] = raw_codes(f"{message['Subject']}\n{body}", DATA)
    assert {where: codes for where, codes in problems.items() if codes} == {}


def test_every_notice_templates_own_words_and_its_pdf_footer_read_without_codes():
    """Every version of every template, each branch of it: its literal words (the facts put in are the people's
    data) and the footer its PDF prints on each page (the case above renders and reads the PDFs themselves)."""
    for key, template in templates.TEMPLATES.items():
        words = re.sub(r"{{.*?}}|{%.*?%}", " ", "\n".join((template.title, template.body, template.sms)), flags=re.S)
        footer = render.footer_of(template, "X").replace("{page}", "1").replace("{nb}", "1")
        assert raw_codes(words) == [], (key, words)
        assert raw_codes(footer) == [], (key, footer)


def test_the_evidence_exports_progress_reads_in_chinese_on_the_job_page():
    """Each progress line the export says (in English, for the log and the CLI) has its Chinese on the job page."""
    said = re.findall(r'progress\(f?"([^"]*)"\)', Path(export.__file__).read_text(encoding="utf-8"))
    assert len(said) >= 8, said
    for message in said:
        line = "    1.2s " + re.sub(r"{[^}]*}", "p1-01", message)  # what the export puts in: data
        (shown,) = progress_shown([line], "zh")
        assert has_chinese(shown) and raw_codes(shown) == [], (message, shown)


def test_the_checker_finds_what_the_reviewer_saw_and_passes_words_and_data():
    reviewer_saw = (
        "日结论 2025-03-03 A：missing\n渠道 sms,wecom\n暂缓 cuigao_sent,deadline_passed\napprove_cuigao\nwarning 第1版"
    )
    assert raw_codes(reviewer_saw) == [
        "missing",
        "sms",
        "wecom",
        "cuigao_sent",
        "deadline_passed",
        "approve_cuigao",
        "warning",
    ]
    assert raw_codes("KeyError: 'x'\n{'a': None}") == ["KeyError", "{'", "None"]
    # codes holding a digit, which passed as data before (the case timeline said "政策 */v1")
    assert raw_codes("政策 */v1\n第3级 L3:welfare\n模板 reminder@1\n级别 L2") == [
        "*/v1",
        "L3:welfare",
        "reminder@1",
        "L2",
    ]
    fine = "页面不存在 / Page not found\n文号 BJ-2025-031 · 工号 2001 · PDF · 张三 zhangsan@example.cn https://hr.example.cn/n/x"
    assert raw_codes(fine) == []
    assert raw_codes("账号 staff", {"staff"}) == []
    html = '<p>短信</p><p lang="en">SMS</p><span translate="no">sha_256</span><script>var a_b = 1;</script>'
    assert visible_text(html) == "短信"
