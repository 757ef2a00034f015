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

import copy
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont, TTLibError, newTable
from fontTools.ttLib.tables._c_m_a_p import CmapSubtable
from fontTools.ttLib.tables._g_l_y_f import Glyph
from fontTools.ttLib.tables.DefaultTable import DefaultTable

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
    target.write_bytes(subset_bytes(path, index, chars))


def subset_bytes(path: Path, index: int, chars: str) -> bytes:
    """Face ``index`` of ``path`` cut down to ``chars`` (and .notdef), with TrueType (glyf) outlines, as font bytes.

    A CFF face (Noto Sans CJK) is read once per process (``glyph_source``) and each glyph converted the first time
    it is asked for; the font is then put together from those, in the face's glyph order, so that the same
    characters give the same bytes whichever were asked for before. A TrueType face is cut by fontTools' subsetter.
    """
    source = glyph_source(path, index)
    if source is None:
        return _subset_truetype(path, index, chars)
    return source.font(chars)


def _subset_truetype(path: Path, index: int, chars: str) -> bytes:
    font = _face(path, index)
    for tag in ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "vhea", "vmtx", "VORG"):
        if tag in font:  # not used by the report; reading CJK layout tables would take most of the time
            del font[tag]
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, name_IDs=["*"], layout_features=[])
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes={ord(c) for c in chars})
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class _Outline:
    data: bytes  # the glyph compiled as a glyf entry
    advance: int
    box: tuple[int, int, int, int] | None  # xMin, yMin, xMax, yMax; None: nothing drawn (a space)
    points: int
    contours: int


CUTS_KEPT = 64  # fonts kept per face, the last cut: a template's title in bold is cut once
_SOURCES: dict[tuple[str, int, int, int], GlyphSource | None] = {}
_SOURCES_LOCK = threading.Lock()


def glyph_source(path: Path, index: int) -> GlyphSource | None:
    """The process's ``GlyphSource`` for a CFF face (None for a TrueType one), read the first time it is asked for
    (keyed by the file's path, size and modification time: a font replaced on disk is read again)."""
    stat = path.stat()
    key = (str(path.resolve()), index, stat.st_size, stat.st_mtime_ns)
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            font = _face(path, index)
            _SOURCES[key] = GlyphSource(font) if ("CFF " in font or "CFF2" in font) else None
        return _SOURCES[key]


class GlyphSource:
    """One CFF face held in memory: its character map, metrics and tables read once, and each glyph's outline
    converted to TrueType (quadratic, within 1/1000 em) the first time a font is cut with it, then kept."""

    def __init__(self, face: TTFont) -> None:
        self._face = face
        self._cmap: dict[int, str] = face.getBestCmap() or {}
        self._order = face.getGlyphOrder()
        self._gid = {name: n for n, name in enumerate(self._order)}
        self._metrics = face["hmtx"].metrics
        self._glyphs = face.getGlyphSet()
        self._max_err = face["head"].unitsPerEm / 1000
        self._tables = {tag: face[tag] for tag in ("head", "hhea", "OS/2")}
        post = copy.deepcopy(face["post"])
        post.formatType = 3.0  # no glyph names: the glyphs are known by their cmap entries
        for tag, table in (("name", face["name"]), ("post", post)):  # the same in every cut: compiled once
            self._tables[tag] = DefaultTable(tag)
            self._tables[tag].data = table.compile(face)
        self._outlines: dict[str, _Outline] = {}
        self._cuts: OrderedDict[str, bytes] = OrderedDict()  # the latest fonts cut, by their characters
        self._lock = threading.Lock()  # fontTools' lazy tables are not safe to read from two threads at once

    def font(self, chars: str) -> bytes:
        wanted = {ord(c): self._cmap[ord(c)] for c in chars if ord(c) in self._cmap}
        key = "".join(sorted(map(chr, wanted)))
        with self._lock:
            if key in self._cuts:  # the same characters (a template's title in bold): the same bytes, kept
                self._cuts.move_to_end(key)
                return self._cuts[key]
            names = sorted({".notdef", *wanted.values()}, key=self._gid.__getitem__)
            outlines = {name: self._outline(name) for name in names}
        cut = _assemble(self._tables, names, outlines, wanted)
        with self._lock:
            self._cuts[key] = cut
            while len(self._cuts) > CUTS_KEPT:
                self._cuts.popitem(last=False)
        return cut

    def _outline(self, name: str) -> _Outline:
        known = self._outlines.get(name)
        if known is None:
            pen = TTGlyphPen(None)
            self._glyphs[name].draw(Cu2QuPen(pen, max_err=self._max_err, reverse_direction=True))
            glyph = pen.glyph()
            data = glyph.compile(None)
            drawn = glyph.numberOfContours > 0
            known = _Outline(
                data=data,
                advance=self._metrics[name][0],
                box=(glyph.xMin, glyph.yMin, glyph.xMax, glyph.yMax) if drawn else None,
                points=len(glyph.coordinates) if drawn else 0,
                contours=glyph.numberOfContours if drawn else 0,
            )
            self._outlines[name] = known
        return known


