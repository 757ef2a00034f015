"""Onboarding a plant from HR's spreadsheets: ``.xlsx`` (one sheet per kind) or ``.csv`` (one kind).

Sheets are named for what they hold, in Chinese or English; headers may be either. CSV may be
UTF-8 (with or without BOM) or GB18030, as Excel writes it on a Chinese Windows. Times without a
zone are the plant's local time. Every row is checked before anything is written, and a file with
a bad row is refused whole, with every problem listed by sheet, row number and column, zh-CN first.

=========== ===========================================================================
kind        columns (* = required)
=========== ===========================================================================
employees   *工号 employee_no, *考勤号 user_id (the badge at this plant), 姓名 name, 身份证后四位,
员工         部门, 岗位, 产线, 排班 roster, 主管工号 manager_no, 合同编号, 合同开始, 合同结束, 手机 phone,
            邮箱 email, 企业微信 wecom_id, 钉钉 dingtalk_id, 合同地址, 送达地址, 送达确认凭证,
            紧急联系人, 紧急联系人关系, 紧急联系人电话 (also 紧急联系人1...; a second and third contact:
            紧急联系人2, 紧急联系人2关系, 紧急联系人2电话, 紧急联系人3...), 生效日期 valid_from, 失效日期 valid_to
shifts 班次  *班次 shift_id, 名称, *时段 spans, 迟到宽限, 早退宽限, 提前打卡, 延后打卡, 考勤机
rosters 排班规则 *编号 roster_id, 类型 (固定|轮班), *模式 pattern, 起始日期 anchor, 节假日 (休息|照常), 调休按
schedule 排班表 *考勤号 user_id, *日期 day, 班次 shifts
leave 请假   *单号 ref, *工号 employee_no, 假别 kind, *开始 start, *结束 end, 状态 (已批准|已撤销)
trips 出差   *单号 ref, *工号 employee_no, 目的地, *开始 start, *结束 end
corrections 补卡 *单号 ref, *工号 employee_no, *时间 at, 方向 (上班|下班), *原因 reason, 审批人 by
=========== ===========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cloud.hr import plant_changes as due
from cloud.hr.contacts import listed
from cloud.hr.models import (
    Correction,
    EmergencyContact,
    Employee,
    HrChange,
    Leave,
    PlantBadge,
    RosterDef,
    ScheduleDay,
    ShiftDef,
    Trip,
)
from cloud.store import Plant, database
from opskit.sheets import Layout, Refusal, Row, Sheet, Unreadable
from opskit.sheets import read as read_sheets

KINDS: dict[str, tuple[str, ...]] = {
    "employees": ("employees", "员工", "花名册", "人员"),
    "shifts": ("shifts", "班次"),
    "rosters": ("rosters", "排班规则"),
    "schedule": ("schedule", "排班表", "排班"),
    "leave": ("leave", "请假"),
    "trips": ("trips", "出差"),
    "corrections": ("corrections", "补卡"),
}
KIND_ZH = {k: names[1] for k, names in KINDS.items()}
HEADERS: dict[str, str] = {
    "工号": "employee_no",
    "考勤号": "user_id",
    "姓名": "name",
    "身份证后四位": "id_last4",
    "部门": "department",
    "岗位": "position",
    "产线": "line",
    "排班": "roster",
    "主管工号": "manager_no",
    "合同编号": "contract_no",
    "合同开始": "contract_start",
    "入职日期": "contract_start",  # HR's own word for it; the day before which nobody is rostered
    "合同结束": "contract_end",
    "手机": "phone",
    "邮箱": "email",
    "企业微信": "wecom_id",
    "钉钉": "dingtalk_id",
    "合同地址": "contract_address",
    "送达地址": "service_address",
    "送达确认凭证": "service_confirmation_ref",
    "紧急联系人": "ec_name",
    "紧急联系人关系": "ec_relation",
    "紧急联系人电话": "ec_phone",
    "紧急联系人1": "ec_name",  # a second and third contact are columns of their own, numbered
    "紧急联系人1关系": "ec_relation",
    "紧急联系人1电话": "ec_phone",
    "紧急联系人2": "ec2_name",
    "紧急联系人2关系": "ec2_relation",
    "紧急联系人2电话": "ec2_phone",
    "紧急联系人3": "ec3_name",
    "紧急联系人3关系": "ec3_relation",
    "紧急联系人3电话": "ec3_phone",
    "生效日期": "valid_from",
    "失效日期": "valid_to",
    "班次": "shift_id",
    "名称": "name",
    "时段": "spans",
    "迟到宽限": "late_grace_min",
    "早退宽限": "early_grace_min",
    "提前打卡": "checkin_before_min",
    "延后打卡": "checkout_after_min",
    "考勤机": "terminals",
    "编号": "roster_id",
    "类型": "kind",
    "模式": "pattern",
    "起始日期": "anchor",
    "节假日": "holidays",
    "调休按": "makeup_weekday",
    "日期": "day",
    "单号": "ref",
    "假别": "kind",
    "开始": "start",
    "结束": "end",
    "状态": "status",
    "目的地": "destination",
    "时间": "at",
    "方向": "direction",
    "原因": "reason",
    "审批人": "by",
}
COLUMN_ZH = {v: k for k, v in reversed(HEADERS.items())} | {"shifts": "班次"}  # field -> its first Chinese header
SCHEDULE_HEADERS = {"班次": "shifts"}  # in 排班表, 班次 is the day's shifts, not a shift's id
LAYOUT = Layout(KINDS, {kind: {**HEADERS, **SCHEDULE_HEADERS} if kind == "schedule" else HEADERS for kind in KINDS})
REQUIRED = {
    "employees": ("employee_no", "user_id"),
    "shifts": ("shift_id", "spans"),
    "rosters": ("roster_id", "pattern"),
    "schedule": ("user_id", "day"),
    "leave": ("ref", "employee_no", "start", "end"),
    "trips": ("ref", "employee_no", "start", "end"),
    "corrections": ("ref", "employee_no", "at", "reason"),
}
WORDS = {
    "固定": "weekly",
    "轮班": "rotating",
    "休息": "observe",
    "照常": "ignore",
    "上班": "in",
    "下班": "out",
    "已批准": "approved",
    "已撤销": "cancelled",
    "不明": "unknown",
}
CHOICES_ZH = {code: word for word, code in WORDS.items()}  # a refused choice lists the words a cell may hold
MOBILE = re.compile(r"(\+?86)?1[3-9]\d{9}")
LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")
SPAN = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d")


@dataclass(frozen=True)
class Problem:
    sheet: str
    row: int  # as the spreadsheet numbers it (the header is row 1)
    column: str
    zh: str
    en: str

    def __str__(self) -> str:
        zh = f"{self.sheet} 第{self.row}行 {self.column}：{self.zh}"
        return f"{zh} / {self.sheet} row {self.row}, {self.column}: {self.en}"


class ImportRefused(ValueError):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{source}：{len(problems)} 处问题，未导入 / {len(problems)} problem(s), nothing imported:\n{lines}"
        )


@dataclass(frozen=True)
class ImportReport:
    counts: Mapping[str, int]


def read(path: Path, kind: str = "auto") -> list[Sheet]:
    """The sheets of a .csv or .xlsx file, headers mapped to field names; nothing written."""
    try:
        return read_sheets(path, LAYOUT, kind)
    except Unreadable as err:
        raise ImportRefused(str(path), [_unreadable(path, err)]) from err


def _unreadable(path: Path, err: Unreadable) -> Problem:
    if err.reason == "suffix":
        return Problem(path.name, 0, "", "请使用 .csv 或 .xlsx 文件", "use a .csv or .xlsx file")
    if err.reason == "empty":
        return Problem(path.name, 1, "", "文件是空的", "the file is empty")
    if err.reason == "workbook":
        return Problem(path.name, 0, "", f"无法读取该工作簿：{err.detail}", f"unreadable workbook: {err.detail}")
    if err.reason == "too many rows":
        return Problem(
            path.name,
            0,
            "",
            f"文件超过 {err.detail} 行（含空行），未读取：请删去多余的行，或分成几个文件导入",
            f"more than {err.detail} rows (empty ones included), not read: delete unneeded rows or split the file",
        )
    names = "、".join(n[1] for n in KINDS.values())
    return Problem(path.name, 0, "", f"没有可识别的工作表，请命名为：{names}", "no sheet named for what it holds")


class _Row(Row[Problem]):
    words = WORDS

    def bad(self, column: str, zh: str, en: str) -> None:
        """``column`` is a field name or a header; it is reported as the Chinese header."""
        self.problems.append(Problem(self.sheet.name, self.number, COLUMN_ZH.get(column, column), zh, en))

    def refuse(self, name: str, why: Refusal) -> None:
        text = why.text
        if why.what == "number":
            self.bad(name, f"{text!r} 不是数字", f"{text!r} is not a number")
        elif why.what == "date":
            self.bad(name, f"{text!r} 不是日期（YYYY-MM-DD）", f"{text!r} is not a date YYYY-MM-DD")
        elif why.what == "instant":  # the cell as written, before / and T are read as - and a space
            self.bad(name, f"{self.text(name)!r} 不是日期或时间（YYYY-MM-DD HH:MM）", "not a date or date and time")
        else:
            allowed = why.allowed
            words = "、".join(CHOICES_ZH.get(a, a) for a in allowed)
            self.bad(name, f"{text!r} 无效，可选：{words}", f"{text!r}: one of {', '.join(allowed)}")

    def phone(self, name: str) -> str:
        text = self.text(name).replace(" ", "")
        if text and not (MOBILE.fullmatch(text) or LANDLINE.fullmatch(text)):
            self.bad(name, f"{text!r} 不是有效的电话号码", f"{text!r} is not a phone number")
        return text


def _employee(r: _Row) -> dict[str, Any]:
    email = r.text("email")
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        r.bad("email", f"{email!r} 不是有效的邮箱", f"{email!r} is not an e-mail address")
    id4 = r.text("id_last4")
    if id4 and not re.fullmatch(r"\d{3}[\dXx]", id4):
        r.bad("id_last4", "身份证后四位应为4位（末位可为X）", "four characters, digits (the last may be X)")
    row = {
        k: r.text(k)
        for k in (
            "employee_no",
            "user_id",
            "name",
            "department",
            "position",
            "line",
            "roster",
            "manager_no",
            "contract_no",
            "wecom_id",
            "dingtalk_id",
            "contract_address",
            "service_address",
            "service_confirmation_ref",
        )
    }
    row.update(id_last4=id4.upper(), email=email, phone=r.phone("phone"), contacts=_contacts(r))
    row.update({k: r.day(k) for k in ("contract_start", "contract_end", "valid_from", "valid_to")})
    if row["service_address"] and not row["service_confirmation_ref"]:
        r.bad(
            "service_confirmation_ref",
            "送达地址需要确认凭证（签字的确认书编号）",
            "a service address needs its signed confirmation",
        )
    return row


def _contacts(r: _Row) -> list[tuple[str, str, str]]:
    """The row's emergency contacts in order: (name, relation, phone), from 紧急联系人 and 紧急联系人2, 3."""
    out = []
    for prefix in ("ec", "ec2", "ec3"):
        name, relation, phone = r.text(f"{prefix}_name"), r.text(f"{prefix}_relation"), r.phone(f"{prefix}_phone")
        if name and not phone:
            r.bad(f"{prefix}_phone", "填写了紧急联系人但没有电话", "an emergency contact needs a phone number")
        elif phone and not name:
            r.bad(f"{prefix}_name", "填写了紧急联系人电话但没有姓名", "an emergency contact needs a name")
        elif name and any(phone == p for _, _, p in out):
            r.bad(f"{prefix}_phone", f"电话 {phone} 与前一位紧急联系人相同", f"{phone} is another contact's number")
        elif name:
            out.append((name, relation, phone))
    return out


