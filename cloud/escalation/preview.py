"""What a gate would release, as it would go out now: the notice rendered from the same template and facts the
sender uses (``outbound.OutboundSender._notice``), marked 草稿/预览，未发出, and never recorded.

A preview is the step the gate releases planned for this moment (``planned_ms`` = now), with the deadline the
engine would print: the one stored on the case, else the one it would set on issuing it
(``cases.stated_deadline``, the function ``cases.issue_deadline`` stores from). Nothing here writes: no contact
log entry, no kept notice, no deadline stored, so a person can look as often as they like.

Rendering a notice embeds a font subset (seconds each), so a rendered preview is kept in memory by the exact
facts it states: a page shown again, or its PDF fetched, renders nothing twice; facts that changed render anew.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cloud.escalation import actions, casefiles, cases, machine, notice_facts, workdays
from cloud.escalation.cases import policy_of
from cloud.escalation.models import AbsenceCase, CaseDay, CaseStep
from cloud.escalation.outbound import missing_fact
from cloud.escalation.policy import NOTICE_NAMES, PolicyVersion
from cloud.escalation.sender import NoticeUnrenderable, PlannedStep
from cloud.notices import templates
from cloud.notices.facts import NoticeFacts
from cloud.notices.render import MissingFacts, RenderedNotice, render_notice
from cloud.notices.settings import NoticeSettings
from cloud.report_font import CjkFont, ReportFontMissing, find_font

MARK = "（草稿/预览，未发出）"  # added to the title: on the text's first line and the PDF's heading
GATE_RELEASES = {  # what each gate lets go, in the order it goes
    "approve_cuigao": ("cuigao",),
    "confirm_termination": ("union_letter", "termination"),
}
KEYS = {"union_letter": "L6:union", "termination": "L7:termination"}  # the keys ``ladder.decide`` plans them under
UNION_PENDING = "（待工会答复：工会书面答复或答复期限届满后，据实填写）"
CACHE_SIZE = 32


class PreviewUnavailable(Exception):
    """The notice cannot be previewed (nor sent): what is missing and what to do, zh-CN first."""


@dataclass(frozen=True)
class Preview:
    notice: str  # cuigao | union_letter | termination
    step: PlannedStep
    facts: NoticeFacts
    rendered: RenderedNotice
    deadline_ms: int | None  # the 催告函's return deadline it states (None for other notices)

    @property
    def name_zh(self) -> str:
        return NOTICE_NAMES[self.notice][0]

    @property
    def name_en(self) -> str:
        return NOTICE_NAMES[self.notice][1]


def absent_days(case_id: int) -> tuple[str, ...]:
    """The counted days, as the engine hands them to the sender (``case_day`` counted, by date)."""
    return tuple(
        d
        for (d,) in CaseDay.select(CaseDay.work_date)
        .where((CaseDay.case == case_id) & (CaseDay.status == "counted"))
        .order_by(CaseDay.work_date, CaseDay.id)
        .tuples()
    )


def planned(case: AbsenceCase, notice: str, now_ms: int) -> PlannedStep:
    """The step that releases ``notice`` as the engine would hand it to the sender if it went out at ``now_ms``."""
    policy = policy_of(case)
    waiting = (
        CaseStep.select()
        .where((CaseStep.case == case) & (CaseStep.notice == notice) & (CaseStep.status == "awaiting_approval"))
        .order_by(CaseStep.id.desc())
        .first()
    )
    if waiting is not None:
        key, level, recipients, channels = waiting.key, waiting.level, waiting.recipients, waiting.channels
        step_id = waiting.id
    elif notice in KEYS:  # planned by the ladder only once the gate is approved
        key, level, step_id = KEYS[notice], 6 if notice == "union_letter" else 7, 0
        recipients = "union" if notice == "union_letter" else "employee"
        channels = ",".join(policy.union_channels if notice == "union_letter" else policy.termination_channels)
    else:
        raise PreviewUnavailable(
            f"没有待审批的{NOTICE_NAMES[notice][0]} / no {NOTICE_NAMES[notice][1]} awaits approval on this case"
        )
    deadline = case.deadline_ms
    if notice == "cuigao":  # what cases.issue_deadline would store and print if it went out now
        deadline = cases.stated_deadline(case, now_ms, case.plant.timezone)
    return PlannedStep(
        step_id=step_id,
        case_id=case.id,
        key=key,
        level=level,
        notice=notice,
        recipients=tuple(recipients.split(",")),
        channels=tuple(channels.split(",")),
        employee_id=case.employee_id,
        employee_no=case.employee.employee_no,
        plant_id=case.plant_id,
        user_id=case.user_id,
        policy=PolicyVersion.get_by_id(case.policy_id).label,
        absent_days=absent_days(case.id),
        deadline_ms=deadline,
        planned_ms=now_ms,
    )


def _facts(step: PlannedStep, case: AbsenceCase, settings: NoticeSettings) -> NoticeFacts:
    if step.notice != "union_letter" or case.union_wait_until_ms is not None:
        facts = notice_facts.build(step, case, settings)
    else:  # the union's wait the ladder would set on approval: the letter proposes the day after it
        policy, tz = policy_of(case), case.plant.timezone
        approved = AbsenceCase(**case.__data__)  # a copy, never saved
        approved.union_wait_until_ms = machine.calendar(policy, tz).union_deadline(step.planned_ms)
        facts = notice_facts.build(step, approved, settings)
    if step.notice == "termination" and facts.employer.union_name and facts.union_notified_on is None:
        # the union letter goes first, on approval (a formal notice: on a working day): the draft names that day
        # and leaves the union's reply to be filled in
        day = workdays.first_workday(workdays.local_day(step.planned_ms, case.plant.timezone))
        facts = dataclasses.replace(facts, union_notified_on=day, union_opinion=UNION_PENDING)
    return facts


def render(step: PlannedStep, case: AbsenceCase, settings: NoticeSettings, font: CjkFont) -> Preview:
    """``step``'s notice as the sender would render it now, its title marked 草稿/预览，未发出."""
    facts = _facts(step, case, settings)
    template = templates.get(notice_facts.TEMPLATE_OF[step.notice])
    marked = dataclasses.replace(template, title=template.title + MARK)
    try:
        rendered = _cached(marked, facts, font)
    except MissingFacts as err:  # said as the sender would say it: which facts, and what a person does
        zh, en = NoticeUnrenderable(step.notice, [missing_fact(path) for path in err.missing]).explain()
        raise PreviewUnavailable(f"{zh} / {en}") from err
    return Preview(step.notice, step, facts, rendered, step.deadline_ms if step.notice == "cuigao" else None)


