"""Quotable spans: the sentences a quote can be, as exact offsets into the source text.

A researcher quotes a sentence or two, not a turn. Sentences are found once, here, for the index
(which embeds each of them) and for every engine: a run-on sentence is cut at clause boundaries,
and text with no punctuation at all at word boundaries, so no candidate quote is ever longer than
``MAX_QUOTE_WORDS``. A fragment too short to stand alone joins the sentence after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .quotes import MAX_QUOTE_WORDS
from .types import Chunk

MIN_QUOTE_WORDS = 6
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"\S+")


def _word_cut(text: str, offset: int, max_words: int) -> list[tuple[int, int]]:
    words = list(_WORD.finditer(text))
    return [
        (offset + words[i].start(), offset + words[min(i + max_words, len(words)) - 1].end())
        for i in range(0, len(words), max_words)
    ]


def _clause_cut(sentence: str, offset: int) -> list[tuple[int, int]]:
    """A run-on sentence in clauses of about half the cap; any piece still too long by words."""
    spans: list[tuple[int, int]] = []
    acc_start = 0
    for cm in [*_CLAUSE.finditer(sentence), None]:
        cend = cm.start() if cm else len(sentence)
        if len(sentence[acc_start:cend].split()) >= MAX_QUOTE_WORDS // 2 or cm is None:
            piece = sentence[acc_start:cend]
            if len(piece.split()) <= MAX_QUOTE_WORDS:
                spans.append((offset + acc_start, offset + cend))
            else:
                spans.extend(_word_cut(piece, offset + acc_start, MAX_QUOTE_WORDS))
            acc_start = cm.end() if cm else cend
    return spans


def pieces(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Sentences of ``text`` (offsets shifted by ``offset``), none over ``MAX_QUOTE_WORDS``."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in [*_SENTENCE.finditer(text), None]:
        end = m.start() if m else len(text)
        sentence = text[pos:end]
        if len(sentence.split()) <= MAX_QUOTE_WORDS:
            spans.append((offset + pos, offset + end))
        else:
            spans.extend(_clause_cut(sentence, offset + pos))
        pos = m.end() if m else len(text)
    return [(s, e) for s, e in spans if e > s]


def touching(segments: Iterable[tuple[int, int]], src: str) -> list[tuple[int, int]]:
    """Join segments separated only by whitespace (a sentence split over two lines)."""
    out: list[tuple[int, int]] = []
    for s, e in segments:
        if out and not src[out[-1][1] : s].strip():
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def quotable_spans(src: str, segments: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Candidate quotes inside ``segments`` of ``src``: sentences, short ones joined forward."""
    out: list[tuple[int, int]] = []
    for seg_start, seg_end in touching(segments, src):
        start: int | None = None
        for s, e in pieces(src[seg_start:seg_end], seg_start):
            if start is not None and len(src[start:e].split()) > MAX_QUOTE_WORDS:
                start = None  # the fragment cannot join without breaking the cap: it goes
            start = s if start is None else start
            if len(src[start:e].split()) >= MIN_QUOTE_WORDS:
                out.append((start, e))
                start = None
        if start is not None and len(src[start:seg_end].split()) >= 3:
            out.append((start, seg_end))
    return [(s, e) for s, e in out if e > s and src[s:e].strip()]


# ---- the span table stored beside the chunk vectors -----------------------------------------


@dataclass(frozen=True)
class SpanTable:
    """Every quotable participant span of the corpus, embedded at index time.

    Row ``i`` is ``source[start[i]:end[i]]`` of chunk ``chunk[i]``'s interview; ``vectors[i]``
    is its L2-normalised embedding. With these, a question embeds only itself: the corpus-wide
    evidence scan is one matrix product.
    """

    chunk: np.ndarray  # int32 chunk positions
    start: np.ndarray  # int32 source offsets
    end: np.ndarray
    hashes: np.ndarray  # content hashes of the span texts (vector reuse across builds)
    vectors: np.ndarray  # float32 (n, dim)

    def __len__(self) -> int:
        return int(len(self.chunk))

    def save(self, path: Path) -> None:
        np.savez(
            path,
            chunk=self.chunk,
            start=self.start,
            end=self.end,
            hashes=self.hashes,
            vectors=self.vectors,
        )

    @classmethod
    def load(cls, path: Path) -> SpanTable:
        d = np.load(path)
        return cls(d["chunk"], d["start"], d["end"], d["hashes"], d["vectors"])


