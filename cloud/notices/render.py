"""A notice rendered: the plain text, a PDF with its Chinese font embedded, a short SMS text with the link, and
the SHA-256 of each.

Same template version and same facts give the same bytes: the PDF's dates come from the issue date, fpdf2 is
pinned to a minor version, and the font subset is cut the same way each time (``cloud.report_font``), so a
notice can be re-rendered later and compared with the hash in the contact log.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import string
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fpdf import FPDF

from cloud.notices.facts import NoticeFacts
from cloud.notices.templates import NoticeTemplate
from cloud.report_font import CjkFont, truetype_subset

FONT = "cjk"
FOOTER = "{template} 第{version}版 · 文号 {doc_no} · 第 {page} 页，共 {{nb}} 页"
SEAL = "（盖章）"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DRAFT = "草稿：须经人力资源部确认后方可送达"


class MissingFacts(Exception):
    def __init__(self, template: NoticeTemplate, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(f"{template.key} cannot be rendered without: {', '.join(missing)}")


@dataclass(frozen=True)
class RenderedNotice:
    template_id: str
    template_version: str
    title: str
    doc_no: str
    text: str  # the notice as plain text, signature block included
    pdf: bytes
    sms_text: str
    sms_params: dict[str, str]  # variables for the providers' approved SMS templates
    file_name: str

    @property
    def pdf_sha256(self) -> str:
        return hashlib.sha256(self.pdf).hexdigest()

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def sms_sha256(self) -> str:
        return hashlib.sha256(self.sms_text.encode()).hexdigest()


def _lookup(facts: NoticeFacts, path: str) -> Any:
    value: Any = facts
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


@functools.lru_cache(maxsize=16)
def _environment(tz: ZoneInfo) -> jinja2.Environment:
    """One environment per zone, kept: a template's compiled form is kept with it (``_compiled``)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)  # noqa: S701 - plain text and PDF, never HTML
    env.filters["d"] = lambda day: f"{day.year}年{day.month}月{day.day}日"
    env.filters["dt"] = lambda moment: (
        lambda local: f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}（北京时间）"
    )(moment.astimezone(tz))
    env.filters["dates"] = lambda days: "、".join(
        f"{d.month}月{d.day}日" if n and d.year == days[n - 1].year else f"{d.year}年{d.month}月{d.day}日"
        for n, d in enumerate(days)
    )
    return env


@functools.lru_cache(maxsize=256)
def _compiled(tz: ZoneInfo, source: str) -> jinja2.Template:
    """A template's text compiled once per zone (compiling took longer than rendering); keyed by the text itself, so
    two versions of a template never share one."""
    return _environment(tz).from_string(source)


@dataclass(frozen=True)
class PdfSource:
    """Everything a notice's PDF draws, fixed when its words are: the PDF is a function of this and the font alone,
    so it can be made after the notice went out (``render_pdf``) and gives the bytes it would have given then."""

    template_id: str
    template_key: str
    template_title: str
    template_version: str
    doc_no: str
    draft: bool
    employer: str
    issued_on: date
    tz: str
    body: str

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["issued_on"] = self.issued_on.isoformat()
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PdfSource:
        data = json.loads(text)
        return cls(**{**data, "issued_on": date.fromisoformat(data["issued_on"])})


@dataclass(frozen=True)
class NoticeWords:
    """A notice's words as they go out (its text, its SMS), and what its PDF will draw (``source``)."""

    template_id: str
    template_version: str
    title: str
    doc_no: str
    text: str
    sms_text: str
    sms_params: dict[str, str]
    file_name: str
    source: PdfSource

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def sms_sha256(self) -> str:
        return hashlib.sha256(self.sms_text.encode()).hexdigest()

    def with_pdf(self, pdf: bytes) -> RenderedNotice:
        return RenderedNotice(
            template_id=self.template_id,
            template_version=self.template_version,
            title=self.title,
            doc_no=self.doc_no,
            text=self.text,
            pdf=pdf,
            sms_text=self.sms_text,
            sms_params=self.sms_params,
            file_name=self.file_name,
        )


def render_notice(
    template: NoticeTemplate, facts: NoticeFacts, font: CjkFont, *, tz: ZoneInfo = SHANGHAI
) -> RenderedNotice:
    words = render_words(template, facts, tz=tz)
    return words.with_pdf(render_pdf(words.source, font))


