"""``[notices]`` of the cloud's TOML: the employer's facts every notice states, and head office's own addresses.

The employer's name, address and contact person are printed on each notice; the HR and union addresses are
where the ladder's ``hr`` and ``union`` recipients are reached (an employee's own addresses come from HR's
master data). Nothing here is secret.

    [notices]
    employer = "东莞市某某电子有限公司"   short_name = "某某电子"   address = "..."
    contact_person = "王敏（人力资源部）"  contact_phone = "0769-8888 1234"  union = "...工会委员会"
    link_base = "https://hr.example.cn"  link_days = 60  report_to = "人力资源部（行政楼二楼）"
    hr_email = "hr@factory.cn"  hr_phone = "+8613..."  hr_wecom = "wangmin"  union_email = "union@factory.cn"
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class NoticeSettings:
    employer: str = ""
    short_name: str = ""
    address: str = ""
    contact_person: str = ""
    contact_phone: str = ""
    credit_code: str = ""
    union: str = ""  # the 工会委员会's name; empty: the employer has no union
    link_base: str = ""  # where the notices' read-and-acknowledge links point
    link_days: int = 60  # how long a notice's link opens after it is issued
    doc_prefix: str = "人通"  # 文号: {doc_prefix}〔{year}〕{case}-{step}
    report_to: str = "人力资源部"
    reply_how: str = ""  # default: 电话 {contact_phone} 或下方链接
    contract_clause: str = "有关考勤与请假的约定"
    defence_days: int = 3
    ems_allowance_days: int = 3  # no longer read: the policy's deadlines.service_allowance_days (kept for old TOMLs)
    settlement: str = "工资结算至解除之日，于次月发薪日前支付至您的工资卡"
    kuanggong_handling: str = "按《员工手册》记旷工"
    hr_email: str = ""
    hr_phone: str = ""
    hr_wecom: str = ""
    hr_dingtalk: str = ""
    hr_address: str = ""
    union_email: str = ""
    union_phone: str = ""
    union_wecom: str = ""
    union_dingtalk: str = ""
    union_address: str = ""

    @property
    def how_to_reply(self) -> str:
        return self.reply_how or f"电话 {self.contact_phone} 或下方链接"


REQUIRED = ("employer", "address", "contact_person", "contact_phone", "link_base")


def parse(table: Any) -> tuple[NoticeSettings, list[str]]:
    if not isinstance(table, dict):
        return NoticeSettings(), ["[notices]: must be a table"]
    spec = {f.name: f.type for f in fields(NoticeSettings)}
    problems, values = [], {}
    for key, value in table.items():
        kind = spec.get(key)
        if kind is None:
            problems.append(f"notices.{key}: unknown key")
        elif type(value).__name__ != kind:
            problems.append(f"notices.{key}: expected {kind}, got {type(value).__name__}")
        else:
            values[key] = value
    problems += [f"notices.{key}: missing (every notice states it)" for key in REQUIRED if not table.get(key)]
    return NoticeSettings(**values), problems
