"""The facts of the seed case (a sick leave ends, the worker does not come back), for notice tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from cloud.notices.facts import ContactMade, Employee, Employer, HandbookRule, NoticeFacts

SHANGHAI = ZoneInfo("Asia/Shanghai")
EMPLOYER = Employer(
    name="东莞市某某电子有限公司",
    short_name="某某电子",
    address="广东省东莞市长安镇振安路 88 号",
    contact_person="王敏（人力资源部）",
    contact_phone="0769-8888 1234",
    union_name="东莞市某某电子有限公司工会委员会",
)
EMPLOYEE = Employee(
    name="张三",
    employee_no="1001",
    id_last4="123X",
    department="装配二车间",
    position="操作工",
    contract_no="HT-2024-0317",
    contract_term="2024年3月1日至2027年2月28日",
    hired_on=date(2024, 3, 1),
    service_address="湖南省邵阳市某某县某某镇某某村 5 组 12 号",
)
RULE = HandbookRule(
    clause="第五章第十二条",
    text="连续旷工三个工作日及以上，或一个月内累计旷工五个工作日及以上的，属严重违反公司规章制度，公司可解除劳动合同。",
    version="2025 年版（v3）",
    adopted_on=date(2025, 1, 10),
    published_on=date(2025, 1, 15),
)
CUIGAO = NoticeFacts(
    doc_no="某电人〔2026〕第 017 号",
    issued_on=date(2026, 3, 5),
    employer=EMPLOYER,
    employee=EMPLOYEE,
    absent_days=(date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)),
    leave_ended_on=date(2026, 2, 28),
    handbook=RULE,
    contract_clause="第十条",
    contacts=(
        ContactMade("2026年3月2日 09:12", "电话 138****5678", "关机"),
        ContactMade("2026年3月3日 08:30", "短信", "已送达，未回复"),
        ContactMade("2026年3月3日 10:05", "紧急联系人电话", "无人接听"),
    ),
    deadline=datetime(2026, 3, 9, 9, 0, tzinfo=SHANGHAI),
    report_to="公司人力资源部（行政楼二楼）",
    reply_how="电话 0769-8888 1234 或下方链接",
    reply_link="https://hr.example.cn/n/3f9a1c2b7d4e5f60a1b2",
    service_methods=("EMS 寄至劳动合同约定的送达地址", "短信", "电子邮件"),
)
EARLIER = (
    "2026年3月5日《关于限期返岗的通知（催告函）》（某电人〔2026〕第 017 号），EMS 于 2026年3月7日妥投，短信已送达",
)
KUANGGONG = replace(
    CUIGAO,
    doc_no="某电人〔2026〕第 021 号",
    issued_on=date(2026, 3, 10),
    absent_days=CUIGAO.absent_days + (date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 9)),
    earlier_notices=EARLIER,
    defence_days=3,
    extra={
        "attendance_source": "装配二车间考勤机 TEST-ZK-01 经边缘设备签名的打卡记录，已同步至 2026-03-09 20:00",
        "handling": "记旷工 6 个工作日，旷工期间不计发工资",
    },
)
JIECHU = replace(
    KUANGGONG,
    doc_no="某电人〔2026〕第 025 号",
    issued_on=date(2026, 3, 16),
    termination_date=date(2026, 3, 16),
    union_notified_on=date(2026, 3, 12),
    union_opinion="工会于2026年3月13日书面回复无异议",
    settlement="工资结算至解除之日，于2026年3月31日前支付至您的工资卡",
    draft=True,
)
ZHENGMING = replace(JIECHU, doc_no="某电人〔2026〕第 026 号", years_of_service="2 年 0 个月", draft=False)
UNION = replace(JIECHU, doc_no="某电人〔2026〕第 023 号", issued_on=date(2026, 3, 12), union_reply_days=3, draft=False)
GONGGAO = replace(
    CUIGAO,
    doc_no="某电人〔2026〕第 030 号",
    issued_on=date(2026, 3, 20),
    extra={
        "notice_title": "解除劳动合同通知书",
        "notice_doc_no": "某电人〔2026〕第 025 号",
        "notice_summary": "因您连续旷工 6 个工作日，本单位依据《劳动合同法》第三十九条第（二）项解除与您的劳动合同。",
    },
)