def _shift(r: _Row) -> dict[str, Any]:
    spans = r.text("spans").replace("，", ",")
    for span in spans.split(","):
        if spans and not SPAN.fullmatch(span.strip()):
            r.bad("spans", f"时段 {span!r} 应为 HH:MM-HH:MM", f"span {span!r} is not HH:MM-HH:MM")
    return {
        "shift_id": r.text("shift_id"),
        "name": r.text("name"),
        "spans": spans,
        "late_grace_min": r.integer("late_grace_min", 5),
        "early_grace_min": r.integer("early_grace_min", 0),
        "checkin_before_min": r.integer("checkin_before_min", 120),
        "checkout_after_min": r.integer("checkout_after_min", 240),
        "terminals": r.text("terminals"),
    }


def _roster(r: _Row) -> dict[str, Any]:
    kind = r.choice("kind", ("weekly", "rotating"), "weekly")
    pattern = r.text("pattern").replace("，", ",")
    if kind == "weekly" and len(pattern.split(",")) != 7:
        r.bad("pattern", "固定排班需要7天（周一起）", "a weekly pattern has 7 days, Monday first")
    anchor = r.day("anchor")
    if kind == "rotating" and not anchor:
        r.bad("anchor", "轮班需要起始日期", "a rotating roster needs its anchor date")
    holidays = r.choice("holidays", ("observe", "ignore"), "observe" if kind == "weekly" else "ignore")
    return {
        "roster_id": r.text("roster_id"),
        "kind": kind,
        "pattern": pattern,
        "anchor": anchor,
        "holidays": holidays,
        "makeup_weekday": r.integer("makeup_weekday", 0),
    }


