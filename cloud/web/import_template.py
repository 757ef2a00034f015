"""The workbook HR fills in for the import page: for one kind of sheet (员工, 班次, …), a first sheet named as the
importer looks for it with the headers it reads, and a second sheet, 填写说明, saying for each column whether it is
required, its format and an example.

The headers and what is required come from the importer's own tables (``cloud.hr.importer``), so the template
cannot ask for a column the importer would not read; this module adds only the words for people.
"""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from cloud.hr import importer

DATE = "日期，YYYY-MM-DD"
WHEN = "日期或日期时间，YYYY-MM-DD 或 YYYY-MM-DD HH:MM（工厂当地时间）"
MINUTES = "整数，分钟"
TEXT = "文字"
# kind: (header, format, example, what it is); headers exactly as the importer reads them
COLUMNS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "employees": (
        ("工号", TEXT, "E1001", "员工在公司的编号，各厂唯一"),
        ("考勤号", TEXT, "1001", "员工在本厂考勤机上的号码"),
        ("姓名", TEXT, "张三", "与身份证一致"),
        ("身份证后四位", "4位，末位可为X", "123X", "用于文书中核对身份"),
        ("部门", TEXT, "装配二车间", ""),
        ("岗位", TEXT, "操作工", ""),
        ("产线", TEXT, "一线", "看板按产线分组"),
        ("排班", TEXT, "W", "排班规则的编号（排班规则表的“编号”）"),
        ("主管工号", TEXT, "E0001", "主管的工号；主管须也在名单中"),
        ("合同编号", TEXT, "HT-2024-0317", "文书中引用"),
        ("合同开始", DATE, "2024-03-01", "也可写作“入职日期”；此日前不排班"),
        ("合同结束", DATE, "2027-02-28", ""),
        ("手机", "手机或座机号码", "13800138000", "短信提醒发往此号码"),
        ("邮箱", "邮箱地址", "zhangsan@example.cn", "邮件通知发往此地址"),
        ("企业微信", TEXT, "zhangsan", "企业微信的成员账号（UserID）"),
        ("钉钉", TEXT, "zhangsan01", "钉钉的用户编号（userid）"),
        ("合同地址", TEXT, "广东省东莞市长安镇振安路 88 号", "劳动合同上的地址"),
        ("送达地址", TEXT, "湖南省邵阳市某某县某某镇某某村 5 组 12 号", "员工书面确认的文书送达地址"),
        ("送达确认凭证", TEXT, "SD-2024-0317", "填写了送达地址时必填：员工签字的送达地址确认书编号"),
        ("紧急联系人", TEXT, "张父", ""),
        ("紧急联系人关系", TEXT, "父亲", ""),
        ("紧急联系人电话", "手机或座机号码", "13900139000", "填写了紧急联系人时必填；系统会发短信请其回复“确认”"),
        ("紧急联系人2", TEXT, "张母", "第二位紧急联系人（可不填）"),
        ("紧急联系人2关系", TEXT, "母亲", ""),
        ("紧急联系人2电话", "手机或座机号码", "13700137000", "填写了第二位紧急联系人时必填"),
        ("紧急联系人3", TEXT, "李四", "第三位紧急联系人（可不填）"),
        ("紧急联系人3关系", TEXT, "朋友", ""),
        ("紧急联系人3电话", "手机或座机号码", "13600136000", "填写了第三位紧急联系人时必填"),
        ("生效日期", DATE, "2025-01-01", "考勤号自哪天起属于此员工；不填为一直有效"),
        ("失效日期", DATE, "2026-12-31", "员工离职或换号的最后一天；不填为一直有效"),
    ),
    "shifts": (
        ("班次", TEXT, "D", "班次的编号，排班时引用"),
        ("名称", TEXT, "白班", ""),
        ("时段", "HH:MM-HH:MM，多段用逗号分隔", "08:00-12:00,13:00-17:00", "跨零点写作 20:00-08:00"),
        ("迟到宽限", MINUTES, "5", "不填为 5 分钟"),
        ("早退宽限", MINUTES, "0", "不填为 0"),
        ("提前打卡", MINUTES, "120", "上班前多久起的打卡算作本班；不填为 120"),
        ("延后打卡", MINUTES, "240", "下班后多久内的打卡算作本班；不填为 240"),
        ("考勤机", "考勤机名称，多台用逗号分隔", "gate-1", "只认这些考勤机的打卡；不填为全部"),
    ),
    "rosters": (
        ("编号", TEXT, "W", "员工表“排班”一列引用此编号"),
        ("类型", "固定 或 轮班", "固定", "不填为固定"),
        ("模式", "班次编号，用逗号分隔；休息写 -", "D,D,D,D,D,-,-", "固定排班为周一至周日共7天；轮班为一个周期"),
        ("起始日期", DATE, "2025-01-06", "轮班时必填：周期的第一天"),
        ("节假日", "休息 或 照常", "休息", "法定节假日是否休息；固定排班不填为休息，轮班不填为照常"),
        ("调休按", "整数 0–6", "0", "调休上班日按星期几的班次上班：0=周一，1=周二……6=周日；不填为 0"),
    ),
    "schedule": (
        ("考勤号", TEXT, "1001", ""),
        ("日期", DATE, "2025-03-03", ""),
        ("班次", "班次编号，多个用逗号分隔；空为休息", "D", "这一天代替排班规则"),
    ),
    "leave": (
        ("单号", TEXT, "QJ-2025-031", "请假单的编号，各单唯一"),
        ("工号", TEXT, "E1001", ""),
        ("假别", TEXT, "病假", "不填为“请假”"),
        ("开始", WHEN, "2025-03-03 08:00", "只写日期为当天 0 点"),
        ("结束", WHEN, "2025-03-12", "只写日期为当天结束"),
        ("状态", "已批准 或 已撤销", "已批准", "不填为已批准"),
    ),
    "trips": (
        ("单号", TEXT, "CC-2025-008", "出差单的编号"),
        ("工号", TEXT, "E1001", ""),
        ("目的地", TEXT, "深圳", ""),
        ("开始", WHEN, "2025-03-03", ""),
        ("结束", WHEN, "2025-03-05", ""),
    ),
    "corrections": (
        ("单号", TEXT, "BK-2025-011", "补卡单的编号"),
        ("工号", TEXT, "E1001", ""),
        ("时间", "日期时间，YYYY-MM-DD HH:MM", "2025-03-03 08:02", "应打卡的时间（工厂当地时间）"),
        ("方向", "上班 或 下班", "上班", "不填为不明"),
        ("原因", TEXT, "考勤机故障", ""),
        ("审批人", TEXT, "王敏", ""),
    ),
}
NOTES = "填写说明"
REQUIRED_FILL = PatternFill("solid", fgColor="FDE2E1")
HEAD_FILL = PatternFill("solid", fgColor="E8EDF5")