def render_words(template: NoticeTemplate, facts: NoticeFacts, *, tz: ZoneInfo = SHANGHAI) -> NoticeWords:
    """The notice's text, SMS and PDF source, without drawing the PDF (a few milliseconds rather than some fifty)."""
    required = list(template.required) + (list(template.required_with_union) if facts.employer.union_name else [])
    missing = [path for path in required if not _lookup(facts, path)]
    if missing:
        raise MissingFacts(template, missing)
    env = _environment(tz)
    names = {"f": facts, "e": facts.employee, "r": facts.employer, "h": facts.handbook}
    try:
        body = _compiled(tz, template.body).render(**names).strip()
        sms = " ".join(_compiled(tz, template.sms).render(**names).split())
    except jinja2.UndefinedError as err:
        raise MissingFacts(template, [str(err)]) from err
    issued = env.filters["d"](facts.issued_on)
    signature = f"{facts.employer.name}{SEAL}\n{issued}"
    head = [template.title, f"文号：{facts.doc_no}    发出日期：{issued}"] + ([DRAFT] if facts.draft else [])
    text = "\n".join(head) + "\n\n" + body + "\n\n" + signature + "\n"
    params = {"name": facts.employee.name, "link": facts.reply_link, "doc_no": facts.doc_no}
    if facts.absent_days:
        params["date"] = env.filters["d"](facts.absent_days[0])
    if facts.deadline:
        params["deadline"] = env.filters["dt"](facts.deadline)
    source = PdfSource(
        template_id=template.id,
        template_key=template.key,
        template_title=template.title,
        template_version=template.version,
        doc_no=facts.doc_no,
        draft=facts.draft,
        employer=facts.employer.name,
        issued_on=facts.issued_on,
        tz=tz.key,
        body=body,
    )
    return NoticeWords(
        template_id=template.id,
        template_version=template.version,
        title=template.title,
        doc_no=facts.doc_no,
        text=text,
        sms_text=sms,
        sms_params=params,
        file_name=f"{template.title}-{facts.doc_no}.pdf".replace("/", "-"),
        source=source,
    )


def font_json(font: CjkFont) -> str:
    """The font a PDF is drawn with, as kept beside the notice's words (``pdf_of`` draws with it later)."""
    bold = str(font.bold_path) if font.bold_path else None
    data = {"path": str(font.path), "index": font.index, "bold_path": bold, "bold_index": font.bold_index}
    return json.dumps(data, sort_keys=True)


def pdf_of(source: str, font: str) -> bytes:
    """The PDF of a notice from its kept source and font (``PdfSource.to_json``, ``font_json``): a plain function of
    strings, so that another process can draw it."""
    data = json.loads(font)
    bold = Path(data["bold_path"]) if data["bold_path"] else None
    cjk = CjkFont(Path(data["path"]), int(data["index"]), bold, int(data["bold_index"]))
    return render_pdf(PdfSource.from_json(source), cjk)


