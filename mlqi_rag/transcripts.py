"""Parse interview transcripts into interviews, speaker turns and paragraphs with exact offsets.

Two formats are read:

* Delve markdown exports: ``## Interview 32 - PO`` header, speaker headings (``### Interviewee``,
  ``**Interviewer 1**``, ...), one paragraph per line, and qualitative codes as bare lines
  (``Data-missing-values``) that apply to the coded excerpt directly above them. Delve prints an
  excerpt as the lines since the last heading or code group (a coded answer is often split over
  two lines mid-sentence), so a code applies to each of those paragraphs.
* Plain transcripts: ``Speaker: text`` lines (``Interviewee:``, ``Interviewer1 :``, ...), a speaker
  name alone on a line, and unlabeled lines that continue the previous speaker.

Every paragraph keeps character offsets into the decoded source so that a quote can later be
checked character-for-character: ``source_text[p.start:p.end] == p.text``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .corpus_files import transcript_files
from .errors import TranscriptError
from .types import Interview, Paragraph, Role, Turn

log = logging.getLogger(__name__)

MIN_ALIGNMENT = 0.98  # a coded copy aligning worse than this is reported

# ``## Interview 32 - PO`` / ``## Interview 17- Rached``
_DELVE_HEADER = re.compile(r"^#{1,6}\s*Interview\s+(?P<id>\d+)\s*(?:-\s*(?P<label>.*?))?\s*$")
_SPEAKER_NAME = r"(?:interview(?:ee|er)(?:\s*\d+)*|unknown\s+speaker|speaker\s*\d+)"
# ``### Interviewee``, ``#### Interviewer 1``, ``**Interviewee**``, ``### **Interviewee**``
_DELVE_SPEAKER = re.compile(
    rf"^(?:#{{1,6}}\s*)?(?:\*\*)?\s*(?P<speaker>{_SPEAKER_NAME})\s*(?:\*\*)?\s*:?\s*$", re.I
)
# ``Interviewee: text``, ``Interviewer1 : text``, `` Interviewee:``
_PLAIN_SPEAKER = re.compile(rf"^\s*(?P<speaker>{_SPEAKER_NAME})\s*:[ \t]*", re.I)
# A speaker name alone on its line (``Unknown Speaker``) introduces the lines below it.
_PLAIN_SPEAKER_ALONE = re.compile(rf"^\s*(?P<speaker>{_SPEAKER_NAME})\s*$", re.I)
# A code token: hyphenated words with no spaces or punctuation (``QM-explainability-fix``).
_CODE_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+$")
# Hyphenated speech that looks like a code token but is not one.
_SPEECH_TOKENS = frozenset({"mm-hmm", "uh-huh", "uh-oh", "mhm-hmm", "hmm-hmm", "um-hmm", "oh-oh"})
_DELVE_FOOTER = re.compile(r"^Created with the Delve\b")
_RULE = re.compile(r"^\s*-{3,}\s*$")
_FILE_ID = re.compile(r"Interview[\s_-]*(?P<id>\d+)(?:\s*-\s*(?P<label>[^.]+?))?\s*$", re.I)

_FRENCH = frozenset(
    "le la les des est et une un du que qui pas pour dans ce ça sur avec on nous vous je tu "
    "mais ou donc très aussi être fait c'est".split()
)
_ENGLISH = frozenset(
    "the and is are of to in that it for with on was we you this have not but so what".split()
)


def is_code_line(line: str) -> bool:
    """True when a whole (stripped) line is a qualitative code, not speech."""
    return bool(_CODE_LINE.match(line)) and line.lower() not in _SPEECH_TOKENS


def role_of(speaker: str) -> Role:
    """Only the interviewee is a participant; unattributed voices are never cited as findings."""
    return "participant" if speaker.strip().lower().startswith("interviewee") else "interviewer"


def _speaker_key(speaker: str) -> str:
    return re.sub(r"\s+", "", speaker.lower())


def detect_language(text: str) -> str:
    words = re.findall(r"[a-zà-ÿ']+", text[:20000].lower())
    fr = sum(w in _FRENCH for w in words)
    en = sum(w in _ENGLISH for w in words)
    return "fr" if fr > en else "en"


def file_sha256(path: Path) -> str:
    """Hash of the file's bytes; equals ``Interview.sha256`` while the file is unchanged."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_source(path: Path) -> str:
    """Read a transcript as UTF-8, refusing (not guessing) anything else.

    This is the one way transcript text is read, everywhere: bytes decoded as they are, so CRLF
    and lone-CR line breaks stay in the text and every offset means the same thing to the
    parser, the chunker, the index and the quote checker.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not data.strip():
        raise TranscriptError(path, "empty file")
    if b"\x00" in data[:8192]:
        raise TranscriptError(path, "binary file (contains NUL bytes), not a text transcript")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TranscriptError(
            path,
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the transcript as UTF-8",
        ) from exc


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (offset, line without its line break) for every line."""
    pos = 0
    for raw in text.splitlines(keepends=True):
        yield pos, raw.rstrip("\r\n")
        pos += len(raw)


