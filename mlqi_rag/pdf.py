"""Import Delve "print" PDFs: coded transcripts as researchers share them.

Delve prints a transcript through Chrome (Skia): every page has a header (print date, file title)
and a footer (``https://app.delvetool.com/transcripts/N/print`` and ``n/N``); each paragraph
comes under a bold speaker label (``Interviewee``, ``Interviewer 1``, ``Interviewer2 2``); body
text is wrapped over lines and pages; a coded paragraph is underlined (blue 1.5 pt bars under
exactly the coded characters, so a partly coded paragraph is partly underlined) and followed by
one row of code "pills" (stroked rounded rectangles holding the code name in a smaller font,
names may contain spaces: ``Model-Evaluation-issues [ME]``). Reading the layout (font size, bold,
path shapes) rather than guessing from words is what tells a code from speech.

pypdfium2 is used, not pdfplumber: on the 12 shared prints pdfplumber took 34 s for the same
per-character data that pdfium gives in 3.4 s (pypdf 6.5 s, but no usable geometry), and it is
pdfplumber's own renderer anyway.

The result is rewritten as a plain transcript, one paragraph per line (``Speaker: text``, a
paragraph that Delve printed without a label stays unlabeled, so it continues the speaker above
just as in a plain transcript), code names left out: that text is what quotes are verified
against and what every ``Paragraph`` offset indexes into. It is cached, keyed by the PDF's
sha256 and ``PARSER_VERSION``, because parsing a print takes about 0.3 s per file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TranscriptError
from .pdf_page import Line, Page, codes_in, load_pages, mark_underlines
from .transcripts import _SPEAKER_NAME, detect_language, role_of
from .types import Interview, Paragraph, Turn

log = logging.getLogger(__name__)

PARSER_VERSION = "delve-pdf-1"

# ``interviewr`` (a typo) is tolerated, though none of the 12 shared prints has it in a label
_SPEAKER = rf"(?:{_SPEAKER_NAME}|interviewr(?:\s*\d+)*)"
_LABEL = re.compile(rf"^(?P<speaker>{_SPEAKER})\s*:?$", re.I)
# A paragraph Delve printed without a label but that starts ``Interviewee: No.``
_INLINE_LABEL = re.compile(rf"^(?P<speaker>{_SPEAKER})\s*:\s*", re.I)
_HEADER = re.compile(r"^\d{1,2}/\d{1,2}/\d{2,4},\s*\d{1,2}:\d{2}\s*[AP]M\b")
_FOOTER = re.compile(r"delvetool\.com/transcripts/\d+/print|^\d+/\d+$")
_TITLE = re.compile(r"Interview[\s_-]*(?P<id>\d+)\s*(?:-\s*(?P<label>.*?))?\s*$", re.I)
_CREDIT = re.compile(r"^Created with the Delve\b")
_MARGIN = 0.06  # header and footer live in the top and bottom 6 % of a page


@dataclass
class _Para:
    speaker: str | None
    text: str = ""
    flags: list[bool] = field(default_factory=list)  # per character: underlined (coded)
    codes: list[str] = field(default_factory=list)
    last: Line | None = None


def _strip_margins(path: Path, pages: list[Page]) -> tuple[list[Line], str]:
    """Drop each page's print header and footer; the first page's big title names the copy."""
    if not any(p.lines for p in pages):
        raise TranscriptError(path, "PDF has no text layer (a scan?); print it from Delve again")
    content: list[Line] = []
    footers = 0
    title = ""
    sizes: Counter[float] = Counter()
    for page in pages:
        for line in page.lines:
            sizes[line.size] += len(line.chars)
    title_size = max(sizes)
    for page in pages:
        for line in page.lines:
            t = line.text.strip()
            if line.top < page.height * _MARGIN and _HEADER.match(t):
                continue
            if line.top > page.height * (1 - _MARGIN) and _FOOTER.search(t):
                footers += 1
                continue
            if line.page == 0 and not title and line.size == title_size and _TITLE.search(t):
                title = t
                continue
            if _CREDIT.match(t):
                continue
            content.append(line)
    if footers == 0:
        raise TranscriptError(path, "not a Delve print PDF (no delvetool.com footer on any page)")
    return content, title


@dataclass(frozen=True)
class _Column:
    right: float  # right edge of the text column
    space: float  # width of a space
    pitch: float  # line pitch inside a paragraph


def _measure(content: list[Line]) -> tuple[float, _Column]:
    """Body font size and the text column, measured on this print (no hard-coded points)."""
    weights: Counter[float] = Counter()
    for ln in content:
        weights[ln.size] += len(ln.chars)
    body = weights.most_common(1)[0][0]
    pitch_counts = Counter(
        round(b.base - a.base)
        for a, b in zip(content, content[1:], strict=False)
        if a.page == b.page and abs(a.size - body) < 0.5 and abs(b.size - body) < 0.5
    )
    pitch = pitch_counts.most_common(1)[0][0] if pitch_counts else body * 1.6
    body_lines = [ln for ln in content if abs(ln.size - body) < 0.5]
    spaces = sorted(c.x1 - c.x0 for ln in body_lines for c in ln.chars if c.ch == " ")
    col = _Column(
        right=max(ln.chars[-1].x1 for ln in body_lines),
        space=spaces[len(spaces) // 2] if spaces else body * 0.28,
        pitch=pitch,
    )
    return body, col


def _paragraphs(path: Path, pages: list[Page], content: list[Line]) -> list[_Para]:
    """Labels, wrapped lines and code rows -> paragraphs with their codes and underlines."""
    body, col = _measure(content)
    paras: list[_Para] = []
    excerpt: list[_Para] = []  # paragraphs the next code row applies to
    speaker: str | None = None  # label waiting for its paragraph
    cur: _Para | None = None
    i = 0
    while i < len(content):
        line = content[i]
        text = line.text.strip()
        if line.size < body * 0.9:  # a code row, possibly wrapped over several lines
            rows = [line]
            while i + 1 < len(content) and content[i + 1].size < body * 0.9:
                i += 1
                rows.append(content[i])
            codes: list[str] = []
            for pg in dict.fromkeys(r.page for r in rows):  # a row may wrap onto the next page
                codes += codes_in([r for r in rows if r.page == pg], pages[pg].pills)
            coded = [p for p in excerpt if any(p.flags)] or excerpt
            if not coded:
                log.warning("%s: codes %s have no paragraph above them", path, codes)
            for p in coded:
                p.codes += [c for c in codes if c not in p.codes]
            excerpt, cur = [], None
        elif line.bold and (m := _LABEL.match(text)):
            speaker, cur, excerpt = " ".join(m["speaker"].split()), None, []
        else:
            flags = [c.underlined for c in line.chars]
            if cur is not None and cur.last is not None and _continues(cur.last, line, col):
                if not _joins_tight(cur.text):
                    cur.text += " "
                    cur.flags.append(cur.flags[-1] and flags[0])
                cur.text += line.text
                cur.flags += flags
            else:
                cur = _Para(speaker, line.text, flags)
                speaker = None
                paras.append(cur)
                excerpt.append(cur)
            cur.last = line
        i += 1
    return paras


def _continues(prev: Line, line: Line, col: _Column) -> bool:
    """Same paragraph: the next line at one line pitch; over a page break, a line that had to
    wrap (its next word would not have fitted: the browser's own greedy rule), since Delve also
    prints unlabeled paragraphs, and one may start at the top of a page."""
    if line.page == prev.page:
        return line.base - prev.base <= col.pitch * 1.3
    if line.page != prev.page + 1:
        return False
    word = line.chars[: next((i for i, c in enumerate(line.chars) if c.ch == " "), None)]
    return prev.chars[-1].x1 + col.space + (word[-1].x1 - word[0].x0) > col.right + 0.5


def _joins_tight(text: str) -> bool:
    """Chrome wraps after a hyphen inside a word (``data-`` / ``driven``): no space there."""
    return len(text) >= 2 and text[-1] == "-" and text[-2].isalnum()


@dataclass(frozen=True)
class PdfTranscript:
    """A parsed print: the interview, its canonical text and the underlined (coded) spans."""

    interview: Interview
    text: str
    spans: tuple[tuple[int, int], ...]  # exact coded spans, offsets into ``text``


def _layout(paras: list[_Para]) -> tuple[str, list[dict[str, Any]], list[list[int]]]:
    """Write paragraphs as a plain transcript, remembering each paragraph's offsets."""
    parts: list[str] = []
    records: list[dict[str, Any]] = []
    spans: list[list[int]] = []
    pos = 0
    speaker = "Unknown speaker"
    for p in paras:
        text = p.text.strip()
        lead = len(p.text) - len(p.text.lstrip())
        flags = p.flags[lead : lead + len(text)]
        label = p.speaker
        if label is None and (m := _INLINE_LABEL.match(text)):
            label, text, flags = m["speaker"], text[m.end() :], flags[m.end() :]
        if not text:
            continue
        prefix = f"{' '.join(label.split())}: " if label else ""
        if label:
            speaker = " ".join(label.split())
        start = pos + len(prefix)
        parts.append(prefix + text)
        records.append(
            {"speaker": speaker, "start": start, "end": start + len(text), "codes": p.codes}
        )
        mask = "".join("1" if f else "0" for f in flags)
        for m in re.finditer("1+", mask):  # underlined runs, trimmed of spaces
            seg = text[m.start() : m.end()]
            s = start + m.start() + len(seg) - len(seg.lstrip())
            if seg.strip():
                spans.append([s, s + len(seg.strip())])
        pos += len(prefix) + len(text) + 2
    return "\n\n".join(parts) + "\n", records, spans


def _parse_uncached(path: Path, data: bytes) -> dict[str, Any]:
    pages = load_pages(path, data)
    for page in pages:
        mark_underlines(page)
    content, title = _strip_margins(path, pages)
    if not content:
        raise TranscriptError(path, "Delve print PDF has no transcript text")
    text, records, spans = _layout(_paragraphs(path, pages, content))
    if not any(role_of(r["speaker"]) == "participant" for r in records):
        raise TranscriptError(path, "no interviewee speech found in this Delve print")
    m = _TITLE.search(title) or _TITLE.search(path.stem)
    return {
        "version": PARSER_VERSION,
        "id": m["id"] if m else path.stem,
        "label": (m["label"] or "").strip() if m else "",
        "text": text,
        "paragraphs": records,
        "spans": spans,
    }


def _cached(path: Path, data: bytes, sha: str, cache_dir: Path | None) -> dict[str, Any]:
    """Parse once per PDF content and parser version; a damaged cache entry is just re-made."""
    entry = cache_dir / f"{sha}-{PARSER_VERSION}.json" if cache_dir is not None else None
    if entry is not None and entry.is_file():
        try:
            doc: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
            if doc.get("version") == PARSER_VERSION:
                return doc
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable PDF cache entry %s (%s)", entry, exc)
    doc = _parse_uncached(path, data)
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False)
        os.replace(tmp, entry)
    return doc


