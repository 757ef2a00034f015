"""The Chinese font that report.pdf embeds, found at export time.

The PDF must read the same on an arbitrator's PC that has no Chinese font at all, so the font is
embedded (as a subset of the glyphs used). Any TrueType or OpenType/CFF font with Chinese glyphs
works; Debian ships several. ``[report] font`` in the cloud configuration names one explicitly.

CFF outlines (Noto Sans CJK) are converted to TrueType ones for the characters the report uses:
fpdf2 embeds a TrueType font the way every PDF reader knows (CIDFontType2, Identity-H, FontFile2),
whereas its CID-keyed CFF embedding uses a custom encoding CMap that some readers cannot map back to
text (pypdf extracts it garbled). Quadratic approximation within 1/1000 em does not show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont, TTLibError, newTable

# Debian/Ubuntu paths, best first, with the package that installs each (scripts/setup installs the first).
DEFAULT_FONTS = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "fonts-wqy-microhei"),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "fonts-wqy-zenhei"),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", "fonts-droid-fallback"),
)
PROBE = "考勤电子证据报告无打卡记录该日无设备记录校验通过"  # the report cannot be read without these
INSTALL = (
    "install a Chinese font with 'sudo apt-get install fonts-noto-cjk' (or fonts-wqy-microhei), "
    'or name one in the cloud configuration: [report] font = "/path/to/font.ttc"'
)


class ReportFontMissing(Exception):
    pass


@dataclass(frozen=True)
class CjkFont:
    path: Path
    index: int  # the face in a .ttc collection; 0 for a single font
    bold_path: Path | None = None  # None: headings use the regular face
    bold_index: int = 0


def find_font(configured: str = "") -> CjkFont:
    """The configured font, or the first Debian default present; a clear error when there is none."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ReportFontMissing(f"the report font {configured} does not exist: {INSTALL}")
        candidates = [path]
    else:
        candidates = [Path(p) for p, _package in DEFAULT_FONTS if Path(p).is_file()]
        if not candidates:
            looked = ", ".join(f"{p} ({package})" for p, package in DEFAULT_FONTS)
            raise ReportFontMissing(f"no Chinese font for report.pdf (looked for {looked}): {INSTALL}")
    path = candidates[0]
    index = _chinese_face(path)
    bold = _bold_sibling(path)
    return CjkFont(path, index, bold, _chinese_face(bold) if bold else 0)


def _chinese_face(path: Path) -> int:
    """The face that has the report's characters; in a CJK collection, the Simplified Chinese one."""
    try:
        faces = (
            list(TTCollection(str(path), lazy=True).fonts)
            if path.suffix.lower() in (".ttc", ".otc")
            else [TTFont(str(path), lazy=True)]
        )
    except (OSError, TTLibError) as err:
        raise ReportFontMissing(f"the report font {path} cannot be read ({err}): {INSTALL}") from err
    simplified_first = sorted(range(len(faces)), key=lambda n: " SC" not in (faces[n]["name"].getDebugName(1) or ""))
    for n in simplified_first:
        if set(map(ord, PROBE)) <= set(faces[n].getBestCmap() or {}):
            return n
    raise ReportFontMissing(f"the report font {path} has no Chinese glyphs: {INSTALL}")


def _bold_sibling(path: Path) -> Path | None:
    bold = path.with_name(path.name.replace("Regular", "Bold"))
    return bold if bold != path and bold.is_file() else None


def truetype_subset(path: Path, index: int, chars: str, target: Path) -> None:
    """Write ``target``: face ``index`` of ``path`` cut down to ``chars``, with TrueType (glyf) outlines."""
    font = _face(path, index)
    for tag in ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "vhea", "vmtx", "VORG"):
        if tag in font:  # not used by the report; reading CJK layout tables would take most of the time
            del font[tag]
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, name_IDs=["*"], layout_features=[])
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes={ord(c) for c in chars})
    subsetter.subset(font)
    if "glyf" not in font:
        _cff_to_glyf(font)
    font.save(str(target))


def _face(path: Path, index: int) -> TTFont:
    # recalcTimestamp=False keeps head.modified as it was: the same export gives the same bytes
    if path.suffix.lower() in (".ttc", ".otc"):
        return TTCollection(str(path), recalcTimestamp=False).fonts[index]
    return TTFont(str(path), recalcTimestamp=False)


def _cff_to_glyf(font: TTFont) -> None:
    order, glyphs = font.getGlyphOrder(), font.getGlyphSet()
    outlines = {}
    for name in order:
        pen = TTGlyphPen(glyphs)
        glyphs[name].draw(Cu2QuPen(pen, max_err=font["head"].unitsPerEm / 1000, reverse_direction=True))
        outlines[name] = pen.glyph()
    for tag in ("CFF ", "CFF2", "VORG"):
        if tag in font:
            del font[tag]
    font["loca"], font["glyf"] = newTable("loca"), newTable("glyf")
    font["glyf"].glyphOrder, font["glyf"].glyphs = order, outlines
    maxp = font["maxp"] = newTable("maxp")  # version 1.0, as TrueType outlines need; counts are recomputed on save
    maxp.tableVersion, maxp.numGlyphs, maxp.maxZones = 0x00010000, len(order), 1
    for name in [
        "maxTwilightPoints",
        "maxStorage",
        "maxFunctionDefs",
        "maxInstructionDefs",
        "maxStackElements",
        "maxSizeOfInstructions",
        "maxComponentElements",
        "maxComponentDepth",
    ]:
        setattr(maxp, name, 0)
    font["head"].glyphDataFormat, font["head"].indexToLocFormat = 0, 0
    font["post"].formatType = 3.0
    font.sfntVersion = "\x00\x01\x00\x00"
