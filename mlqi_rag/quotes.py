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
MAX_QUOTE_WORDS = 45  # a quote is a quote, not a page: longer spans are cut at a word boundary
_WORD = re.compile(r"[\w'’]+")

Status = Literal["exact", "normalised", "rejected"]


@dataclass(frozen=True)
class Verification:
    status: Status
    quote: str = ""  # the exact source text (empty when rejected)
    start: int = -1
    end: int = -1
    turn: Turn | None = None
    codes: tuple[str, ...] = ()
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


@dataclass(frozen=True)
class Block:
    """Paragraphs of one participant turn that touch in the source (only whitespace between).

    Transcription tools split a sentence over lines; a quote may run across such a split, and
    the exact source text of the block is still one person's uninterrupted speech.
    """

    turn: Turn
    paragraphs: tuple[Paragraph, ...]
    start: int
    end: int


def participant_blocks(interview: Interview, source: str) -> list[Block]:
    blocks: list[Block] = []
    for t in interview.turns:
        if t.role != "participant":
            continue
        run: list[Paragraph] = []
        for p in t.paragraphs:
            if run and source[run[-1].end : p.start].strip():
                blocks.append(Block(t, tuple(run), run[0].start, run[-1].end))
                run = []
            run.append(p)
        if run:
            blocks.append(Block(t, tuple(run), run[0].start, run[-1].end))
    return blocks


def _by_distance(blocks: list[Block], near: int | None) -> list[Block]:
    """Blocks nearest the evidence first, so a repeated phrase anchors where it was cited."""
    if near is None:
        return blocks
    return sorted(blocks, key=lambda b: 0 if b.start <= near < b.end else abs(b.start - near))


def _codes(block: Block, start: int, end: int) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(
            c for p in block.paragraphs if p.start < end and start < p.end for c in p.codes
        )
    )


def verify_quote(
    quote: str, interview: Interview, source: str, near: int | None = None
) -> Verification:
    """Check ``quote`` against the participant speech of ``interview`` (text: ``source``)."""
    candidate = quote.strip().strip("\"“”'‘’").strip()
    if not candidate:
        return Verification("rejected", reason="empty quote")
    blocks = _by_distance(participant_blocks(interview, source), near)
    for b in blocks:
        i = source.find(candidate, b.start, b.end)
        if i >= 0:
            end = i + len(candidate)
            return Verification("exact", candidate, i, end, b.turn, _codes(b, i, end))
    norm_q, _ = normalise(candidate)
    if len(norm_q.split()) >= MIN_NORMALISED_WORDS:
        for b in blocks:
            norm_b, where = normalise(source[b.start : b.end])
            i = norm_b.find(norm_q)
            if i < 0:
                continue
            start = b.start + where[i]
            end = b.start + where[i + len(norm_q) - 1] + 1
            return Verification(
                "normalised", source[start:end], start, end, b.turn, _codes(b, start, end)
            )
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


def cap_span(source: str, start: int, end: int, max_words: int = MAX_QUOTE_WORDS) -> int:
    """The end of ``source[start:end]`` cut after ``max_words`` words (exact text, shorter)."""
    words = 0
    for m in re.finditer(r"\S+", source[start:end]):
        words += 1
        if words == max_words:
            return start + m.end()
    return end


def citation(
    quote: str, interview: Interview, source: str, near: int | None = None
) -> tuple[Citation | None, Verification]:
    """A ``Citation`` for a verified quote (``None`` when rejected), and why.

    Every engine's quotes pass through here, so the length cap holds for all of them: an
    over-long quote keeps its first ``MAX_QUOTE_WORDS`` words, still the exact source text.
    """
    v = verify_quote(quote, interview, source, near)
    if not v.ok or v.turn is None:
        return None, v
    end = cap_span(source, v.start, v.end)
    if end != v.end:
        v = Verification(v.status, source[v.start : end], v.start, end, v.turn, v.codes)
    assert v.turn is not None
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
        codes=v.codes,
        verified=True,
    )
    return cite, v


def recheck(c: Citation, source: str) -> bool:
    """The final gate before anything is shown: the span still says exactly this."""
    return (
        c.role == "participant"
        and source[c.start : c.end] == c.quote
        and len(c.quote.split()) <= MAX_QUOTE_WORDS
    )