def required(kind: str) -> set[str]:
    """The headers of ``kind`` the importer refuses a row without."""
    return {importer.COLUMN_ZH[field] for field in importer.REQUIRED[kind]}


def workbook(kind: str) -> bytes:
    """The template for ``kind`` (a key of ``cloud.hr.importer.KINDS``) as .xlsx bytes."""
    columns = COLUMNS[kind]
    must = required(kind)
    book = Workbook()
    data = book.active
    data.title = importer.KIND_ZH[kind]
    data.append([header for header, *_ in columns])
    for n, (header, form, _example, _what) in enumerate(columns, start=1):
        cell = data.cell(row=1, column=n)
        cell.font = Font(bold=True)
        cell.fill = REQUIRED_FILL if header in must else HEAD_FILL
        letter = get_column_letter(n)
        data.column_dimensions[letter].width = max(10, 2 * len(header) + 4)
        if form == TEXT or "号码" in form:  # 工号 0012 and phone numbers stay as typed, not numbers
            data.column_dimensions[letter].number_format = "@"
    data.freeze_panes = "A2"

    notes = book.create_sheet(NOTES)
    notes.append([f"“{data.title}”表的填写说明：第一行是列名，请勿改动；从第二行起每行一条。红色列名为必填。"])
    notes.append(["列名", "是否必填", "格式", "示例", "说明"])
    for header, form, example, what in columns:
        notes.append([header, "必填" if header in must else "选填", form, example, what])
    notes["A1"].font = Font(bold=True)
    for cell in notes[2]:
        cell.font, cell.fill = Font(bold=True), HEAD_FILL
    for letter, width in zip("ABCDE", (16, 10, 36, 30, 50), strict=True):
        notes.column_dimensions[letter].width = width
    for row in notes.iter_rows(min_row=3):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    notes.freeze_panes = "A3"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