def _assemble(tables: dict[str, Any], names: list[str], outlines: dict[str, _Outline], cmap: dict[int, str]) -> bytes:
    """A TrueType font of ``names`` (in this order) from their converted outlines; the face's other tables copied,
    with the figures that depend on the glyphs (bounding box, maxima, extents) computed from them."""
    font = TTFont(recalcBBoxes=False, recalcTimestamp=False)  # the figures are set here, the glyphs as compiled
    font.setGlyphOrder(names)
    drawn = [o.box for o in outlines.values() if o.box is not None] or [(0, 0, 0, 0)]
    x_min, y_min = min(b[0] for b in drawn), min(b[1] for b in drawn)
    x_max, y_max = max(b[2] for b in drawn), max(b[3] for b in drawn)
    head = font["head"] = copy.deepcopy(tables["head"])
    head.xMin, head.yMin, head.xMax, head.yMax = x_min, y_min, x_max, y_max
    head.glyphDataFormat, head.indexToLocFormat = 0, 0
    hhea = font["hhea"] = copy.deepcopy(tables["hhea"])
    hhea.advanceWidthMax = max(o.advance for o in outlines.values())
    boxed = [(o.advance, o.box) for o in outlines.values() if o.box is not None]
    hhea.minLeftSideBearing = min((b[0] for _, b in boxed), default=0)
    hhea.minRightSideBearing = min((a - b[2] for a, b in boxed), default=0)
    hhea.xMaxExtent = max((b[2] for _, b in boxed), default=0)
    maxp = font["maxp"] = newTable("maxp")  # version 1.0, as TrueType outlines need
    maxp.tableVersion, maxp.numGlyphs, maxp.maxZones = 0x00010000, len(names), 1
    maxp.maxPoints = max(o.points for o in outlines.values())
    maxp.maxContours = max(o.contours for o in outlines.values())
    for field in _MAXP_ZERO:
        setattr(maxp, field, 0)
    os2 = font["OS/2"] = copy.deepcopy(tables["OS/2"])
    os2.usFirstCharIndex = min(min(cmap, default=0xFFFF), 0xFFFF)
    os2.usLastCharIndex = min(max(cmap, default=0), 0xFFFF)
    hmtx = font["hmtx"] = newTable("hmtx")
    hmtx.metrics = {name: (o.advance, o.box[0] if o.box else 0) for name, o in outlines.items()}
    font["cmap"] = _cmap(cmap)
    font["loca"] = newTable("loca")
    glyf = font["glyf"] = newTable("glyf")
    glyf.glyphOrder = names
    glyf.glyphs = {name: Glyph(outlines[name].data) for name in names}
    font["name"], font["post"] = tables["name"], tables["post"]
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


_MAXP_ZERO = (
    "maxCompositePoints",
    "maxCompositeContours",
    "maxTwilightPoints",
    "maxStorage",
    "maxFunctionDefs",
    "maxInstructionDefs",
    "maxStackElements",
    "maxSizeOfInstructions",
    "maxComponentElements",
    "maxComponentDepth",
)


def _cmap(chars: dict[int, str]) -> Any:
    table = newTable("cmap")
    table.tableVersion = 0
    table.tables = []
    bmp = {cp: name for cp, name in chars.items() if cp <= 0xFFFF}
    for platform, encoding, fmt, mapping in ((0, 3, 4, bmp), (3, 1, 4, bmp), (0, 4, 12, chars), (3, 10, 12, chars)):
        if fmt == 12 and len(bmp) == len(chars):
            continue  # nothing outside the BMP: format 4 says it all
        sub = CmapSubtable.newSubtable(fmt)
        sub.platformID, sub.platEncID, sub.language, sub.cmap = platform, encoding, 0, dict(mapping)
        table.tables.append(sub)
    return table


def _face(path: Path, index: int) -> TTFont:
    # recalcTimestamp=False keeps head.modified as it was: the same export gives the same bytes
    if path.suffix.lower() in (".ttc", ".otc"):
        return TTCollection(str(path), recalcTimestamp=False).fonts[index]
    return TTFont(str(path), recalcTimestamp=False)
