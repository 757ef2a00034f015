"""report.pdf: in the bundle, covered by SHA256SUMS, readable without Chinese fonts, the same story as report.html."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from datetime import UTC, date, datetime
from html import unescape
from pathlib import Path

import pytest
from pypdf import PdfReader

from cloud import clock as cloud_clock
from cloud.config import CloudSettings, ConfigError
from cloud.evidence import report_checks, report_facts
from cloud.evidence import report_model as evidence_model
from cloud.evidence import report_pdf as evidence_pdf
from cloud.evidence.export import ExportError, export_bundle
from cloud.evidence.report_html import report_html
from cloud.evidence.report_model import build_model
from cloud.evidence.report_pdf import report_pdf
from cloud.evidence.tsa import TimestampClient
from cloud.evidence.witness_log import WitnessLog
from cloud.report_font import PROBE, ReportFontMissing, find_font, truetype_subset
from ledger import evidence as ledger_evidence
from ledger.evidence import SUMS, Event, Report, verify_bundle
from tests.cloud import test_evidence as base

world, tsa = base.world, base.tsa  # two working days at a plant: 1001 punches on the first only; a real TSA
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 3)  # the appliance begins recording on the 2nd
one_key = pytest.mark.parametrize("world", [False], indirect=True)  # the key-rotated variant adds nothing here


def export(world, **kwargs) -> bytes:
    witness_log = WitnessLog(world["witness"], world["clock"])
    return export_bundle(
        base.EMPLOYEE,
        FIRST,
        LAST,
        witness=world["witness"].verify_key,
        clock=world["clock"],
        **({"witness_log": witness_log} | kwargs),
    )


def squeeze(text: str) -> str:
    """Without whitespace: line breaks from wrapping, and the spaces pypdf puts between CJK glyphs, do not count."""
    return re.sub(r"\s+", "", text)


def pdf_text(data: bytes) -> list[str]:
    return [squeeze(page.extract_text()) for page in PdfReader(io.BytesIO(data)).pages]


def html_text(data: bytes) -> str:
    return squeeze(unescape(re.sub(r"<[^>]+>", "", data.decode())))


def fonts(data: bytes) -> list[dict]:
    found = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            found[font["/BaseFont"]] = font
    return list(found.values())


def test_the_bundle_has_a_pdf_report_in_chinese_that_names_the_bundle_on_every_page(world, caplog):
    with caplog.at_level(logging.WARNING):
        files = base.unpack(export(world))
    assert not [r.message for r in caplog.records if "missing" in r.message], "every character has its glyph"
    assert files["report.pdf"].startswith(b"%PDF-")
    pages = pdf_text(files["report.pdf"])
    text = "".join(pages)
    for expected in ("考勤电子证据报告", "员工工号1001", "本证据包没有第三方时间戳", "07:59:30上班", "17:30:30下班"):
        assert expected in text, expected
    assert "无打卡记录" in text and "未覆盖：设备当时尚未开始记录，不计缺勤" in text  # the 1st: before it began
    assert "设备无任何记录（781分钟）：设备未正常关机（如断电）后重新启动" in text, (
        "the overnight power-off, on its days"
    )
    assert "punchproofverify证据包.zip" in text, "how to verify it"
    bundle_id = json.loads(files["manifest.json"])["bundle_id"]  # the evidence files' hash (FORMAT.md)
    assert len(pages) >= 2
    for number, page in enumerate(pages, 1):
        assert f"证据包{bundle_id[:16]}" in page, f"page {number} names the bundle"
        assert f"第{number}页，共{len(pages)}页" in page
        assert "生成于2026-03-0407:50:00（北京时间）" in page, "the export time, in the plant's zone, as people name it"


@one_key
def test_the_days_are_told_apart_in_the_model_both_reports_are_drawn_from(world):
    files = base.unpack(export(world))
    report = verify_bundle(base.repack(files, resum=False), witness_key=world["witness"].verify_key)
    model = build_model(json.loads(files["manifest.json"]), report, files)
    assert [(d.date, d.status) for d in model.days] == [
        ("2026-03-01", "uncovered"),  # before the log's first record: the appliance was not recording yet
        ("2026-03-02", "punched"),
        ("2026-03-03", "no_punch"),
    ]
    punch = model.days[1].punches[0]
    assert (punch.terminal_time, punch.appliance_time, punch.state) == ("07:59:30", "07:59:30", "上班")
    assert punch.offset == "考勤机与设备时钟一致（相差不到 1 秒）"
    assert punch.record in files and json.loads(files[punch.record])["emp"] == base.EMPLOYEE
    assert any("非正常关机" in note for note in model.days[2].notes), "the unclean restart, on its day"


@one_key
def test_the_pdf_and_the_html_say_the_same(world):
    files = base.unpack(export(world))
    report = verify_bundle(base.repack(files, resum=False), witness_key=world["witness"].verify_key)
    # as the exporter had them when it drew the reports: the signed manifest, which lists the reports, came after
    written = {n: d for n, d in files.items() if n not in ("report.html", "report.pdf", SUMS, "manifest.sig")}
    written.pop("manifest.json")
    model = build_model(json.loads(files["manifest.json"]), report, written)
    pdf, html = "".join(pdf_text(files["report.pdf"])), html_text(files["report.html"])
    facts = [model.verdict, model.bundle_id, model.generated_at, model.footer, model.witness_kid, *model.plants]
    facts += [x for line in model.logs for x in (line.appliance, line.log, line.span)]
    facts += [x for day in model.days for x in (day.date, day.status_text, day.recorded, *day.notes)]
    facts += [x for day in model.days for p in day.punches for x in (p.record, p.offset, p.witnessed, p.terminal)]
    facts += [x for gap in model.gaps for x in (gap.zh, gap.en)]
    # the checks of the reports themselves and of the final manifest ran after the reports were drawn
    shown = [check for check in model.checks if check.name not in ("manifest signature", "report times")]
    facts += [x for check in shown for x in (check.label, check.name, check.detail)]
    # the export's own check ran before the reports were added: its file count is not the bundle's
    facts = [fact for fact in facts if not re.fullmatch(r"\d+ files", fact)]
    facts += [x for line in model.files for x in (line.name, line.sha256, line.about)]
    facts += [text for text, _command in evidence_model.VERIFY_STEPS]
    assert len(facts) > 40
    assert [fact for fact in facts if squeeze(fact) not in pdf] == []
    assert [fact for fact in facts if squeeze(fact) not in html] == []
    listed = {line.name: line.sha256 for line in model.files}
    assert listed["logs/0/leaves.txt"] == hashlib.sha256(files["logs/0/leaves.txt"]).hexdigest()
    assert listed["MANUAL-CHECKS.md"] == hashlib.sha256(files["MANUAL-CHECKS.md"]).hexdigest()


@one_key
def test_the_chinese_font_is_embedded_as_a_subset_with_a_unicode_map(world):
    files = base.unpack(export(world))
    embedded = fonts(files["report.pdf"])
    assert embedded, "the PDF uses fonts"
    assert len(embedded) == 2, "regular and bold"
    for font in embedded:
        assert font["/Subtype"] == "/Type0", f"{font['/BaseFont']} is a composite (CID) font, not a base-14 one"
        assert font["/Encoding"] == "/Identity-H"
        assert re.fullmatch(r"/[A-Z]{6}\+.+", font["/BaseFont"]), "a subset, named as PDF requires"
        assert "/ToUnicode" in font, "text can be searched and copied"
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert "/FontFile3" not in descriptor, "TrueType outlines, the form every reader knows"
        glyphs = descriptor["/FontFile2"].get_object().get_data()
        assert len(glyphs) > 1000, "the glyphs are in the file (what pdffonts shows as emb=yes)"
        assert len(glyphs) < 500_000, "a subset, not the whole 16 MB collection"


@one_key
def test_report_pdf_is_covered_by_sha256sums_and_a_changed_byte_is_detected(world):
    files = base.unpack(export(world))
    listed = dict(reversed(line.split("  ", 1)) for line in files[SUMS].decode().splitlines())
    assert listed["report.pdf"] == hashlib.sha256(files["report.pdf"]).hexdigest()
    assert verify_bundle(base.repack(files, resum=False), witness_key=world["witness"].verify_key).ok
    pdf = bytearray(files["report.pdf"])
    pdf[len(pdf) // 2] ^= 1
    files["report.pdf"] = bytes(pdf)
    report = verify_bundle(base.repack(files, resum=False), witness_key=world["witness"].verify_key)
    assert not report.ok
    assert any("report.pdf" in problem for problem in base.failed(report)), base.failed(report)


@one_key
def test_a_re_export_is_byte_identical_and_dated_at_the_export(world):
    first, again = export(world), export(world)
    assert first == again, "same records, same export time: the same bundle, PDF and ZIP alike"
    pdf = base.unpack(first)["report.pdf"]
    assert PdfReader(io.BytesIO(pdf)).metadata.creation_date == datetime(2026, 3, 3, 23, 50, tzinfo=UTC)


@one_key
def test_without_a_chinese_font_the_export_says_what_to_install(world, tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="apt-get install fonts-noto-cjk"):
        export(world, report_font=str(tmp_path / "missing.ttc"))
    latin = tmp_path / "latin.ttf"
    noto = find_font()
    truetype_subset(noto.path, noto.index, "ABCabc0123", latin)
    with pytest.raises(ExportError, match="has no Chinese glyphs.*fonts-noto-cjk"):
        export(world, report_font=str(latin))
    monkeypatch.setattr("cloud.report_font.DEFAULT_FONTS", ((str(tmp_path / "none.ttc"), "fonts-none"),))
    with pytest.raises(ReportFontMissing, match=r"none\.ttc \(fonts-none\).*apt-get install fonts-noto-cjk"):
        find_font()


@one_key
def test_a_configured_truetype_font_without_a_bold_face_works_too(world, tmp_path, caplog):
    """The fallbacks (WenQuanYi, Droid) are TrueType: one is made here from Noto, with the report's characters."""
    font, noto = tmp_path / "cjk-truetype.ttf", find_font()
    sources = (
        evidence_model,
        evidence_pdf,
        ledger_evidence,
        cloud_clock,
        report_checks,
        report_facts,
    )  # cloud.clock: the zone's name
    used = "".join(Path(m.__file__).read_text() for m in sources) + PROBE
    truetype_subset(noto.path, noto.index, used + "".join(map(chr, range(0x20, 0x7F))), font)
    with caplog.at_level(logging.WARNING):
        files = base.unpack(export(world, report_font=str(font)))
    assert not [r.message for r in caplog.records if "missing" in r.message]
    (embedded,) = fonts(files["report.pdf"])  # no bold face beside this one: headings use it too
    descriptor = embedded["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
    assert "/FontFile2" in descriptor and "/FontFile3" not in descriptor
    assert "无打卡记录" in "".join(pdf_text(files["report.pdf"]))


# -- the model and the PDF on a harder case, built by hand: a long day, a failed check, every kind of gap --------

LOG = "punchproof/dongguan-1/pi-01/1"


def at(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp())


def hard_case() -> tuple[dict, Report, dict[str, bytes]]:
    manifest = {
        "employee": "1001",
        "period": {"from": "2026-03-02", "to": "2026-03-03"},
        "plants": [{"id": "dongguan-1", "name": "东莞一厂", "timezone": "Asia/Shanghai"}],
        "logs": [
            {"log": LOG, "plant": "dongguan-1", "appliance": "pi-01", "from_seq": 0, "to_size": 100, "disclosed": 40}
        ],
        "witness_kid": "kid",
        "generated_at": "2026-03-04T01:00:00+00:00",
    }
    report = Report(
        covered_days={"2026-03-02"}, recorded={"2026-03-02": (at("2026-03-02T07:00:00"), at("2026-03-02T21:00:00"))}
    )
    report.add("SHA256SUMS", True, "9 files")
    report.gaps.append("the bundle has no witness log: its checkpoints are not proven in the cloud's signed log")
    report.add(
        f"{LOG} [0, 100): disclosed records",
        False,
        "; ".join(f"seq {n} differs from the log's leaf" for n in range(400)),
    )
    for n in range(30):
        term = {
            "t": f"2026-03-02T08:{n:02d}:05",
            "sn": "ZK-1",
            "name": "gate-1",
            "state": n % 2,
            "verify": 1,
            "off_ms": 2500 if n else -300_000,
        }
        fields = {
            "type": "punch",
            "emp": "1001",
            "t_wall_ms": (at("2026-03-02T08:00:00") + 60 * n) * 1000,
            "term": term,
        }
        report.disclosed.append(
            {"log": LOG, "seq": 10 + n, "fields": fields, "not_after": None if n else at("2026-03-02T08:10:00")}
        )
    dayfact = {"type": "dayfact", "emp": "1001", "t_wall_ms": at("2026-03-02T22:00:00") * 1000}
    report.disclosed.append({"log": LOG, "seq": 95, "fields": dayfact, "not_after": None})
    for seq in range(60, 90):
        report.gap(
            Event(
                "unwitnessed", LOG, at("2026-03-02T20:00:00") + seq, seq=seq, detail=f"{LOG} seq {seq}: not witnessed"
            )
        )
    report.gap(
        Event("clock_jump", LOG, at("2026-03-02T12:00:00"), seq=50, amount=-3 * 3600, detail="jumped back by 180 min")
    )
    report.events.append(
        Event("incident", LOG, at("2026-03-02T13:00:00"), seq=51, detail="bad_terminal_record: year 2000")
    )
    report.gap(
        Event("power_gap", LOG, at("2026-03-02T21:00:00"), end=at("2026-03-03T09:30:00"), detail="nothing recorded")
    )
    return manifest, report, {"manifest.json": json.dumps(manifest).encode()}


def test_the_model_places_every_kind_of_gap_on_its_days():
    model = build_model(*hard_case())
    first, second = model.days
    assert (first.status, second.status) == ("punched", "no_device")
    assert first.recorded == "07:00–21:00" and first.punches[0].witnessed == "2026-03-02 08:10:00"
    assert (
        first.punches[0].offset == "考勤机时钟比设备慢 5 分 0 秒"
        and first.punches[1].offset == "考勤机时钟比设备快 2 秒"
    )
    assert first.punches[1].witnessed == "（未经公司服务器会签）"
    unwitnessed = [g for g in model.gaps if g.kind == "unwitnessed"]
    assert len(unwitnessed) == 1 and "30 条披露记录（日志第 60 至 89 条）尚未经公司服务器会签" in unwitnessed[0].zh
    assert any("设备时钟向后跳变约 180 分钟" in note for note in first.notes)
    # the incident's words on the Chinese line; its kind and the parser's message stay in the English column
    assert any("异常事件（日志第 51 条）" in n and "bad_terminal_record" not in n for n in first.notes)
    assert "本人的考勤结论记录（日志第 95 条）" in first.notes
    power = (
        "2026-03-02 21:00:00 至 2026-03-03 09:30:00 设备无任何记录（750 分钟）："
        "该时段无记录（原因未知：可能断电、设备停止或网络中断）"
    )
    assert power in first.notes and power in second.notes, "a gap across midnight shows on both days"
    assert [c.label for c in model.checks] == ["文件未被改动", "披露记录的签名与链接"]
    (bundle_wide,) = [g for g in model.gaps if g.kind == "bundle"]
    assert bundle_wide.zh.startswith("本证据包不含公司服务器的会签日志") and bundle_wide.zh not in first.notes
    assert model.timestamp == "本证据包不含公司服务器的会签日志，也没有第三方时间戳"
    assert not model.ok and model.verdict.startswith("校验未全部通过")
    html = html_text(report_html(model).encode())
    assert squeeze(power) in html and squeeze(unwitnessed[0].zh) in html and "校验未全部通过" in html


def test_the_report_font_is_read_from_the_configuration():
    settings = CloudSettings.from_sections({"report": {"font": "/srv/fonts/wqy-microhei.ttc"}})
    assert settings.report_font == "/srv/fonts/wqy-microhei.ttc"
    with pytest.raises(ConfigError, match="report.font: expected str"):
        CloudSettings.from_sections({"report": {"font": 1}})


def test_a_long_day_and_a_long_failure_are_cut_into_rows_that_fit_a_page():
    model = build_model(*hard_case())
    pdf = report_pdf(model, find_font())
    pages = pdf_text(pdf)
    text = "".join(pages)
    assert len(pages) >= 3
    assert all(f"logs/0/records/{10 + n}.json" in text for n in range(30)), "every punch of the long day"
    assert "seq399differsfromthelog'sleaf" in text and "（续）" in text
    assert "校验未全部通过" in text


@one_key
def test_a_timestamped_export_says_so_and_lists_the_stamps(world, tsa, tmp_path):
    ca = tmp_path / "tsa-ca.pem"
    ca.write_bytes(tsa.ca_pem)
    stamper = TimestampClient(tsa.url, tsa.ca_pem)
    files = base.unpack(
        export(world, witness_log=WitnessLog(world["witness"], world["clock"], stamper=stamper), tsa_ca=ca)
    )
    text = "".join(pdf_text(files["report.pdf"]))
    assert "本次导出已由RFC3161时间戳机构盖章" in text and "公司服务器会签日志与第三方时间戳" in text
    stamp = next(n for n in files if n.startswith("witness/stamps/"))
    assert stamp in text and hashlib.sha256(files[stamp]).hexdigest() in text
