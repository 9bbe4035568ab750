"""Cited quotes as text a researcher can paste into a paper: Markdown, CSV and LaTeX.

Pure functions over ``Citation`` values, plus ``write_export`` which writes one of them into a
given directory under a generated name (``mlqi-quotes-YYYYMMDD-HHMMSS.md``): no user text ever
reaches a file name, and nothing is written outside that directory. Quotes are exported
verbatim (they are verified against the source), so ``start``/``end`` in the CSV still point at
them in the transcript.

Transcripts are data, and an export must be safe to open: Markdown escapes everything that could
become HTML, a link, an image or formatting (the rendered text is the quote, character for
character); a CSV cell that a spreadsheet would read as a formula gets a leading ``'`` (OWASP's
CSV-injection advice: the only change made to a quote); LaTeX escapes every special character.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import MlqiError
from .types import Citation

#: format name → file extension; "md" / "tex" are accepted as aliases.
FORMATS: dict[str, str] = {"markdown": "md", "csv": "csv", "latex": "tex"}
_ALIASES = {"md": "markdown", "tex": "latex"}
CSV_COLUMNS = (
    "id",
    "interview",
    "label",
    "speaker",
    "turn",
    "codes",
    "quote",
    "source",
    "start",
    "end",
)
FILE_PREFIX = "mlqi-quotes"
_SAFE_NAME = re.compile(r"^mlqi-quotes-\d{8}-\d{6}(?:-\d+)?\.(?:md|csv|tex)$")


def normalise_format(fmt: str) -> str:
    """``markdown``, ``csv`` or ``latex`` (case-insensitive, ``md``/``tex`` accepted)."""
    key = fmt.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return key


def format_for_path(path: str | Path) -> str:
    """The export format a file name asks for: ``.md`` → markdown, ``.csv``, ``.tex`` → latex."""
    ext = Path(path).suffix.lower().lstrip(".")
    key = _ALIASES.get(ext, ext)
    if ext and key in FORMATS:
        return key
    name = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(path))
    raise MlqiError(f"{name}: unknown export format; name the file .md, .csv or .tex")


def unique_citations(citations: Iterable[Citation]) -> list[Citation]:
    """Citations in first-seen order, each source span once."""
    seen: dict[tuple[str, int, int], Citation] = {}
    for c in citations:
        seen.setdefault((c.interview_id, c.start, c.end), c)
    return list(seen.values())


def attribution(c: Citation) -> str:
    """``— Interview 32, turn 14`` (the form used under every exported quote)."""
    return f"— Interview {c.interview_id}, turn {c.turn_index}"


def _details(c: Citation) -> str:
    parts = []
    if c.label:
        parts.append(c.label)
    if c.speaker:
        parts.append(c.speaker)
    if c.codes:
        parts.append("codes: " + ", ".join(c.codes))
    return "; ".join(parts)


# ---- Markdown ------------------------------------------------------------------------------------

_HTML_CHARS = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Everything else that can start Markdown syntax; "[", "]" and "<" alone already rule out links,
# images and autolinks, the rest keeps the text looking as spoken (no *emphasis* or `code`).
_MD_CHARS = frozenset("\\`*_[]()!#~|")
# Bare URLs that GFM renderers (Gradio's chatbot, GitHub) turn into links without any syntax.
_BARE_LINK = re.compile(r"(?i)\b(https?|ftp)(://)|\b(www)(\.)")
# A line start that would make a list item, a heading underline or a thematic break.
_LINE_SYNTAX = re.compile(r"^([ \t]*)([-+=]|\d{1,9}(?=[.)]))", re.M)


def escape_markdown(text: str, keep_lists: bool = False) -> str:
    """``text`` as Markdown that renders to exactly ``text``: no HTML, link, image or formatting.

    HTML's ``& < >`` become entities (portable across renderers), other syntax characters are
    backslash-escaped, and the ``:`` of ``http://`` / the ``.`` of ``www.`` are escaped so no
    renderer's autolinking fires. ``keep_lists`` leaves line-leading list markers (``- ``,
    ``1.``) alone, so a list an engine wrote stays a list; lists carry no link or resource.
    """
    out = "".join(
        _HTML_CHARS[ch] if ch in _HTML_CHARS else "\\" + ch if ch in _MD_CHARS else ch
        for ch in text
    )
    out = _BARE_LINK.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"{m[3]}\\{m[4]}", out)
    return out if keep_lists else _LINE_SYNTAX.sub(lambda m: f"{m[1]}\\{m[2]}", out)


def to_markdown(citations: Sequence[Citation], question: str | None = None) -> str:
    """Block quotes, each followed by its attribution line (``> — Interview 32, turn 14``)."""
    lines: list[str] = []
    if question:
        lines += [f"**Question:** {escape_markdown(' '.join(question.split()))}", ""]
    for c in unique_citations(citations):
        for paragraph_line in c.quote.splitlines() or [""]:
            lines.append(f"> {escape_markdown(paragraph_line)}".rstrip())
        lines.append(">")
        details = escape_markdown(_details(c))
        lines.append(f"> {escape_markdown(attribution(c))}" + (f" ({details})" if details else ""))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- CSV -----------------------------------------------------------------------------------------

# What makes Excel, LibreOffice or Sheets read a cell as a formula (OWASP), plus full-width forms.
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_cell(value: object) -> str:
    """A cell that opens as text: a leading ``'`` when it starts like a formula (OWASP)."""
    text = str(value)
    return "'" + text if text[:1] in _FORMULA_START else text