def _span(r: _Row) -> tuple[int, int]:
    start, end = r.instant("start"), r.instant("end", end=True)
    if start and end and end <= start:
        r.bad("end", "结束早于开始", "ends before it starts")
    return start, end


def _leave(r: _Row) -> dict[str, Any]:
    start, end = _span(r)
    return {
        "ref": r.text("ref"),
        "employee_no": r.text("employee_no"),
        "kind": r.text("kind", "请假"),
        "start_ms": start,
        "end_ms": end,
        "status": r.choice("status", ("approved", "cancelled"), "approved"),
    }


def _trip(r: _Row) -> dict[str, Any]:
    start, end = _span(r)
    return {
        "ref": r.text("ref"),
        "employee_no": r.text("employee_no"),
        "destination": r.text("destination"),
        "start_ms": start,
        "end_ms": end,
    }


def _correction(r: _Row) -> dict[str, Any]:
    return {
        "ref": r.text("ref"),
        "employee_no": r.text("employee_no"),
        "at_ms": r.instant("at"),
        "direction": r.choice("direction", ("in", "out", "unknown"), "unknown"),
        "reason": r.text("reason"),
        "by": r.text("by"),
    }


CONVERT: dict[str, Callable[[_Row], dict[str, Any]]] = {
    "employees": _employee,
    "shifts": _shift,
    "rosters": _roster,
    "schedule": lambda r: {"user_id": r.text("user_id"), "day": r.day("day"), "shifts": r.text("shifts")},
    "leave": _leave,
    "trips": _trip,
    "corrections": _correction,
}