PASSAGE_SPANS = 3  # consecutive sentences of one turn weighed as one passage (``Passages``)


@dataclass(frozen=True)
class Passages:
    """Every run of up to ``PASSAGE_SPANS`` consecutive spans of one turn, as one passage.

    A participant rarely says a theme in one sentence ("training took a week… so we moved to
    Spark… it has to run on the edge"); three sentences together say it. A passage's vector is
    the normalised sum of its spans' vectors, so its similarity to a question is the sum of the
    spans' similarities over that sum's norm: nothing more is embedded or multiplied per
    question, only the norms are kept. The scan's ``passage_max`` is an interview's best
    passage: on the dev questions out of fold (``mlqi-rag calibrate --ablate passage_max``),
    coverage F1 on the 36 transcripts 0.598 → 0.616 with it.
    """

    follows: np.ndarray  # bool (n, PASSAGE_SPANS - 1): span i + k + 1 is in span i's turn
    norms: np.ndarray  # float (n,): the norm of passage i's summed vector

    @classmethod
    def of(cls, table: SpanTable) -> Passages:
        """The passages' norms from row-wise dot products of neighbouring span vectors, a
        block at a time: at 1,000 interviews (300,000 spans) no (n, dim) copy is made."""
        n, width = len(table), PASSAGE_SPANS - 1
        follows = np.zeros((n, width), dtype=bool)
        run = np.ones(n, dtype=bool)
        for k in range(1, width + 1):
            run = run & np.r_[table.chunk[k:] == table.chunk[:-k], np.zeros(min(k, n), bool)]
            follows[:, k - 1] = run
        members = np.hstack([np.ones((n, 1), dtype=bool), follows])
        squared = np.zeros(n)
        # |sum of members|^2 is the sum over member pairs (a, a + d) of their dot product
        for d in range(PASSAGE_SPANS):
            dots = np.r_[_row_dots(table.vectors, d), np.zeros(min(d, n))]
            for a in range(PASSAGE_SPANS - d):
                shifted = np.r_[dots[a:], np.zeros(min(a, n))]
                squared += (1 if d == 0 else 2) * members[:, a + d] * shifted
        return cls(follows, np.sqrt(np.maximum(squared, 1e-18)))

    def similarity(self, span_sim: np.ndarray) -> np.ndarray:
        """Each passage's cosine to the question, from its spans' cosines (``span_sim``); a
        span outside the search keeps its value (the whole turn is in or out)."""
        total = span_sim.astype(np.float64)  # a copy: the spans' own values stay
        n = len(total)
        for k in range(1, self.follows.shape[1] + 1):
            total[: n - k] += span_sim[k:] * self.follows[: n - k, k - 1]
        return total / self.norms


def _row_dots(vectors: np.ndarray, d: int, block: int = 8192) -> np.ndarray:
    """``vectors[i] @ vectors[i + d]`` for every i that has an i + d."""
    n = len(vectors)
    out = np.zeros(max(n - d, 0))
    for s in range(0, n - d, block):
        e = min(s + block, n - d)
        out[s:e] = np.einsum("ij,ij->i", vectors[s:e], vectors[s + d : e + d], dtype=np.float64)
    return out


def span_rows(chunks: Sequence[Chunk], sources: dict[str, str]) -> list[tuple[int, int, int]]:
    """(chunk position, start, end) of every quotable span of every participant chunk."""
    rows: list[tuple[int, int, int]] = []
    for pos, c in enumerate(chunks):
        if c.role != "participant":
            continue
        src = sources[c.interview_id]
        rows.extend((pos, s, e) for s, e in quotable_spans(src, c.segments))
    return rows


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