def to_csv(citations: Sequence[Citation]) -> str:
    """One row per quote; ``source`` is the transcript's file name, ``start``/``end`` offsets."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for i, c in enumerate(unique_citations(citations), start=1):
        row: list[object] = [
            i,
            c.interview_id,
            c.label,
            c.speaker,
            c.turn_index,
            "; ".join(c.codes),
            c.quote,
            Path(c.source).name,
            c.start,
            c.end,
        ]
        writer.writerow([csv_cell(cell) for cell in row])
    return buf.getvalue()


# ---- LaTeX ---------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "#": r"\#",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_LATEX_RE = re.compile("|".join(re.escape(ch) for ch in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Escape every character LaTeX treats specially (single pass, so no double escaping)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def to_latex(citations: Sequence[Citation]) -> str:
    """A ``quote`` environment per citation, attribution right-aligned under the quote."""
    blocks: list[str] = []
    for c in unique_citations(citations):
        paragraphs = [latex_escape(p.strip()) for p in re.split(r"\n\s*\n", c.quote) if p.strip()]
        body = "\n\n".join(paragraphs)
        details = _details(c)
        source = f"--- Interview {latex_escape(c.interview_id)}, turn {c.turn_index}"
        if details:
            source += f" ({latex_escape(details)})"
        blocks.append(f"\\begin{{quote}}\n{body}\n\\par\\hfill {source}\n\\end{{quote}}\n")
    return "\n".join(blocks)


# ---- files ---------------------------------------------------------------------------------------


def render(citations: Sequence[Citation], fmt: str, question: str | None = None) -> str:
    key = normalise_format(fmt)
    if key == "markdown":
        return to_markdown(citations, question)
    if key == "csv":
        return to_csv(citations)
    return to_latex(citations)


def is_safe_export_name(name: str) -> bool:
    """True for the names ``write_export`` generates (and nothing else)."""
    return bool(_SAFE_NAME.match(name))


def write_export(
    citations: Sequence[Citation],
    fmt: str,
    directory: str | Path,
    question: str | None = None,
    now: float | None = None,
) -> Path:
    """Write the export into ``directory`` under a generated name and return its path.

    The name is ``mlqi-quotes-<local time>.<ext>`` (a ``-2``, ``-3`` … suffix if that name is
    taken); the file is created exclusively, so an existing file is never overwritten.
    """
    key = normalise_format(fmt)
    path = write_new_file(
        directory, FILE_PREFIX, FORMATS[key], render(citations, key, question), now
    )
    assert is_safe_export_name(path.name)
    return path


def write_new_file(
    directory: str | Path, prefix: str, ext: str, text: str, now: float | None = None
) -> Path:
    """Write ``text`` as ``<prefix>-<local time>.<ext>`` in ``directory`` (a ``-2``, ``-3`` …
    suffix if that name is taken), created exclusively so that no existing file is ever
    overwritten and no user text reaches the name. Every export (quotes, disagreements,
    accepted suggestions) is written here."""
    folder = Path(directory).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"-{n}"
        path = folder / f"{prefix}-{stamp}{suffix}.{ext}"
        try:
            # newline="" keeps the CSV's \r\n row ends as they are.
            with open(path, "x", encoding="utf-8", newline="") as fh:
                fh.write(text)
        except FileExistsError:
            continue
        assert path.parent == folder
        return path
    raise FileExistsError(f"too many files named {prefix}-{stamp}* in {folder}")