def _interview(path: Path, doc: dict[str, Any], sha: str) -> Interview:
    label = doc["label"]
    blocks: list[tuple[str, list[Paragraph]]] = []
    for r in doc["paragraphs"]:
        codes = tuple(r["codes"])
        coded = ((label or "unknown", codes),) if codes else ()
        para = Paragraph(doc["text"][r["start"] : r["end"]], r["start"], r["end"], codes, coded)
        key = re.sub(r"\s+", "", r["speaker"].lower())
        if blocks and re.sub(r"\s+", "", blocks[-1][0].lower()) == key:
            blocks[-1][1].append(para)
        else:
            blocks.append((r["speaker"], [para]))
    turns = tuple(
        Turn(index=i, speaker=s, role=role_of(s), paragraphs=tuple(p))
        for i, (s, p) in enumerate(blocks)
    )
    any_codes = any(r["codes"] for r in doc["paragraphs"])
    return Interview(
        id=doc["id"],
        label=label,
        source=str(path),
        language=detect_language(doc["text"]),
        format="delve-pdf",
        sha256=sha,
        turns=turns,
        coders=((label or "unknown"),) if any_codes else (),
    )


def read_pdf(path: str | Path, cache_dir: Path | None = None) -> PdfTranscript:
    """Parse a Delve print (through the cache when ``cache_dir`` is given)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise TranscriptError(p, f"cannot read file ({exc.strerror or exc})") from exc
    if not data.lstrip().startswith(b"%PDF"):
        raise TranscriptError(p, "not a PDF file (no %PDF header)")
    sha = hashlib.sha256(data).hexdigest()
    doc = _cached(p, data, sha, cache_dir)
    spans = tuple((s, e) for s, e in doc["spans"])
    return PdfTranscript(_interview(p, doc, sha), doc["text"], spans)


def parse_pdf(path: str | Path, cache_dir: Path | None = None) -> tuple[Interview, str]:
    """The interview and the text its offsets (and every verified quote) refer to."""
    t = read_pdf(path, cache_dir)
    return t.interview, t.text


def extract_pdf_text(path: str | Path, cache_dir: Path | None = None) -> str:
    """The canonical transcript text of a print (what quotes are checked against)."""
    return read_pdf(path, cache_dir).text