def for_gate(
    case: AbsenceCase, kind: str, settings: NoticeSettings | None, font_config: str, now_ms: int
) -> list[Preview]:
    """Every notice the open gate ``kind`` releases, as it would go out at ``now_ms``."""
    if settings is None:
        raise PreviewUnavailable(
            "未配置 [notices]（单位名称、地址、联系人），文书无法生成：请在 cloud.toml 中配置"
            " / [notices] is not configured (employer, address, contact): no notice can be rendered"
        )
    cjk = notice_font(font_config)
    notices = [n for n in GATE_RELEASES[kind] if n != "union_letter" or policy_of(case).union_exists]
    return [render(planned(case, notice, now_ms), case, settings, cjk) for notice in notices]


@functools.lru_cache(maxsize=4)
def notice_font(configured: str) -> CjkFont:
    """The Chinese font notices embed (``[report] font``, else the system's), found once per process."""
    try:
        return find_font(configured)
    except ReportFontMissing as err:
        raise PreviewUnavailable(f"没有可嵌入文书的中文字体 / no Chinese font to render notices: {err}") from err


_rendered: OrderedDict[str, RenderedNotice] = OrderedDict()
_lock = threading.Lock()


def _cached(template: templates.NoticeTemplate, facts: NoticeFacts, font: CjkFont) -> RenderedNotice:
    """Rendered once per (template, facts, font): the same facts give the same bytes (``render``'s promise)."""
    key = hashlib.sha256(repr((template, facts, font)).encode()).hexdigest()
    with _lock:
        hit = _rendered.get(key)
        if hit is not None:
            _rendered.move_to_end(key)
            return hit
    rendered = render_notice(template, facts, font)
    with _lock:
        _rendered[key] = rendered
        while len(_rendered) > CACHE_SIZE:
            _rendered.popitem(last=False)
    return rendered


def approve(
    case_id: int,
    kind: str,
    *,
    by: str,
    now_ms: int,
    note: str = "",
    settings: NoticeSettings | None,
    font_config: str = "",
) -> bool:
    """``actions.approve`` with the notices' settings, so that the confirmation completing the termination's gate
    closes its review task naming each draft's number and the SHA-256 of its PDF (``reviewed``). Refused, nothing
    is written. Returns True when the gate is now approved."""
    return actions.approve(case_id, kind, by=by, now_ms=now_ms, note=note, notices=settings, font_config=font_config)


def reviewed(case: AbsenceCase, settings: NoticeSettings | None, font_config: str, *, by: str, now_ms: int) -> str:
    """ "已审核：《…》草稿 文号 …，PDF SHA-256 …": the drafts as the gate showed them, each kept as a case document;
    when none can be made (no [notices], no font, a fact missing), that no draft was reviewed, and why."""
    try:
        previews = for_gate(case, "confirm_termination", settings, font_config, now_ms)
    except PreviewUnavailable as err:
        return f"未审核草稿：草稿无法生成，未能预览 / no draft reviewed, none could be rendered: {err}"
    lines = []
    for p in previews:
        title = p.rendered.title.removesuffix(MARK)
        casefiles.keep(
            case.id,
            f"{title}-草稿-{p.rendered.doc_no}.pdf".replace("/", "-"),
            "application/pdf",
            p.rendered.pdf,
            by=by,
            now_ms=now_ms,
            note="确认解除时审核的草稿（预览，未发出）/ the draft reviewed on confirming (a preview, never sent)",
        )
        lines.append(f"《{title}》草稿 文号 {p.rendered.doc_no}，PDF SHA-256 {p.rendered.pdf_sha256}")
    return "已审核：" + "；".join(lines)
