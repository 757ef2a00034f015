"""The notice templates, zh-CN, each with an id and a version.

A wording, once used, is evidence: a notice must be reproducible from (template id, version, facts). So a
template's text never changes in place — new wording is a new version, added beside the old one
(tests/cloud/notices pins each version's digest, so an edit in place fails). ``required`` lists the facts a
notice cannot go out without (ESCALATION.md §3.3); rendering refuses when one is missing.

All wording here is a draft for a labour lawyer's review.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

_IDENTITY = (
    "{{ e.name }}（工号：{{ e.employee_no }}；身份证号后四位：{{ e.id_last4 }}；"
    "部门/岗位：{{ e.department }}/{{ e.position }}）"
)
_RULE = (
    "《{{ h.title }}》{{ h.clause }}（{{ h.version }}，经民主程序于{{ h.adopted_on|d }}通过，"
    "于{{ h.published_on|d }}公示）"
)
_DAYS = "{{ f.absent_days|dates }}（共 {{ f.absent_days|length }} 个工作日）"
_CONTACTS = "{% for c in f.contacts %}  {{ loop.index }}. {{ c.at }}，{{ c.channel }}，{{ c.result }}；\n{% endfor %}"
_EARLIER = "{% for n in f.earlier_notices %}  {{ loop.index }}. {{ n }}；\n{% endfor %}"
_CONTACT_US = "联系人：{{ r.contact_person }}；联系电话：{{ r.contact_phone }}；地址：{{ r.address }}。"
_SERVICE = "送达方式：{{ f.service_methods|join('、') }}。"
_SMS_HEAD = "【{{ r.short_name or r.name }}】{{ e.name }}："


@dataclass(frozen=True)
class NoticeTemplate:
    id: str
    version: str
    title: str
    body: str  # Jinja2, plain text; paragraphs separated by blank lines
    sms: str  # Jinja2, one short line that ends with the link
    required: tuple[str, ...]  # facts that must be present (dotted paths into NoticeFacts)
    name_en: str = ""
    required_with_union: tuple[str, ...] = ()  # also required when the employer has a union

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def digest(self) -> str:
        """SHA-256 of everything that makes the wording: pinned per version by the tests."""
        parts = [
            self.id,
            self.version,
            self.title,
            self.body,
            self.sms,
            list(self.required),
            list(self.required_with_union),
        ]
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


CUIGAO_1 = NoticeTemplate(
    id="cuigao",
    version="1",
    name_en="Notice to return to work by a deadline (demand letter)",
    title="关于限期返岗的通知（催告函）",
    required=(
        "doc_no",
        "issued_on",
        "absent_days",
        "handbook",
        "contract_clause",
        "deadline",
        "report_to",
        "reply_how",
        "reply_link",
        "service_methods",
    ),
    body=_IDENTITY + "：\n\n"
    "{% if f.leave_ended_on %}您的假期已于{{ f.leave_ended_on|d }}届满。{% endif %}"
    "自{{ f.absent_days[0]|d }}起，您未到岗上班、未打卡，也未办理请假或续假手续。截至本通知发出之日，"
    "您按排班应出勤而未出勤的工作日为：" + _DAYS + "。\n\n"
    "{% if f.contacts %}本单位已通过以下方式与您联系，均未取得您的答复：\n" + _CONTACTS + "\n{% endif %}"
    "依据劳动合同{{ f.contract_clause }}及" + _RULE + "：“{{ h.text }}”\n\n"
    "现通知您：请于{{ f.deadline|dt }}前到{{ f.report_to }}报到上班；如有正当理由不能按时返岗，请在此期限前"
    "通过{{ f.reply_how }}说明原因，并提交相关证明材料（如病假证明、医疗机构诊断证明等）。\n\n"
    "逾期未返岗且无正当理由的，本单位将依据《{{ h.title }}》{{ h.clause }}认定旷工，"
    "并可能依据《中华人民共和国劳动合同法》第三十九条第（二）项解除与您的劳动合同。\n\n"
    "如您遭遇意外、疾病或其他困难，请您本人或家属尽快与本单位联系，本单位将依法妥善处理。\n\n"
    + _CONTACT_US
    + "\n请通过以下链接阅读本通知全文并确认收到：{{ f.reply_link }}\n"
    + _SERVICE,
    sms=_SMS_HEAD + "您自{{ f.absent_days[0]|d }}起未到岗，请于{{ f.deadline|dt }}前返岗或说明原因，"
    "逾期将按规章制度处理。通知全文：{{ f.reply_link }}",
)

CUIGAO_2 = NoticeTemplate(
    id="cuigao",
    version="2",
    name_en="Notice to return to work by a deadline; when issued again, the deadline it replaces is named",
    title=CUIGAO_1.title,
    required=CUIGAO_1.required,
    body=CUIGAO_1.body.replace(
        "现通知您：",
        "{% if f.earlier_notices %}本单位此前已向您发出：\n" + _EARLIER + "因上述通知实际送达您的时间晚于预计，"
        "本单位将返岗期限顺延如下，此前通知所载期限不再适用。\n\n{% endif %}现通知您：",
    ).replace("请于{{ f.deadline|dt }}前到", "请于{{ f.deadline|dt }}前（期限末日遇休息日、法定节假日已顺延）到"),
    sms=CUIGAO_1.sms.replace("请于", "{% if f.earlier_notices %}返岗期限已顺延，{% endif %}请于"),
)

KUANGGONG_1 = NoticeTemplate(
    id="kuanggong",
    version="1",
    name_en="Notice of recorded absenteeism",
    title="旷工通知书",
    required=(
        "doc_no",
        "issued_on",
        "absent_days",
        "handbook",
        "earlier_notices",
        "defence_days",
        "reply_how",
        "reply_link",
        "service_methods",
        "extra.attendance_source",
        "extra.handling",
    ),
    body=_IDENTITY + "：\n\n"
    "经核查考勤记录，您在以下按排班应出勤的工作日未到岗、未打卡，亦未办理请假手续：" + _DAYS + "。"
    "考勤记录来源：{{ f.extra.attendance_source }}。\n\n"
    "本单位此前已向您发出催告：\n" + _EARLIER + "催告期限届满，您未返岗，也未提出正当理由。\n\n"
    "依据" + _RULE + "：“{{ h.text }}”，上述 {{ f.absent_days|length }} 个工作日认定为旷工。"
    "处理：{{ f.extra.handling }}。\n\n"
    "如您对上述事实有异议，请于本通知送达之日起 {{ f.defence_days }} 日内，通过{{ f.reply_how }}"
    "提出书面申辩并提交证据；逾期未申辩的，视为您对上述事实无异议。\n\n"
    + _CONTACT_US
    + "\n请通过以下链接阅读本通知全文并确认收到：{{ f.reply_link }}\n"
    + _SERVICE,
    sms=_SMS_HEAD + "经核查，您{{ f.absent_days[0]|d }}至{{ f.absent_days[-1]|d }}共{{ f.absent_days|length }}个工作日"
    "未到岗，已认定旷工；如有异议请于{{ f.defence_days }}日内申辩。通知全文：{{ f.reply_link }}",
)

JIECHU_1 = NoticeTemplate(
    id="jiechu",
    version="1",
    name_en="Notice of termination of the labour contract",
    title="解除劳动合同通知书",
    required=(
        "doc_no",
        "issued_on",
        "absent_days",
        "handbook",
        "earlier_notices",
        "employee.contract_no",
        "employee.contract_term",
        "termination_effective",
        "settlement",
        "reply_link",
        "service_methods",
    ),
    required_with_union=("union_notified_on", "union_opinion"),
    body=_IDENTITY + "（劳动合同编号：{{ e.contract_no }}；合同期限：{{ e.contract_term }}）：\n\n"
    "您自{{ f.absent_days[0]|d }}起未到岗，至{{ f.absent_days[-1]|d }}累计旷工 {{ f.absent_days|length }} 个工作日"
    "（{{ f.absent_days|dates }}）。本单位已向您发出催告：\n"
    + _EARLIER
    + "您在催告期限届满后仍未返岗，且未提出正当理由。\n\n"
    "上述行为违反" + _RULE + "：“{{ h.text }}”，属于严重违反用人单位规章制度。依据《中华人民共和国劳动合同法》"
    "第三十九条第（二）项，本单位决定解除与您的劳动合同，解除日期为{{ f.termination_effective }}"
    "{% if f.termination_date %}（{{ f.termination_date|d }}）{% endif %}。\n\n"
    "{% if r.union_name %}依据《中华人民共和国劳动合同法》第四十三条，本单位已于{{ f.union_notified_on|d }}"
    "将解除理由事先通知{{ r.union_name }}；工会意见及处理情况：{{ f.union_opinion }}。\n\n{% endif %}"
    "后续事项：\n"
    "  1. 工资结算：{{ f.settlement }}；\n"
    "  2. 本单位将在解除劳动合同时为您出具解除劳动合同证明；\n"
    "  3. 本单位将在解除之日起十五日内为您办理档案和社会保险关系转移手续；\n"
    "  4. 您可依法申领失业保险待遇，本单位将按规定将您的名单报送社会保险经办机构；\n"
    "  5. 请您办理工作交接，归还本单位财物（工牌、工具、宿舍钥匙等）。\n\n"
    + _CONTACT_US
    + "\n请通过以下链接阅读本通知全文并确认收到：{{ f.reply_link }}\n"
    + _SERVICE,
    sms=_SMS_HEAD + "本单位已依法解除与您的劳动合同，请查看《解除劳动合同通知书》全文并办理交接：{{ f.reply_link }}",
)

JIECHU_ZHENGMING_1 = NoticeTemplate(
    id="jiechu_zhengming",
    version="1",
    name_en="Certificate of termination of the labour contract",
    title="解除劳动合同证明",
    required=(
        "doc_no",
        "issued_on",
        "employee.contract_term",
        "employee.hired_on",
        "termination_date",
        "years_of_service",
        "reply_link",
    ),
    body="兹证明 {{ e.name }}（身份证号后四位：{{ e.id_last4 }}；工号：{{ e.employee_no }}）"
    "与本单位签订的劳动合同（{% if e.contract_no %}编号：{{ e.contract_no }}；{% endif %}"
    "合同期限：{{ e.contract_term }}）已于{{ f.termination_date|d }}解除。\n\n"
    "该员工于{{ e.hired_on|d }}入职，在本单位的工作岗位为{{ e.department }}{{ e.position }}，"
    "在本单位的工作年限为{{ f.years_of_service }}。\n\n"
    "特此证明。\n\n"
    "（本证明依据《中华人民共和国劳动合同法》第五十条及《中华人民共和国劳动合同法实施条例》第二十四条出具。）",
    sms=_SMS_HEAD + "您的《解除劳动合同证明》已出具，请查看或领取：{{ f.reply_link }}",
)

UNION_LETTER_1 = NoticeTemplate(
    id="union_letter",
    version="1",
    name_en="Letter notifying the union of the reasons for a termination (Labour Contract Law art. 43)",
    title="关于拟解除劳动合同事先通知工会的函",
    required=(
        "doc_no",
        "issued_on",
        "employer.union_name",
        "absent_days",
        "handbook",
        "earlier_notices",
        "termination_date",
        "union_reply_days",
        "reply_link",
    ),
    body="{{ r.union_name }}：\n\n"
    "依据《中华人民共和国劳动合同法》第四十三条，本单位拟单方解除与下列员工的劳动合同，现将理由事先通知贵会。\n\n"
    "拟解除对象：" + _IDENTITY + "{% if e.contract_no %}，劳动合同编号：{{ e.contract_no }}{% endif %}。\n\n"
    "事实：该员工自{{ f.absent_days[0]|d }}起未到岗，累计旷工 {{ f.absent_days|length }} 个工作日"
    "（{{ f.absent_days|dates }}）。本单位已催告：\n" + _EARLIER + "催告期限届满，该员工未返岗，亦未提出正当理由。\n\n"
    "依据：《中华人民共和国劳动合同法》第三十九条第（二）项；" + _RULE + "：“{{ h.text }}”\n\n"
    "拟解除日期：{{ f.termination_date|d }}。\n\n"
    "请贵会于收到本函之日起 {{ f.union_reply_days }} 个工作日内提出书面意见。贵会认为本单位违反法律、行政法规"
    "或者劳动合同约定的，有权要求本单位纠正；本单位将研究贵会的意见，并将处理结果书面通知贵会。\n\n"
    + _CONTACT_US
    + "\n本函电子版及回执：{{ f.reply_link }}",
    sms="【{{ r.short_name or r.name }}】{{ r.union_name }}：本单位拟解除与{{ e.name }}的劳动合同，"
    "依法事先通知工会，函件全文：{{ f.reply_link }}",
)

GONGGAO_1 = NoticeTemplate(
    id="gonggao",
    version="1",
    name_en="Public notice (service by publication, deemed served after 30 days)",
    title="公告",
    required=(
        "doc_no",
        "issued_on",
        "absent_days",
        "contacts",
        "extra.notice_title",
        "extra.notice_doc_no",
        "extra.notice_summary",
        "reply_link",
    ),
    body=_IDENTITY + "：\n\n"
    "您自{{ f.absent_days[0]|d }}起未到岗。本单位通过以下方式向您送达《{{ f.extra.notice_title }}》"
    "（文号：{{ f.extra.notice_doc_no }}），均未能送达：\n" + _CONTACTS + "\n"
    "现依法向您公告送达。该文件的主要内容为：{{ f.extra.notice_summary }}\n\n"
    "自本公告发布之日起经过三十日，即视为送达。请您在此期间与本单位联系，领取上述文件原件；"
    "文件全文亦可通过以下链接查阅：{{ f.reply_link }}\n\n" + _CONTACT_US,
    sms=_SMS_HEAD + "本单位已就《{{ f.extra.notice_title }}》向您公告送达，请查看：{{ f.reply_link }}",
)

REMINDER_1 = NoticeTemplate(
    id="reminder",
    version="1",
    name_en="Reminder to the worker after a missed shift",
    title="未到岗提醒",
    required=("doc_no", "issued_on", "absent_days", "reply_how", "reply_link"),
    body=_IDENTITY + "：\n\n"
    "您{{ f.absent_days[-1]|d }}按排班应出勤，但未到岗、未打卡，本单位也未收到您的请假申请。"
    "请尽快到岗；如有特殊情况（生病、意外、家中急事等），请通过{{ f.reply_how }}告知本单位。\n\n"
    + _CONTACT_US
    + "\n{{ f.reply_link }}",
    sms=_SMS_HEAD + "您{{ f.absent_days[-1]|d }}未到岗打卡，也未请假。请尽快到岗，或致电{{ r.contact_phone }}"
    "说明情况：{{ f.reply_link }}",
)

WARNING_1 = NoticeTemplate(
    id="warning",
    version="1",
    name_en="Absence warning to the manager and HR",
    title="员工缺勤预警",
    required=("doc_no", "issued_on", "absent_days", "reply_link"),
    body="{{ e.department }} {{ e.name }}（工号：{{ e.employee_no }}；岗位：{{ e.position }}）自"
    "{{ f.absent_days[0]|d }}起按排班应出勤而未出勤的工作日：" + _DAYS + "。员工本人至今未回复。\n\n"
    "请核实情况（是否已请假、生病或发生意外），联系其本人，并在系统中登记结果（确认原因或补录假期）。"
    "如无人处理，系统将按《员工手册》规定的程序继续升级。\n\n案件：{{ f.reply_link }}",
    sms="【{{ r.short_name or r.name }}】缺勤预警：{{ e.department }} {{ e.name }}（{{ e.employee_no }}）已缺勤 "
    "{{ f.absent_days|length }} 个工作日，请核实并登记：{{ f.reply_link }}",
)

WELFARE_1 = NoticeTemplate(
    id="welfare",
    version="1",
    name_en="Request to the emergency contact (welfare check)",
    title="紧急联系人联络函",
    required=("doc_no", "issued_on", "absent_days", "reply_link"),
    body="您好：\n\n您是{{ e.name }}在{{ r.name }}登记的紧急联系人。{{ e.name }}自{{ f.absent_days[0]|d }}起"
    "未到岗，本单位一直无法与其取得联系，担心其安全。请您尽快与其联系，并请其本人或您致电"
    "{{ r.contact_phone }}（{{ r.contact_person }}）告知情况。\n\n谢谢您的帮助。",
    sms="【{{ r.short_name or r.name }}】您好，您是{{ e.name }}的紧急联系人。其自{{ f.absent_days[0]|d }}起未到岗且"
    "联系不上，请协助联系并致电{{ r.contact_phone }}告知情况。",
)

TEMPLATES: dict[str, NoticeTemplate] = {
    t.key: t
    for t in (
        CUIGAO_1,
        CUIGAO_2,
        KUANGGONG_1,
        JIECHU_1,
        JIECHU_ZHENGMING_1,
        UNION_LETTER_1,
        GONGGAO_1,
        REMINDER_1,
        WARNING_1,
        WELFARE_1,
    )
}


class UnknownTemplate(Exception):
    pass


def get(template_id: str, version: str | None = None) -> NoticeTemplate:
    """A template by id and version; without a version, the newest of that id."""
    if version is not None:
        try:
            return TEMPLATES[f"{template_id}@{version}"]
        except KeyError as err:
            raise UnknownTemplate(f"no notice template {template_id} version {version}") from err
    versions = [t for t in TEMPLATES.values() if t.id == template_id]
    if not versions:
        raise UnknownTemplate(f"no notice template {template_id}")
    return max(versions, key=lambda t: int(t.version))
