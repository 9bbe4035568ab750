"""What pdfium gives of one printed page, as geometry: characters with their font, size and
underline; lines by shared baseline (spaces from gaps, not from pdfium); the code "pills" and the
underline bars drawn as paths; and the code names read inside the pills. ``pdf`` turns these
pages into paragraphs and a transcript."""

from __future__ import annotations

import ctypes
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .errors import TranscriptError

log = logging.getLogger(__name__)


@dataclass
class Char:
    ch: str
    x0: float
    x1: float
    top: float
    bottom: float
    base: float
    size: float
    bold: bool
    underlined: bool = False


@dataclass
class Line:
    page: int
    chars: list[Char]
    text: str = ""
    size: float = 0.0  # the commonest character size
    bold: bool = False

    @property
    def base(self) -> float:
        return self.chars[0].base

    @property
    def top(self) -> float:
        return min(c.top for c in self.chars)


Box = tuple[float, float, float, float]  # x0, top, x1, bottom (top-down page coordinates)


@dataclass
class Page:
    height: float
    lines: list[Line]
    pills: list[Box]
    bars: list[Box]  # thin filled rectangles: underlines of coded text


def read_page(page: Any, number: int) -> Page:
    height = page.get_size()[1]
    tp = page.get_textpage()
    font = ctypes.create_string_buffer(256)
    flags = ctypes.c_int()
    ox, oy = ctypes.c_double(), ctypes.c_double()
    box = pdfium_c.FS_RECTF()
    chars: list[Char] = []
    for i in range(pdfium_c.FPDFText_CountChars(tp)):
        ch = chr(pdfium_c.FPDFText_GetUnicode(tp, i))
        if pdfium_c.FPDFText_IsGenerated(tp, i) or ch in "\r\n\x00\ufffe":
            continue  # pdfium's own line breaks and spaces: layout decides those here
        pdfium_c.FPDFText_GetCharOrigin(tp, i, ox, oy)
        pdfium_c.FPDFText_GetLooseCharBox(tp, i, box)
        pdfium_c.FPDFText_GetFontInfo(tp, i, font, 256, flags)
        chars.append(
            Char(
                ch,
                box.left,
                box.right,
                height - box.top,
                height - box.bottom,
                height - oy.value,
                pdfium_c.FPDFText_GetFontSize(tp, i),
                b"Bold" in font.value,
            )
        )
    pills: list[Box] = []
    bars: list[Box] = []
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        b = (left, height - top, right, height - bottom)
        h = b[3] - b[1]
        if 8 <= h <= 40 and b[2] - b[0] > 5:
            pills.append(b)
        elif h < 3 and b[2] - b[0] > 1:
            bars.append(b)
    return Page(height, _group_lines(chars, number), pills, bars)


def _group_lines(chars: list[Char], number: int) -> list[Line]:
    """Characters sharing a baseline form a line; spaces come from gaps, not from pdfium."""
    chars.sort(key=lambda c: (round(c.base), c.x0))
    lines: list[Line] = []
    for c in chars:
        if lines and abs(lines[-1].chars[-1].base - c.base) < 2:
            lines[-1].chars.append(c)
        else:
            lines.append(Line(number, [c]))
    for line in lines:
        line.chars.sort(key=lambda c: c.x0)
        out: list[Char] = []
        for c in line.chars:
            if out and c.x0 - out[-1].x1 > 1.5 and " " not in (c.ch, out[-1].ch):
                out.append(Char(" ", out[-1].x1, c.x0, c.top, c.bottom, c.base, c.size, c.bold))
            out.append(c)
        line.chars = out
        line.text = "".join(c.ch for c in out)
        glyphs = [c for c in out if c.ch != " "] or out
        line.size = Counter(round(c.size, 1) for c in glyphs).most_common(1)[0][0]
        line.bold = all(c.bold for c in glyphs)
    return lines


def mark_underlines(page: Page) -> None:
    """A bar 0-6 pt below a line's baseline underlines the characters above it."""
    for x0, top, x1, _ in page.bars:
        for line in page.lines:
            if 0 <= top - line.base <= 6:
                for c in line.chars:
                    if x0 - 0.5 <= (c.x0 + c.x1) / 2 <= x1 + 0.5:
                        c.underlined = True


def codes_in(lines: list[Line], pills: list[Box]) -> list[str]:
    """Code names: the small-font characters inside each pill, pills in reading order."""
    chars = [c for line in lines for c in line.chars]
    found: list[str] = []
    for x0, top, x1, bottom in sorted(pills, key=lambda b: (round(b[1]), b[0])):
        inside = [
            c
            for c in chars
            if x0 <= (c.x0 + c.x1) / 2 <= x1 and top <= (c.top + c.bottom) / 2 <= bottom
        ]
        name = " ".join("".join(c.ch for c in inside).split())
        if name:
            found.append(name)
    if not found:  # no pill shapes (another renderer?): wide gaps still separate the names
        log.warning("code row without pill shapes, split at wide gaps: %r", lines[0].text)
        for line in lines:
            glyphs = [c for c in line.chars if c.ch != " "]
            name = glyphs[0].ch
            for a, b in zip(glyphs, glyphs[1:], strict=False):
                gap = b.x0 - a.x1
                name += b.ch if gap < 1.5 else " " + b.ch if gap < 8 else "\0" + b.ch
            found += name.split("\0")
    return found


def load_pages(path: Path, data: bytes) -> list[Page]:
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise TranscriptError(path, f"not a readable PDF ({exc})") from exc
    try:
        return [read_page(doc[i], i) for i in range(len(doc))]
    finally:
        doc.close()
