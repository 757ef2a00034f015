"""Notices: the §3.3 elements, the embedded font, same input same bytes, versioned wording, SMS with the link."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from pypdf import PdfReader

from cloud.channels.base import Attachment, OutboundMessage
from cloud.notices import records, render, templates
from cloud.notices.render import MissingFacts, render_notice
from cloud.report_font import find_font
from cloud.store import database, open_db
from tests.cloud.notices import sample

# Each version's wording, pinned: editing a template in place fails here. Add a new version instead.
PINNED = {
    "cuigao@1": "f66f76ad7719d57b8081c95a507bd4a93a488ce34744990f3365bae8605092c3",
    "cuigao@2": "9014bf3884684331a3dcf59c41d529acd67e432b0bbe4545418b6ce9106fdccf",
    "kuanggong@1": "eaaf49f7d98ec37c8ffc9fb0c67e271a0ae4d7f752ed199416612d91503bc824",
    "jiechu@1": "82803344f0d19accd734b1baf93ff19846ce834337ef016a0290a4384ac2100f",
    "jiechu_zhengming@1": "2cbe9062a094b53b890fad45d238f6c73cdb601510e0473337bf1134de7868f7",
    "union_letter@1": "b92e34b46dc5fb0835891ddc805cdd7dac5108ebd4e58887ab46ca544a86b0b6",
    "gonggao@1": "53d3c71fda93caecbfe7d1983a49ef7867e0e1fb4d350ba498ab138a212bf097",
    "reminder@1": "61b76707a372143e05fe401aea70e4077746a6c2e74cef2854891c9b4d34e08e",
    "warning@1": "00c5a51389e38e3dd00f3ca0bcf7e42665d43773eedb7adfbdbcb6b731329264",
    "welfare@1": "4020816833532bc0a1b73f4d8622206a4272b1b16e662e9fba12edda08ba9ed8",
}
CASES = {
    "cuigao": sample.CUIGAO,
    "kuanggong": sample.KUANGGONG,
    "jiechu": sample.JIECHU,
    "jiechu_zhengming": sample.ZHENGMING,
    "union_letter": sample.UNION,
    "gonggao": sample.GONGGAO,
}


@pytest.fixture(scope="module")
def font():
    return find_font()


@pytest.fixture(scope="module")
def rendered(font):
    return {name: render_notice(templates.get(name), facts, font) for name, facts in CASES.items()}


def pdf_text(data: bytes) -> str:
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


def test_template_wording_is_pinned_per_version():
    assert {key: t.digest for key, t in templates.TEMPLATES.items()} == PINNED


def test_cuigao_states_every_required_element(rendered):
    text = pdf_text(rendered["cuigao"].pdf)
    for element in (
        "东莞市某某电子有限公司",  # employer
        "张三",
        "工号：1001",
        "身份证号后四位：123X",
        "装配二车间/操作工",  # employee identification
        "2026年3月2日、3月3日、3月4日",
        "共3个工作日",
        "假期已于2026年2月28日届满",  # facts
        "《员工手册》第五章第十二条",
        "2025年版（v3）",
        "2025年1月10日通过",
        "2025年1月15日公示",  # rule and version
        "2026年3月9日09:00（北京时间）前",
        "公司人力资源部",  # demand and deadline
        "0769-88881234",
        "https://hr.example.cn/n/3f9a1c2b7d4e5f60a1b2",  # how to reply
        "认定旷工",
        "第三十九条第（二）项",  # consequences
        "某电人〔2026〕第017号",
        "2026年3月5日",  # number and date
        "（盖章）",  # seal placeholder
        "EMS寄至劳动合同约定的送达地址",  # service
    ):
        assert element in text, element


@pytest.mark.parametrize(
    ("name", "elements"),
    [
        ("kuanggong", ["旷工通知书", "共6个工作日", "TEST-ZK-01", "3日内", "书面申辩", "EMS于2026年3月7日妥投"]),
        (
            "jiechu",
            [
                "解除劳动合同通知书",
                "草稿",
                "HT-2024-0317",
                "第四十三条",
                "2026年3月12日",
                "十五日内",
                "失业保险",
                "工资结算",
            ],
        ),
        (
            "jiechu_zhengming",
            ["解除劳动合同证明", "2024年3月1日至2027年2月28日", "2026年3月16日解除", "2年0个月", "装配二车间操作工"],
        ),
        ("union_letter", ["工会委员会", "第四十三条", "3个工作日内", "有权要求本单位纠正", "拟解除日期"]),
        ("gonggao", ["公告", "公告送达", "三十日", "解除劳动合同通知书", "某电人〔2026〕第025号"]),
    ],
)
def test_each_notice_has_its_elements(rendered, name, elements):
    text = pdf_text(rendered[name].pdf)
    for element in elements:
        assert element in text, element
    assert "（盖章）" in text


def test_the_chinese_font_is_embedded_as_a_subset(rendered):
    reader = PdfReader(io.BytesIO(rendered["cuigao"].pdf))
    fonts = [
        f["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        for f in reader.pages[0]["/Resources"]["/Font"].values()
        if "/DescendantFonts" in f.get_object()
    ]
    assert fonts and all("/FontFile2" in d for d in fonts)
    assert all(re.match(r"/[A-Z]{6}\+", str(d["/FontName"])) for d in fonts)  # a subset tag


def test_same_inputs_give_the_same_bytes(rendered, font):
    again = render_notice(templates.get("cuigao"), sample.CUIGAO, font)
    assert again.pdf == rendered["cuigao"].pdf and again.sms_text == rendered["cuigao"].sms_text
    other = render_notice(templates.get("cuigao"), replace(sample.CUIGAO, doc_no="某电人〔2026〕第 018 号"), font)
    assert other.pdf_sha256 != rendered["cuigao"].pdf_sha256


def test_sms_text_is_short_and_carries_the_link(rendered):
    for notice in rendered.values():
        assert notice.sms_text.endswith(sample.CUIGAO.reply_link)
        assert len(notice.sms_text) <= 140
    assert rendered["cuigao"].sms_params["link"] == sample.CUIGAO.reply_link


def test_missing_facts_are_named(font):
    with pytest.raises(MissingFacts) as caught:
        render_notice(templates.get("cuigao"), replace(sample.CUIGAO, deadline=None, handbook=None), font)
    assert caught.value.missing == ["handbook", "deadline"]
    with pytest.raises(MissingFacts, match="union_notified_on"):  # an employer with a union must have told it
        render_notice(templates.get("jiechu"), replace(sample.JIECHU, union_notified_on=None), font)


def test_newest_version_is_the_default_and_old_ones_stay(monkeypatch):
    current = templates.get("cuigao")
    newer = replace(current, version=str(int(current.version) + 1), title="关于限期返岗的通知")
    monkeypatch.setitem(templates.TEMPLATES, newer.key, newer)  # the registry as it was after the test
    assert templates.get("cuigao") is newer and templates.get("cuigao", "1") is templates.CUIGAO_1
    with pytest.raises(templates.UnknownTemplate):
        templates.get("cuigao", "99")


def test_the_kept_pdf_is_the_attached_pdf(rendered, tmp_path: Path, clock):
    open_db(f"sqlite:///{tmp_path}/cloud.sqlite3")
    try:
        notice = rendered["cuigao"]
        row = records.keep("case-2026-0042", notice, clock)
        assert records.keep("case-2026-0042", notice, clock).id == row.id
        message = OutboundMessage(
            "case-2026-0042",
            "L3",
            "a@b.cn",
            "email",
            notice.template_id,
            notice.template_version,
            notice.title,
            notice.text,
            (Attachment(notice.file_name, notice.pdf),),
        )
        assert message.attachments[0].sha256 == row.pdf_sha256 == hashlib.sha256(bytes(row.pdf)).hexdigest()
    finally:
        database.close()


def test_a_character_the_text_did_not_name_is_still_embedded(rendered, font, monkeypatch):
    """The font is cut from the text before layout; if the layout draws more, it is cut again from what was
    drawn, and the notice comes out byte for byte as it does when the text named every character."""
    monkeypatch.setattr(render, "_drawn_text", lambda *args: "")
    again = render_notice(templates.get("cuigao"), sample.CUIGAO, font)
    assert again.pdf == rendered["cuigao"].pdf