def _span(offset: int, line: str, lead: int = 0) -> Paragraph | None:
    """The stripped content of ``line[lead:]`` as a paragraph with absolute offsets."""
    body = line[lead:]
    stripped = body.strip()
    if not stripped:
        return None
    start = offset + lead + (len(body) - len(body.lstrip()))
    return Paragraph(text=stripped, start=start, end=start + len(stripped))


@dataclass
class _Builder:
    """Collects speaker blocks; consecutive blocks of one speaker become one turn."""

    blocks: list[tuple[str, list[Paragraph]]] = field(default_factory=list)
    speaker: str | None = None
    excerpt: list[int] = field(default_factory=list)  # paragraphs the next code applies to
    after_codes: bool = False

    def start(self, speaker: str) -> None:
        self.speaker = " ".join(speaker.split())
        self.blocks.append((self.speaker, []))
        self.excerpt, self.after_codes = [], False

    def add(self, para: Paragraph) -> None:
        if not self.blocks:
            # Speech before any speaker label: keep it (nothing may be lost) but never as a finding.
            self.start("Unknown speaker")
        if self.after_codes:
            self.excerpt, self.after_codes = [], False
        paras = self.blocks[-1][1]
        self.excerpt.append(len(paras))
        paras.append(para)

    def add_code(self, code: str) -> bool:
        if not self.blocks or not self.excerpt:
            return False
        paras = self.blocks[-1][1]
        for i in self.excerpt:
            p = paras[i]
            if code not in p.codes:
                paras[i] = Paragraph(p.text, p.start, p.end, (*p.codes, code))
        self.after_codes = True
        return True

    def turns(self) -> tuple[Turn, ...]:
        merged: list[tuple[str, list[Paragraph]]] = []
        for speaker, paras in self.blocks:
            if not paras:
                continue
            if merged and _speaker_key(merged[-1][0]) == _speaker_key(speaker):
                merged[-1][1].extend(paras)
            else:
                merged.append((speaker, list(paras)))
        return tuple(
            Turn(index=i, speaker=s, role=role_of(s), paragraphs=tuple(p))
            for i, (s, p) in enumerate(merged)
        )


def _is_delve(text: str) -> bool:
    for _, line in _lines(text):
        if _DELVE_HEADER.match(line) or (
            line.lstrip().startswith(("#", "**")) and _DELVE_SPEAKER.match(line)
        ):
            return True
        if _PLAIN_SPEAKER.match(line):
            return False
    return False


def _parse_delve(text: str, path: Path) -> tuple[str | None, str, tuple[Turn, ...]]:
    interview_id: str | None = None
    label = ""
    b = _Builder()
    for offset, line in _lines(text):
        stripped = line.strip()
        if not stripped or _RULE.match(line) or _DELVE_FOOTER.match(stripped):
            continue
        if m := _DELVE_HEADER.match(stripped):
            if interview_id is None:
                interview_id, label = m["id"], (m["label"] or "").strip()
            continue
        if m := _DELVE_SPEAKER.match(stripped):
            b.start(m["speaker"])
            continue
        if is_code_line(stripped):
            if b.add_code(stripped):
                continue
            log.warning("%s: code line %r has no paragraph above it; kept as text", path, stripped)
        para = _span(offset, line)
        assert para is not None
        b.add(para)
    return interview_id, label, b.turns()