class _Pages(FPDF):
    def __init__(self, footer: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.footer_text = footer
        self.used: dict[str, set[str]] = {"": set(), "B": set()}  # the characters drawn, by style

    def normalize_text(self, text: str) -> str:
        self.used.setdefault(self.font_style, set()).update(text)
        return super().normalize_text(text)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        self.cell(0, 5, self.footer_text.replace("{page}", str(self.page_no())), align="C")
        self.set_text_color(0)


def render_pdf(source: PdfSource, font: CjkFont) -> bytes:
    """The PDF, with each face cut down to the characters it draws.

    The characters are known from the text before anything is drawn (``_drawn_text``, ``_bold_text``), so the
    page is laid out once, with the cut fonts. Should the layout draw a character the text did not name, or not
    draw one it did, the fonts are cut again from what was drawn and the page laid out again: the glyphs embedded
    are always exactly the characters drawn in each face (the regular one with the footer's and the digits), so
    the same notice gives the same bytes. (Laying the page out first with the whole CJK font, only to learn its
    characters, cost more than the rest.) The bold face has the title's few characters only.
    """
    footer = FOOTER.format(
        template=source.template_title, version=source.template_version, doc_no=source.doc_no, page="{page}"
    )
    extra = set(footer + string.digits)
    chars = {"": set(_drawn_text(source, footer)) | extra, "B": set(_bold_text(source))}
    with tempfile.TemporaryDirectory(prefix="punchproof-notice-") as folder:
        for _ in range(2):
            regular, bold = _cut(font, chars, Path(folder))
            pages = _draw(source, footer, (regular, 0), (bold, 0))
            drawn = {"": pages.used[""] | extra, "B": pages.used["B"]}
            if drawn == chars:
                return bytes(pages.output())
            chars = drawn
    raise RuntimeError(f"notice {source.template_id}: the characters drawn changed with the font")  # never: same text


def footer_of(template: NoticeTemplate, doc_no: str) -> str:
    """The line at the foot of each page ("{page}" and fpdf's "{nb}" filled in as it draws): the template named
    by its title, as the reader knows it ("关于限期返岗的通知（催告函） 第2版"), never by its id."""
    return FOOTER.format(template=template.title, version=template.version, doc_no=doc_no, page="{page}")


def _issued(source: PdfSource) -> str:
    day = source.issued_on
    return f"{day.year}年{day.month}月{day.day}日"


def _drawn_text(source: PdfSource, footer: str) -> str:
    """Every string ``_draw`` hands to the PDF in the regular face, as it hands them."""
    paragraphs = source.body.split("\n\n")
    return "".join([f"文号：{source.doc_no}", *paragraphs, source.employer, SEAL, _issued(source), footer])


def _bold_text(source: PdfSource) -> str:
    """Every string ``_draw`` hands to the PDF in the bold face: the title, and the draft's warning."""
    return source.template_title + (DRAFT if source.draft else "")


def _cut(font: CjkFont, chars: dict[str, set[str]], folder: Path) -> tuple[Path, Path]:
    """The regular and the bold face, each cut to its characters (``chars`` by fpdf's style, "" and "B"); without
    a bold face, the regular one cut to both serves for both."""
    regular = bold = folder / "regular.ttf"
    if font.bold_path is None:
        truetype_subset(font.path, font.index, "".join(sorted(chars[""] | chars["B"])), regular)
        return regular, bold
    truetype_subset(font.path, font.index, "".join(sorted(chars[""])), regular)
    bold = folder / "bold.ttf"
    truetype_subset(font.bold_path, font.bold_index, "".join(sorted(chars["B"])), bold)
    return regular, bold


def _draw(source: PdfSource, footer: str, regular: tuple[Path, int], bold: tuple[Path, int]) -> _Pages:
    pdf = _Pages(footer)
    pdf.add_font(FONT, "", str(regular[0]), collection_font_number=regular[1])
    pdf.add_font(FONT, "B", str(bold[0]), collection_font_number=bold[1])
    for added in pdf.fonts.values():  # the cut font's glyphs are embedded as compiled, not unpacked and compiled again
        added.ttfont.recalcBBoxes = False
    pdf.set_creation_date(datetime.combine(source.issued_on, time(0), ZoneInfo(source.tz)))
    pdf.set_title(f"{source.template_title} {source.doc_no}")
    pdf.set_subject(f"模板 {source.template_key}；文号 {source.doc_no}")
    pdf.set_author(source.employer)
    pdf.set_creator("Punchproof")
    pdf.set_lang("zh-CN")
    pdf.set_margins(25, 20, 25)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()
    pdf.set_font(FONT, "B", 18)
    pdf.cell(0, 12, source.template_title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    pdf.cell(0, 6, f"文号：{source.doc_no}", align="R", new_x="LMARGIN", new_y="NEXT")
    if source.draft:
        pdf.set_text_color(179, 38, 30)
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, DRAFT, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
    pdf.ln(4)
    pdf.set_font(FONT, size=11.5)
    for paragraph in source.body.split("\n\n"):
        pdf.multi_cell(0, 7, paragraph, align="L", new_x="LMARGIN", new_y="NEXT", wrapmode="CHAR")  # CJK: any char
        pdf.ln(2.5)
    _signature(pdf, source.employer, _issued(source))
    return pdf


def _signature(pdf: FPDF, employer: str, issued: str) -> None:
    """The employer's name, a dashed circle where the seal goes, and the date, at the right."""
    if pdf.get_y() > pdf.h - 75:
        pdf.add_page()
    pdf.ln(8)
    left = pdf.w - pdf.r_margin - 80
    top = pdf.get_y()
    pdf.set_draw_color(150)
    with pdf.local_context():
        pdf.set_dash_pattern(dash=1.5, gap=1.5)
        pdf.circle(x=left + 40, y=top + 16, radius=17)
    pdf.set_xy(left, top + 4)
    pdf.set_font(FONT, size=11.5)
    pdf.cell(80, 7, employer, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(120)
    pdf.cell(80, 7, SEAL, align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.set_xy(left, top + 36)
    pdf.cell(80, 7, issued, align="C", new_x="LMARGIN", new_y="NEXT")
