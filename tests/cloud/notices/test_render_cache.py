"""The notice render's caches (the font's faces read once per process, each glyph converted once, templates compiled
once): the same notice gives the same bytes whatever was rendered before it, and nothing kept for one face, font
file or template version shows up in another."""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont

from cloud import report_font
from cloud.notices import render, templates
from cloud.notices.render import render_notice
from cloud.report_font import find_font, subset_bytes
from tests.cloud.notices import sample

CHARS = "关于连续缺勤的告知（主管）文号：某电人〔2026〕第0123456789号，。王伟芳"
OTHER = "湖南省邵阳市某某县镇村组张三李四赵钱孙"


@pytest.fixture(scope="module")
def font():
    return find_font()


def _cold() -> None:
    report_font._SOURCES.clear()
    render._compiled.cache_clear()


def _outlines(data: bytes) -> dict[str, tuple]:
    font = TTFont(io.BytesIO(data))
    glyf, hmtx = font["glyf"], font["hmtx"]
    out = {}
    for code, name in font.getBestCmap().items():
        glyph = glyf[name]
        drawn = glyph.numberOfContours > 0
        shape = (list(glyph.coordinates), list(glyph.flags), list(glyph.endPtsOfContours)) if drawn else None
        out[chr(code)] = (shape, hmtx[name])
    return out


def test_a_cut_face_draws_what_fonttools_subsetter_gives(font):
    """The font put together from the converted glyphs has, for every character, the outline and advance that
    fontTools' subsetter and the same conversion give (how the render cut the font before it kept anything)."""
    reference = report_font._face(font.path, font.index)
    for tag in ("GSUB", "GPOS", "GDEF", "BASE", "vhea", "vmtx", "VORG"):
        if tag in reference:
            del reference[tag]
    cutter = subset.Subsetter(subset.Options(notdef_outline=True, layout_features=[]))
    cutter.populate(unicodes={ord(c) for c in CHARS})
    cutter.subset(reference)
    glyphs, expected = reference.getGlyphSet(), {}
    for code, name in reference.getBestCmap().items():
        pen = TTGlyphPen(None)
        glyphs[name].draw(Cu2QuPen(pen, max_err=reference["head"].unitsPerEm / 1000, reverse_direction=True))
        glyph = pen.glyph()
        drawn = glyph.numberOfContours > 0
        if drawn:
            glyph.recalcBounds(None)
        shape = (list(glyph.coordinates), list(glyph.flags), list(glyph.endPtsOfContours)) if drawn else None
        expected[chr(code)] = (shape, (reference["hmtx"][name][0], glyph.xMin if drawn else 0))
    cut = subset_bytes(font.path, font.index, CHARS)
    assert _outlines(cut) == expected and set(expected) == set(CHARS)
    assert TTFont(io.BytesIO(cut)).getGlyphOrder()[0] == ".notdef"


def test_the_same_characters_give_the_same_font_whatever_was_cut_before(font):
    _cold()
    first = subset_bytes(font.path, font.index, CHARS)
    subset_bytes(font.path, font.index, OTHER)  # other glyphs converted and kept meanwhile
    assert subset_bytes(font.path, font.index, CHARS) == first
    assert subset_bytes(font.path, font.index, "".join(reversed(CHARS)) + CHARS[:5]) == first


def _warning(n: int):
    employee = replace(sample.EMPLOYEE, name=["王伟", "李芳", "赵敏杰", "孙晓东"][n], employee_no=f"10{n:02d}")
    return replace(sample.CUIGAO, employee=employee, doc_no=f"某电人〔2026〕第 {n:03d} 号")


def test_a_notice_rendered_twice_gives_the_same_bytes_with_the_caches_cold_or_warm(font):
    warning = templates.get("warning")
    _cold()
    first = render_notice(warning, _warning(0), font)
    others = [render_notice(warning, _warning(n), font) for n in (1, 2, 3)]
    again = render_notice(warning, _warning(0), font)
    assert again.pdf == first.pdf and again.text == first.text and again.sms_text == first.sms_text
    assert len({n.pdf_sha256 for n in [first, *others]}) == 4


def test_nothing_kept_for_one_template_version_shows_in_another(font):
    """Two versions of one template, rendered one after the other with the same facts, each say their own words:
    the same as each does rendered first in a fresh process."""
    one, two = templates.get("cuigao", "1"), templates.get("cuigao", "2")
    assert one.body != two.body
    _cold()
    fresh_two = render_notice(two, sample.CUIGAO, font)
    _cold()
    first = render_notice(one, sample.CUIGAO, font)
    second = render_notice(two, sample.CUIGAO, font)
    assert second.text == fresh_two.text and second.pdf == fresh_two.pdf
    assert first.text != second.text and first.template_version == "1" and second.template_version == "2"


def test_nothing_kept_for_one_face_or_font_file_shows_in_another(font, tmp_path: Path):
    """The regular and the bold face keep their own glyphs; a font file replaced on disk is read again."""
    regular = _outlines(subset_bytes(font.path, font.index, CHARS))
    bold = _outlines(subset_bytes(font.bold_path, font.bold_index, CHARS))
    assert all(regular[c][0] != bold[c][0] for c in "关于连续缺勤")
    copied = tmp_path / "report.ttc"
    shutil.copyfile(font.path, copied)
    assert _outlines(subset_bytes(copied, font.index, CHARS)) == regular
    shutil.copyfile(font.bold_path, copied)  # the same path, another font: its size and time differ
    os.utime(copied, ns=(1, 1))
    assert _outlines(subset_bytes(copied, font.bold_index, CHARS)) == bold
