"""Turn interviews into retrievable chunks: one per turn, split only when a turn is long.

A researcher cites a speaker's answer, so the natural unit is the turn. The interviewer's
question is kept beside it as context (it tells a short answer what it is about) but it is never
part of the quotable text. Long turns are split at paragraph, then sentence boundaries; tiny turns
("Yeah.") don't stand alone: they join the next exchange's context.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .types import Chunk, Interview, Paragraph, Turn

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkParams:
    max_tokens: int = 350
    min_tokens: int = 8
    question_max_tokens: int = 120


@lru_cache(maxsize=1)
def _encoding():  # type: ignore[no-untyped-def]
    from .settings import offline_environment

    offline_environment()
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


def _tail_tokens(text: str, limit: int) -> str:
    """The end of a question is the part that asks; keep the last ``limit`` tokens."""
    enc = _encoding()
    toks = enc.encode_ordinary(text)
    if len(toks) <= limit:
        return text
    return "…" + enc.decode(toks[-limit:]).lstrip()


def _sentence_spans(p: Paragraph) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(p.text):
        spans.append((p.start + pos, p.start + m.start()))
        pos = m.end()
    spans.append((p.start + pos, p.end))
    return [s for s in spans if s[1] > s[0]]


def _word_windows(
    source: str, start: int, end: int, max_tokens: int
) -> list[tuple[tuple[int, int], int]]:
    """Cut an unpunctuated run at word boundaries into pieces of at most ``max_tokens``.

    Transcription tools sometimes emit a whole answer with no full stop; without this cut a
    200 KB turn would become one chunk far past the model's input (and the cap the index
    promises).
    """
    pieces: list[tuple[tuple[int, int], int]] = []
    piece_start, size, last_end = -1, 0, start
    for m in _WORD.finditer(source, start, end):
        n = count_tokens(" " + m.group())
        if piece_start >= 0 and size + n > max_tokens:
            pieces.append(((piece_start, last_end), size))
            piece_start, size = -1, 0
        if piece_start < 0:
            piece_start = m.start()
        size += n
        last_end = m.end()
    if piece_start >= 0:
        pieces.append(((piece_start, last_end), size))
    # The per-word count is an estimate of the joined text's; recount and halve what is over.
    out: list[tuple[tuple[int, int], int]] = []
    for (s, e), _ in pieces:
        n = count_tokens(source[s:e])
        if n > max_tokens and max_tokens > 1 and len(_WORD.findall(source, s, e)) > 1:
            out.extend(_word_windows(source, s, e, max(1, max_tokens // 2)))
        else:
            out.append(((s, e), n))
    return out


def _pieces(turn: Turn, source: str, max_tokens: int) -> list[tuple[tuple[int, int], int]]:
    """Split a turn into source spans of at most ``max_tokens``: whole paragraphs, else
    sentences, else word windows."""
    units: list[tuple[tuple[int, int], int]] = []
    for p in turn.paragraphs:
        n = count_tokens(p.text)
        if n <= max_tokens:
            units.append(((p.start, p.end), n))
            continue
        for s in _sentence_spans(p):
            n = count_tokens(source[s[0] : s[1]])
            if n <= max_tokens:
                units.append((s, n))
            else:
                units.extend(_word_windows(source, s[0], s[1], max_tokens))
    return units


def _group(
    units: Sequence[tuple[tuple[int, int], int]], max_tokens: int
) -> list[list[tuple[int, int]]]:
    groups: list[list[tuple[int, int]]] = []
    size = 0
    for span, n in units:
        if groups and size + n <= max_tokens:
            groups[-1].append(span)
            size += n
        else:
            groups.append([span])
            size = n
    return groups


def _merge_contiguous(spans: list[tuple[int, int]], source: str) -> tuple[tuple[int, int], ...]:
    """Sentences of one paragraph that are adjacent in the source become one segment again."""
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if (
            merged
            and source[merged[-1][1] : s].strip(" \t") == ""
            and "\n" not in source[merged[-1][1] : s]
        ):
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def _context_line(turn: Turn) -> str:
    return f"{turn.speaker}: {' '.join(p.text for p in turn.paragraphs)}"


def _coded(paras: Sequence[Paragraph]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each coder's codes over the paragraphs, coders in order of first appearance."""
    by: dict[str, dict[str, None]] = {}
    for p in paras:
        for coder, codes in p.coded:
            by.setdefault(coder, {}).update(dict.fromkeys(codes))
    return tuple((coder, tuple(codes)) for coder, codes in by.items())


def chunk_interview(
    interview: Interview, source: str, params: ChunkParams | None = None
) -> list[Chunk]:
    """Chunks for every turn of one interview (interviewer turns too, marked by role)."""
    params = params or ChunkParams()
    chunks: list[Chunk] = []
    context: list[Turn] = []  # turns since (and including) the last one that got a chunk
    last_question: Turn | None = None  # the interviewer's last substantive turn
    for turn in interview.turns:
        if count_tokens(turn.text) < params.min_tokens and not turn.codes:
            context.append(turn)
            continue
        # A participant answers what the interviewer asked last, plus any tiny exchange since
        # ("Yeah." / "And why?"); an interviewer turn follows up on the answer before it.
        lead = context
        if (
            turn.role == "participant"
            and last_question is not None
            and last_question not in context
        ):
            lead = [last_question, *context]
        question = _tail_tokens(
            "\n".join(_context_line(t) for t in lead), params.question_max_tokens
        )
        for n, group in enumerate(
            _group(_pieces(turn, source, params.max_tokens), params.max_tokens)
        ):
            segments = _merge_contiguous(group, source)
            text = "\n\n".join(source[s:e] for s, e in segments)
            paras = [
                p for p in turn.paragraphs if any(p.start < e and s < p.end for s, e in segments)
            ]
            codes = tuple(dict.fromkeys(c for p in paras for c in p.codes))
            chunks.append(
                Chunk(
                    id=f"{interview.id}:t{turn.index}:c{n}",
                    interview_id=interview.id,
                    label=interview.label,
                    turn_index=turn.index,
                    speaker=turn.speaker,
                    role=turn.role,
                    text=text,
                    question=question,
                    codes=codes,
                    source=interview.source,
                    segments=segments,
                    token_count=count_tokens(text),
                    coded=_coded(paras),
                )
            )
        context = [turn]
        if turn.role == "interviewer":
            last_question = turn
    return chunks


def chunk_interviews(
    interviews: Iterable[Interview], sources: dict[str, str], params: ChunkParams | None = None
) -> list[Chunk]:
    return [c for iv in interviews for c in chunk_interview(iv, sources[iv.id], params)]


def content_hash(chunk: Chunk) -> str:
    """Identifies what gets embedded: unchanged text is never embedded twice."""
    return hashlib.sha256(chunk.embed_text.encode("utf-8")).hexdigest()[:16]
