"""Quote verification: every quote shown is exactly what a participant said, where we say.

Pure functions over (candidate quote, interview, source text). A candidate is accepted when it
occurs verbatim inside one participant paragraph, or when it matches after normalisation
(whitespace, case, curly quotes, dashes, punctuation, filler words such as "uh,"). A normalised
match is re-anchored: what is shown is the exact source span, never the candidate's wording.
Anything else is rejected. Interviewer speech is never accepted as a participant finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .types import Citation, Interview, Paragraph, Turn

FILLERS = frozenset({"uh", "um", "uhm", "umm", "er", "erm", "ah", "eh", "hmm", "mm", "mhm"})
MIN_NORMALISED_WORDS = 3  # a fuzzy match on fewer words says nothing about who said it
_WORD = re.compile(r"[\w'’]+")

Status = Literal["exact", "normalised", "rejected"]


@dataclass(frozen=True)
class Verification:
    status: Status
    quote: str = ""  # the exact source text (empty when rejected)
    start: int = -1
    end: int = -1
    turn: Turn | None = None
    paragraph: Paragraph | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "rejected"


def normalise(text: str) -> tuple[str, list[int]]:
    """Lower-cased words without fillers, joined by single spaces, and each char's source index.

    The index map is what lets a normalised match be re-anchored to the exact source span.
    """
    chars: list[str] = []
    where: list[int] = []
    for m in _WORD.finditer(text):
        word = m.group()
        if word.lower().replace("’", "'").strip("'") in FILLERS:
            continue
        if chars:
            chars.append(" ")
            where.append(m.start())
        for j, ch in enumerate(word):
            low = ch.lower()
            chars.append("'" if ch == "’" else (low if len(low) == 1 else ch))
            where.append(m.start() + j)
    return "".join(chars), where


def _participant_paragraphs(interview: Interview) -> list[tuple[Turn, Paragraph]]:
    return [(t, p) for t in interview.turns if t.role == "participant" for p in t.paragraphs]


def _by_distance(
    pairs: list[tuple[Turn, Paragraph]], near: int | None
) -> list[tuple[Turn, Paragraph]]:
    """Paragraphs nearest the evidence first, so a repeated phrase anchors where it was cited."""
    if near is None:
        return pairs
    return sorted(
        pairs, key=lambda tp: 0 if tp[1].start <= near < tp[1].end else abs(tp[1].start - near)
    )


def verify_quote(
    quote: str, interview: Interview, source: str, near: int | None = None
) -> Verification:
    """Check ``quote`` against the participant paragraphs of ``interview`` (text: ``source``)."""
    candidate = quote.strip().strip("\"“”'‘’").strip()
    if not candidate:
        return Verification("rejected", reason="empty quote")
    paragraphs = _by_distance(_participant_paragraphs(interview), near)
    for turn, para in paragraphs:
        i = para.text.find(candidate)
        if i >= 0:
            start = para.start + i
            if source[start : start + len(candidate)] != candidate:  # stale index vs file on disk
                continue
            return Verification("exact", candidate, start, start + len(candidate), turn, para)
    norm_q, _ = normalise(candidate)
    if len(norm_q.split()) >= MIN_NORMALISED_WORDS:
        for turn, para in paragraphs:
            norm_p, where = normalise(para.text)
            i = norm_p.find(norm_q)
            if i < 0:
                continue
            start = para.start + where[i]
            end = para.start + where[i + len(norm_q) - 1] + 1
            if source[start:end] != para.text[start - para.start : end - para.start]:
                continue
            return Verification("normalised", source[start:end], start, end, turn, para)
    if _said_by_interviewer(candidate, interview):
        return Verification("rejected", reason="interviewer speech is not a participant finding")
    return Verification("rejected", reason=f"not found in interview {interview.id}")


def _said_by_interviewer(candidate: str, interview: Interview) -> bool:
    norm_q, _ = normalise(candidate)
    for t in interview.turns:
        if t.role == "participant":
            continue
        for p in t.paragraphs:
            if candidate in p.text or (norm_q and norm_q in normalise(p.text)[0]):
                return True
    return False


def citation(
    quote: str, interview: Interview, source: str, near: int | None = None
) -> tuple[Citation | None, Verification]:
    """A ``Citation`` for a verified quote (``None`` when rejected), and why."""
    v = verify_quote(quote, interview, source, near)
    if not v.ok or v.turn is None or v.paragraph is None:
        return None, v
    cite = Citation(
        interview_id=interview.id,
        label=interview.label,
        speaker=v.turn.speaker,
        role=v.turn.role,
        turn_index=v.turn.index,
        quote=v.quote,
        source=interview.source,
        start=v.start,
        end=v.end,
        codes=v.paragraph.codes,
        verified=True,
    )
    return cite, v


def recheck(c: Citation, source: str) -> bool:
    """The final gate before anything is shown: the span still says exactly this."""
    return c.role == "participant" and source[c.start : c.end] == c.quote