def check(sheets: list[Sheet], plant: Plant, source: str) -> dict[str, list[dict[str, Any]]]:
    """Every row converted and cross-checked, or ``ImportRefused`` listing every problem."""
    tz = ZoneInfo(plant.timezone)
    problems: list[Problem] = []
    out: dict[str, list[dict[str, Any]]] = {}
    where: dict[tuple[str, int], _Row] = {}
    for sheet in sheets:
        for number, values in sheet.rows:
            row = _Row(sheet, number, values, tz, problems)
            for column in REQUIRED[sheet.kind]:
                if not row.text(column):
                    row.bad(COLUMN_ZH.get(column, column), "必填", "required")
            converted = CONVERT[sheet.kind](row)
            where[(sheet.kind, len(out.setdefault(sheet.kind, [])))] = row
            out[sheet.kind].append(converted)
    _cross_check(out, where, plant)
    problems.sort(key=lambda p: (p.sheet, p.row))
    if problems:
        raise ImportRefused(source, problems)
    return out


def _cross_check(out: dict[str, list[dict[str, Any]]], where: dict[tuple[str, int], _Row], plant: Plant) -> None:
    """References between rows and to what the database holds already: duplicates, unknown ids."""
    known_no = {e.employee_no for e in Employee.select(Employee.employee_no)}
    file_no = {r["employee_no"] for r in out.get("employees", [])}
    rosters = {r.roster_id for r in RosterDef.select().where(RosterDef.plant == plant)}
    rosters |= {r["roster_id"] for r in out.get("rosters", [])}
    badges = {
        b.user_id: b.employee.employee_no
        for b in PlantBadge.select(PlantBadge, Employee).join(Employee).where(PlantBadge.plant == plant)
    }
    seen_badge: dict[str, int] = {}
    seen_no: dict[str, int] = {}
    for i, row in enumerate(out.get("employees", [])):
        r = where[("employees", i)]
        if row["user_id"] in seen_badge:
            r.bad(
                "考勤号", f"与第{seen_badge[row['user_id']]}行重复", f"same badge as row {seen_badge[row['user_id']]}"
            )
        if row["employee_no"] in seen_no:
            r.bad(
                "工号",
                f"与第{seen_no[row['employee_no']]}行重复",
                f"same employee number as row {seen_no[row['employee_no']]}",
            )
        seen_badge[row["user_id"]], seen_no[row["employee_no"]] = r.number, r.number
        owner = badges.get(row["user_id"])
        if owner is not None and owner != row["employee_no"]:
            r.bad("考勤号", f"该考勤号已属于工号 {owner}", f"this badge belongs to employee {owner} already")
        if row["roster"] and row["roster"] not in rosters:
            r.bad("排班", f"排班规则 {row['roster']!r} 不存在", f"roster {row['roster']!r} is not defined")
        if row["manager_no"] and row["manager_no"] not in known_no | file_no:
            r.bad("主管工号", f"主管 {row['manager_no']!r} 不存在", f"manager {row['manager_no']!r} is unknown")
    shift_ids = {s.shift_id for s in ShiftDef.select().where(ShiftDef.plant == plant)}
    shift_ids |= {s["shift_id"] for s in out.get("shifts", [])}
    for i, row in enumerate(out.get("rosters", [])):
        unknown = sorted(
            {
                s
                for day in row["pattern"].split(",")
                for s in day.split("+")
                if s.strip() not in ("", "-", "休") and s.strip() not in shift_ids
            }
        )
        if unknown:
            where[("rosters", i)].bad(
                "模式", f"班次 {'、'.join(unknown)} 未定义", f"undefined shift(s) {', '.join(unknown)}"
            )
    all_badges = set(badges) | set(seen_badge)
    for i, row in enumerate(out.get("schedule", [])):
        if row["user_id"] and row["user_id"] not in all_badges:
            where[("schedule", i)].bad(
                "考勤号", f"考勤号 {row['user_id']!r} 不存在", f"badge {row['user_id']!r} is unknown"
            )
    for kind in ("leave", "trips", "corrections"):
        refs: dict[str, int] = {}
        for i, row in enumerate(out.get(kind, [])):
            r = where[(kind, i)]
            if row["employee_no"] and row["employee_no"] not in known_no | file_no:
                r.bad("工号", f"员工 {row['employee_no']!r} 不存在", f"employee {row['employee_no']!r} is unknown")
            if row["ref"] in refs:
                r.bad("单号", f"与第{refs[row['ref']]}行重复", f"same reference as row {refs[row['ref']]}")
            refs[row["ref"]] = r.number


