"""The facts a notice states, as data: who, what happened, on which rule, what is demanded, by when.

The escalation engine fills these from the case; templates only arrange them. Dates are plant-local calendar
dates; the deadline is an aware datetime shown in the plant's zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class Employer:
    name: str  # 用人单位全称, as on the seal
    address: str
    contact_person: str  # 联系人
    contact_phone: str
    short_name: str = ""  # for SMS, e.g. 某某电子
    credit_code: str = ""  # 统一社会信用代码
    union_name: str = ""  # 工会委员会 name, when the employer has a union


@dataclass(frozen=True)
class Employee:
    name: str
    employee_no: str  # 工号
    id_last4: str  # 身份证号后四位
    department: str
    position: str
    contract_no: str = ""  # 劳动合同编号
    contract_term: str = ""  # 合同期限, e.g. 2024-03-01 至 2027-02-28
    hired_on: date | None = None
    service_address: str = ""  # 劳动合同约定的送达地址


@dataclass(frozen=True)
class HandbookRule:
    """The handbook clause relied on, with the version and the evidence of its 民主程序 and 公示."""

    clause: str  # e.g. 第五章第十二条
    text: str  # the clause as adopted
    version: str  # e.g. 2025 版（v3）
    adopted_on: date  # 职工代表大会/全体职工讨论、与工会平等协商确定的日期
    published_on: date  # 公示或告知劳动者的日期
    title: str = "员工手册"


@dataclass(frozen=True)
class ContactMade:
    """One earlier attempt to reach the worker, as the contact log shows it."""

    at: str  # local time as shown, e.g. 2026-03-04 09:12
    channel: str  # 电话、短信、企业微信、EMS …
    result: str  # 关机、未接、已送达、未读 …


@dataclass(frozen=True)
class NoticeFacts:
    doc_no: str  # 文号
    issued_on: date
    employer: Employer
    employee: Employee
    absent_days: tuple[date, ...] = ()  # scheduled working days absent, in order
    leave_ended_on: date | None = None  # the leave that ended without a return, if any
    handbook: HandbookRule | None = None
    contract_clause: str = ""  # 劳动合同第X条
    contacts: tuple[ContactMade, ...] = ()
    deadline: datetime | None = None  # 返岗/说明 deadline (aware)
    report_to: str = ""  # 报到地点
    reply_how: str = ""  # how to explain or reply: phone, link, in person
    reply_link: str = ""  # the H5 link to read and acknowledge the notice
    defence_days: int = 0  # 申辩期限 (days) of the 旷工通知书
    earlier_notices: tuple[str, ...] = ()  # 催告 already given: "2026-03-05 催告函（EMS 妥投 2026-03-07）"
    union_notified_on: date | None = None
    union_opinion: str = ""  # the union's view and how it was handled
    union_reply_days: int = 0
    termination_date: date | None = None  # 解除日期 (or proposed, in the union letter)
    termination_effective: str = "本通知送达之日"
    settlement: str = ""  # 工资结算及支付安排
    years_of_service: str = ""  # 本单位工作年限 (解除证明)
    service_methods: tuple[str, ...] = ()  # 送达方式: EMS 至合同约定地址、短信、电子邮件 …
    draft: bool = False  # marked 草稿 until HR confirms (解除通知书)
    extra: dict[str, str] = field(default_factory=dict)