def _parse_plain(text: str) -> tuple[Turn, ...]:
    b = _Builder()
    for offset, line in _lines(text):
        if not line.strip():
            continue
        if m := _PLAIN_SPEAKER.match(line):
            b.start(m["speaker"])
            if para := _span(offset, line, m.end()):
                b.add(para)
            continue
        if m := _PLAIN_SPEAKER_ALONE.match(line):
            b.start(m["speaker"])
            continue
        para = _span(offset, line)
        assert para is not None
        b.add(para)
    return b.turns()


def _id_from_name(path: Path) -> tuple[str, str]:
    if m := _FILE_ID.search(path.stem):
        return m["id"], (m["label"] or "").strip()
    return path.stem, ""


def parse_text(text: str, path: Path) -> Interview:
    """Parse already-decoded transcript text (``path`` names it and supplies a fallback id)."""
    if _is_delve(text):
        interview_id, label, turns = _parse_delve(text, path)
        fmt = "delve"
    else:
        interview_id, label, turns = None, "", _parse_plain(text)
        fmt = "plain"
    if not any(t.role == "participant" for t in turns) or not any(
        t.speaker.lower() != "unknown speaker" for t in turns
    ):
        raise TranscriptError(
            path, "no speaker turns found (expected 'Interviewee: ...' lines or Delve headings)"
        )
    if interview_id is None:
        interview_id, label = _id_from_name(path)
    return Interview(
        id=interview_id,
        label=label,
        source=str(path),
        language=detect_language(text),
        format=fmt,
        # UTF-8 decoding is exact, so this is also the hash of the file's bytes.
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        turns=turns,
    )


def parse_file(path: str | Path) -> Interview:
    p = Path(path)
    return parse_text(read_source(p), p)


def load_text(path: Path, fmt: str, cache_dir: Path | None = None) -> str:
    """The text offsets index into: the file's own text, or a Delve PDF's extracted text."""
    if fmt == "delve-pdf":
        from .pdf import extract_pdf_text

        return extract_pdf_text(path, cache_dir)
    return read_source(path)


def _parse_one(f: Path, cache_dir: Path | None) -> tuple[Interview, str]:
    if f.suffix.lower() == ".pdf":
        from .pdf import parse_pdf

        return parse_pdf(f, cache_dir)
    text = read_source(f)
    return parse_text(text, f), text


def parse_corpus(
    paths: Iterable[str | Path], cache_dir: Path | None = None
) -> tuple[list[Interview], dict[str, str], list[TranscriptError]]:
    """Parse every transcript, with the exact text each was parsed from (by interview id).

    The text is read once: hashing, parsing, chunking and indexing all see the same bytes, so a
    file edited during a build cannot mix two versions. Files of one interview (a plain
    transcript, a coder's Delve export, another coder's PDF, the moderated copy) become one
    interview: one canonical text, each coder's codes aligned onto it (``coders``). Bad files are
    reported, never fatal to the good ones. ``cache_dir`` keeps extracted PDF text.
    """
    from .coders import group_by_interview

    files, errors = transcript_files(paths)
    parsed: list[tuple[Interview, str]] = []
    for f in files:
        try:
            parsed.append(_parse_one(f, cache_dir))
        except TranscriptError as exc:
            errors.append(exc)
    interviews: list[Interview] = []
    sources: dict[str, str] = {}
    for interview, text, report in group_by_interview(parsed):
        for copy in report.copies:
            if copy.coded_paragraphs and copy.rate < MIN_ALIGNMENT:
                errors.append(
                    TranscriptError(
                        copy.source,
                        f"only {copy.aligned} of {copy.coded_paragraphs} coded paragraphs "
                        f"could be aligned onto interview {interview.id}'s text; "
                        "the unaligned codes are left out",
                    )
                )
        interviews.append(interview)
        sources[interview.id] = text
    return interviews, sources, errors


def parse_paths(paths: Iterable[str | Path]) -> tuple[list[Interview], list[TranscriptError]]:
    """Parse every transcript; bad files are reported, never fatal to the good ones."""
    interviews, _, errors = parse_corpus(paths)
    return interviews, errors