def import_file(path: Path, plant: Plant, now_ms: int, *, kind: str = "auto") -> ImportReport:
    """Read, check and store in one transaction; nothing is written when a row is bad."""
    return store(check(read(path, kind), plant, str(path)), plant, now_ms)


def store(rows: Mapping[str, list[dict[str, Any]]], plant: Plant, now_ms: int) -> ImportReport:
    counts: dict[str, int] = {}
    with database.atomic():
        for row in rows.get("shifts", []):
            _upsert(ShiftDef, {"plant": plant, "shift_id": row["shift_id"]}, row, now_ms)
        for row in rows.get("rosters", []):
            _upsert(RosterDef, {"plant": plant, "roster_id": row["roster_id"]}, row, now_ms)
        people = {}
        for row in rows.get("employees", []):
            fields = {
                k: row[k]
                for k in (
                    "name",
                    "id_last4",
                    "department",
                    "position",
                    "contract_no",
                    "contract_start",
                    "contract_end",
                    "phone",
                    "email",
                    "wecom_id",
                    "dingtalk_id",
                    "contract_address",
                )
            }
            if row["service_address"]:
                fields.update(
                    service_address=row["service_address"],
                    service_confirmed_ms=now_ms,
                    service_confirmation_ref=row["service_confirmation_ref"],
                )
            emp = _upsert(Employee, {"employee_no": row["employee_no"]}, fields, now_ms)
            people[row["employee_no"]] = emp
            _upsert(
                PlantBadge,
                {"plant": plant, "user_id": row["user_id"]},
                {
                    "employee": emp,
                    "line": row["line"],
                    "roster": row["roster"],
                    "valid_from": row["valid_from"],
                    "valid_to": row["valid_to"],
                },
                now_ms,
            )
            _store_contacts(emp, row["contacts"], now_ms)
        for row in rows.get("employees", []):
            if row["manager_no"]:
                manager = Employee.get(Employee.employee_no == row["manager_no"])
                Employee.update(manager=manager).where(Employee.employee_no == row["employee_no"]).execute()
        for row in rows.get("schedule", []):
            _upsert(
                ScheduleDay,
                {"plant": plant, "user_id": row["user_id"], "day": row["day"]},
                {"shifts": row["shifts"]},
                now_ms,
            )
        touched: set[int] = set()
        for kind, model in (("leave", Leave), ("trips", Trip), ("corrections", Correction)):
            for row in rows.get(kind, []):
                emp = people.get(row["employee_no"]) or Employee.get(Employee.employee_no == row["employee_no"])
                fields = {k: v for k, v in row.items() if k not in ("ref", "employee_no", "by")}
                if kind == "corrections":
                    fields["approved_by"] = row["by"]
                fields["employee"] = emp
                _upsert(model, {"ref": row["ref"]}, {**fields, "recorded_ms": now_ms}, None)
                HrChange.insert(employee=emp, changed_ms=now_ms).on_conflict_replace().execute()
                touched.add(emp.id)
        # the plant's appliances get what changed (the runner pushes it after a quiet moment), and so do the other
        # plants of an employee whose leave, trips or 补卡 this file changed
        others = PlantBadge.select(PlantBadge.plant).where(PlantBadge.employee.in_(sorted(touched))).tuples()
        due.mark([plant.id, *(p for (p,) in (others if touched else ()))], now_ms)
        counts = {kind: len(items) for kind, items in rows.items()}
    return ImportReport(counts)


