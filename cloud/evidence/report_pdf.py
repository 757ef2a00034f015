"""report.pdf: the evidence report drawn for paper (A4), with its Chinese font embedded.

fpdf2 is pure Python: it embeds the subset of the font that the text uses, with a ToUnicode map so
the text can be searched and copied. The report is drawn twice: once to learn which characters it
uses, then with the font cut down to those as TrueType (see ``cloud.report_font`` for why). The
PDF's dates come from the export time, so the same export gives the same bytes.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode

from cloud.evidence.report_model import KEYS_NOTE, SCHEDULE_NOTE, SELF_CHECK_NOTE, VERIFY_STEPS, ReportModel
from cloud.report_font import CjkFont, truetype_subset

FONT = "cjk"
PAGE_NUMBER = "第 {page} 页，共 {{nb}} 页"
GREEN, RED, GREY, AMBER = (27, 127, 59), (179, 38, 30), (85, 85, 85), (138, 75, 0)
HEADINGS = FontFace(emphasis="BOLD", fill_color=(235, 235, 235))
LAYOUT = {"text_align": "LEFT", "v_align": "TOP", "padding": (0.8, 1.5)}  # every table's
# fpdf2 cannot split a table row across pages: long cells are cut into several rows marked 续 (continued)
PUNCHES_PER_ROW, NOTES_PER_ROW, CHARS_PER_ROW = 10, 10, 900


class _Pages(FPDF):
    """An A4 page whose footer names the bundle, so that a loose printed page can be traced to it."""

    def __init__(self, model: ReportModel) -> None:
        super().__init__(format="A4", unit="mm")
        self.model = model
        self.used: set[str] = set()  # every character drawn

    def normalize_text(self, text: str) -> str:
        self.used.update(text)
        return super().normalize_text(text)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FONT, size=7)
        self.set_text_color(*GREY)
        self.cell(0, 4, self.model.footer, align="L", new_x="LMARGIN", new_y="NEXT")
        self.cell(0, 4, PAGE_NUMBER.format(page=self.page_no()), align="C")
        self.set_text_color(0)


def report_pdf(model: ReportModel, font: CjkFont) -> bytes:
    draft = _draw(model, (font.path, font.index), (font.path, font.index))
    # the last page's footer is drawn only at output(): its characters are added here
    chars = "".join(sorted(draft.used | set(model.footer + PAGE_NUMBER + string.digits)))
    with tempfile.TemporaryDirectory(prefix="punchproof-report-") as folder:
        regular = bold = Path(folder) / "regular.ttf"
        truetype_subset(font.path, font.index, chars, regular)
        if font.bold_path is not None:
            bold = Path(folder) / "bold.ttf"
            truetype_subset(font.bold_path, font.bold_index, chars, bold)
        return bytes(_draw(model, (regular, 0), (bold, 0)).output())


def _draw(model: ReportModel, regular: tuple[Path, int], bold: tuple[Path, int]) -> _Pages:
    pdf = _Pages(model)
    pdf.add_font(FONT, "", str(regular[0]), collection_font_number=regular[1])
    pdf.add_font(FONT, "B", str(bold[0]), collection_font_number=bold[1])
    pdf.set_creation_date(model.generated_utc)
    pdf.set_title(f"考勤电子证据报告 {model.employee} {model.period_from} 至 {model.period_to}")
    pdf.set_subject(f"证据包 bundle_id {model.bundle_id}")
    pdf.set_author("Punchproof")
    pdf.set_creator("Punchproof")
    pdf.set_lang("zh-CN")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    _summary(pdf, model)
    _devices(pdf, model)
    _days(pdf, model)
    _contacts(pdf, model)
    _keys(pdf, model)
    _checks(pdf, model)
    _gaps(pdf, model)
    _files(pdf, model)
    _steps(pdf)
    return pdf


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)


def _paragraph(pdf: FPDF, text: str, *, size: float = 9, color: tuple[int, int, int] = (0, 0, 0)) -> None:
    pdf.set_font(FONT, size=size)
    pdf.set_text_color(*color)
    pdf.multi_cell(0, size * 0.55, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)


def _rows(lines: list[str], per_row: int) -> list[list[str]]:
    return [lines[n : n + per_row] for n in range(0, len(lines), per_row)]


def _pieces(text: str) -> list[str]:
    return [text[n : n + CHARS_PER_ROW] for n in range(0, len(text), CHARS_PER_ROW)] or [""]


def _summary(pdf: FPDF, model: ReportModel) -> None:
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 10, "考勤电子证据报告", new_x="LMARGIN", new_y="NEXT")
    _paragraph(pdf, "Attendance evidence report", color=GREY)
    pdf.ln(2)
    if model.purpose_zh:  # what the bundle was made for, before anything else
        pdf.set_font(FONT, "B", 10)
        pdf.multi_cell(0, 5.5, model.purpose_zh, align="L", new_x="LMARGIN", new_y="NEXT")
        _paragraph(pdf, model.purpose_en, size=8, color=GREY)
        pdf.ln(2)
    if model.late:  # punches stamped later than the policy allows: their times could have been made in between
        pdf.set_font(FONT, "B", 10)
        pdf.set_text_color(*AMBER)
        pdf.multi_cell(0, 5.5, model.late[0], align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
        for line in model.late[1:]:
            _paragraph(pdf, f"· {line}")
        pdf.ln(2)
    if model.untimed:  # no third-party time: said before anything else is read as proof
        untimed_zh, fix_zh, untimed_en, fix_en = model.untimed
        pdf.set_font(FONT, "B", 10)
        pdf.set_text_color(*AMBER)
        pdf.multi_cell(0, 5.5, untimed_zh, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
        _paragraph(pdf, fix_zh)
        _paragraph(pdf, f"{untimed_en} {fix_en}", size=8, color=GREY)
        pdf.ln(2)
    logs = [f"{x.appliance}：日志 {x.log}，{x.span}" for x in model.logs] or ["（本期间无设备记录）"]
    rows = [
        ("员工工号", model.employee),
        *((("案件", model.case),) if model.case else ()),
        ("期间", f"{model.period_from} 至 {model.period_to}（{model.timezone}）"),
        *(("工厂" if n == 0 else "", plant) for n, plant in enumerate(model.plants)),
        *(("设备与日志" if n == 0 else "", log) for n, log in enumerate(logs)),
        ("公司服务器会签密钥（非第三方）", model.witness_kid),
        ("可信时间戳", model.timestamp),
        ("生成时间", model.generated_at),
        ("导出人", model.exported_by),
        ("导出软件", model.exporter),
        *(("设备软件" if n == 0 else "", line) for n, line in enumerate(model.software)),
        *(("天数与记录数" if n == 0 else "", line) for n, line in enumerate(model.counts)),
        (
            "证据包标识",
            f"{model.bundle_id}（manifest.json 的 bundle_id；清单经签名，列出本报告在内每个文件的 SHA-256）",
        ),
    ]
    pdf.set_font(FONT, size=9)
    with pdf.table(col_widths=(28, 152), first_row_as_headings=False, line_height=5, **LAYOUT) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=HEADINGS)
            row.cell(value)
        row = table.row()
        row.cell("结论", style=HEADINGS)
        color = GREEN if model.green else AMBER if model.ok else RED
        row.cell(model.verdict, style=FontFace(emphasis="BOLD", color=color))


def _days(pdf: FPDF, model: ReportModel) -> None:
    _heading(pdf, "每日考勤记录")
    _paragraph(
        pdf,
        "每条打卡记录均由考勤终端旁的边缘设备在记录时签名，并逐条纳入哈希链与默克尔树；云端收到后对其签名检查点"
        "加注时间并会签（公司服务器是用人单位自己的，非第三方；只有时间戳机构的时间戳是第三方的时间证明）。考勤机时间是考勤机自己的时钟，设备时间是边缘设备记录该打卡的时间。"
        + SCHEDULE_NOTE,
        size=8,
        color=GREY,
    )
    pdf.set_font(FONT, size=8.5)
    with pdf.table(
        col_widths=(24, 92, 64),
        headings_style=HEADINGS,
        line_height=4.5,
        **LAYOUT,
        cell_fill_mode=TableCellFillMode.NONE,
    ) as table:
        heading = table.row()
        for text in ("日期", "打卡（考勤机时间）", "设备记录与缺口"):
            heading.cell(text)
        for day in model.days:
            punches = [
                f"{p.terminal_time} {p.state}（{p.verify}，考勤机 {p.terminal}）\n"
                f"    设备时间 {p.appliance_time}；{p.offset}\n"
                f"    记录 {p.record}；公司服务器会签不晚于 {p.witnessed}" + (f"\n    {p.stamped}" if p.stamped else "")
                for p in day.punches
            ]
            notes = (
                ([f"设备记录时段 {day.recorded}"] if day.recorded else [])
                + ([day.clock] if day.clock else [])
                + list(day.notes)
            )
            punch_rows, note_rows = _rows(punches, PUNCHES_PER_ROW), _rows(notes, NOTES_PER_ROW)
            for n in range(max(len(punch_rows), len(note_rows), 1)):
                row = table.row()
                row.cell(f"{day.date}\n星期{day.weekday}" + ("" if n == 0 else "\n（续）"))
                if not day.punches and n == 0:
                    # 未覆盖 proves nothing either way: not marked in red as a finding
                    row.cell(day.status_text, style=FontFace(color=GREY if day.status == "uncovered" else RED))
                else:
                    row.cell("\n".join(punch_rows[n]) if n < len(punch_rows) else "")
                row.cell("\n".join(note_rows[n]) if n < len(note_rows) else "")


def _devices(pdf: FPDF, model: ReportModel) -> None:
    if not model.devices:
        return
    _heading(pdf, "期间内记录的考勤机")
    _paragraph(
        pdf,
        "型号、序列号与固件版本取自设备（边缘设备）读取考勤机时签名的记录"
        "（考勤机身份记录，在各设备日志的 system.jsonl 中）。",
        size=8,
        color=GREY,
    )
    pdf.set_font(FONT, size=7.5)
    with pdf.table(col_widths=(26, 22, 22, 26, 22, 24, 38), headings_style=HEADINGS, line_height=4, **LAYOUT) as table:
        heading = table.row()
        for text in ("考勤机", "类型", "型号", "序列号", "固件", "设备首次读取", "依据"):
            heading.cell(text)
        for line in model.devices:
            row = table.row()
            for text in (
                line.terminal,
                line.source,
                line.model,
                line.serial,
                line.firmware,
                line.first_seen,
                line.stated,
            ):
                row.cell(text)


def _contacts(pdf: FPDF, model: ReportModel) -> None:
    if not model.contacts:
        return
    _heading(pdf, "联系与送达记录")
    _paragraph(
        pdf,
        "云端证据日志中与本人案件有关的每一次联系尝试（含服务商回执）及人事人员的每一项操作；"
        "每条均由云端证据密钥签名，并有包含证明。",
        size=8,
        color=GREY,
    )
    pdf.set_font(FONT, size=8)
    with pdf.table(col_widths=(26, 62, 42, 50), headings_style=HEADINGS, line_height=4.2, **LAYOUT) as table:
        heading = table.row()
        for text in ("时间", "联系 / 操作", "结果", "依据"):
            heading.cell(text)
        for line in model.contacts:
            row = table.row()
            row.cell(line.at)
            row.cell(f"{line.what}\n短信原文：{line.words}" if line.words else line.what)
            row.cell(line.outcome)
            row.cell(f"{line.detail}\n{line.record}")


def _keys(pdf: FPDF, model: ReportModel) -> None:
    if not model.keys:
        return
    _heading(pdf, "设备公钥登记")
    _paragraph(pdf, KEYS_NOTE, size=8, color=GREY)
    pdf.set_font(FONT, size=7.5)
    with pdf.table(col_widths=(24, 56, 32, 40, 28), headings_style=HEADINGS, line_height=4, **LAYOUT) as table:
        heading = table.row()
        for text in ("设备", "公钥指纹", "登记时间", "登记记录", "适用范围"):
            heading.cell(text)
        for key in model.keys:
            row = table.row()
            row.cell(key.appliance)
            row.cell(f"{key.kid}\n({key.hex})")
            row.cell(key.registered)
            row.cell(key.logged)
            row.cell(key.status)


def _checks(pdf: FPDF, model: ReportModel) -> None:
    _heading(pdf, "导出时自检（以 punchproof verify 的结果为准）/ Exporter's self-check")
    _paragraph(pdf, SELF_CHECK_NOTE, color=GREY)
    pdf.set_font(FONT, size=8.5)
    with pdf.table(col_widths=(50, 16, 114), headings_style=HEADINGS, line_height=4.5, **LAYOUT) as table:
        heading = table.row()
        for text in ("项目", "结果", "说明"):
            heading.cell(text)
        for check in model.checks:
            detail = f"{check.detail}\n{check.detail_en}" if check.detail_en else check.detail
            for n, piece in enumerate(_pieces(detail)):
                row = table.row()
                row.cell(f"{check.label}\n{check.name}" if n == 0 else "（续）")
                row.cell("通过" if check.ok else "未通过", style=FontFace(color=GREEN if check.ok else RED))
                row.cell(piece)


def _gaps(pdf: FPDF, model: ReportModel) -> None:
    _heading(pdf, "记录缺口与异常")
    if not model.gaps:
        _paragraph(pdf, "无")
    for gap in model.gaps:
        with pdf.unbreakable() as block:  # a page's footer never lands inside a sentence
            _paragraph(block, f"• {gap.zh}")
            _paragraph(block, f"  {gap.en}", size=7.5, color=GREY)


def _files(pdf: FPDF, model: ReportModel) -> None:
    _heading(pdf, "证据包中的文件")
    pdf.set_font(FONT, size=7.5)
    with pdf.table(col_widths=(48, 62, 70), headings_style=HEADINGS, line_height=4, **LAYOUT) as table:
        heading = table.row()
        for text in ("文件", "SHA-256", "内容"):
            heading.cell(text)
        for item in model.files:
            row = table.row()
            row.cell(item.name)
            row.cell(item.sha256)
            row.cell(item.about)


def _steps(pdf: FPDF) -> None:
    _heading(pdf, "如何独立核验")
    for number, (text, command) in enumerate(VERIFY_STEPS, 1):
        with pdf.unbreakable() as block:  # a page's footer never lands inside a step
            _paragraph(block, f"{number}. {text}")
            if command:
                _paragraph(block, f"    {command}", color=GREY)