def _store_contacts(emp: Employee, contacts: list[tuple[str, str, str]], now_ms: int) -> None:
    """The sheet's contacts in its order; a number the employee has already keeps its row (and its verification),
    a new one is added unverified (the escalation runner asks it to confirm); contacts not in the sheet stay."""
    current = {c.phone: c for c in listed(emp)}
    for position, (name, relation, phone) in enumerate(contacts, start=1):
        known = current.get(phone)
        if known is None:
            EmergencyContact.create(
                employee=emp,
                name=name,
                relation=relation,
                phone=phone,
                position=position,
                phone_since_ms=now_ms,
                updated_ms=now_ms,
            )
        elif (known.name, known.relation, known.position) != (name, relation, position):
            known.name, known.relation, known.position, known.updated_ms = name, relation, position, now_ms
            known.save()


def _upsert(model: Any, key: dict[str, Any], fields: Mapping[str, Any], now_ms: int | None) -> Any:
    query = model.select()
    for name, value in key.items():
        query = query.where(getattr(model, name) == value)
    row = query.first() or model(**key)
    for name, value in fields.items():
        if name not in key and name in model._meta.fields:
            setattr(row, name, value)
    if now_ms is not None and "updated_ms" in model._meta.fields:
        row.updated_ms = now_ms
    row.save()
    return row
